package bridge

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/carddav"
	"github.com/asmtp/asmtp/bridge/imapserver"
	"github.com/asmtp/asmtp/bridge/inbound"
	"github.com/asmtp/asmtp/bridge/outbound"
	"github.com/asmtp/asmtp/mailstore"
)

// Defaults of Config.
const (
	DefaultIMAPAddr        = imapserver.DefaultAddr // 127.0.0.1:1143
	DefaultSMTPAddr        = "127.0.0.1:1587"
	DefaultCardDAVAddr     = carddav.DefaultAddr // 127.0.0.1:1808
	DefaultRefreshInterval = time.Minute
)

// RotationGrace is how long the topic a contact's shared-key rotation
// replaced stays registered, and mail on it sealed with the old key is
// still taken. Mail the contact sent just before rotating may come late:
// its bridge retries for DefaultRetryWindow (4 days), and a node that was
// offline catches up from peers that keep topic messages for
// node.DefaultRetention (30 days). A week covers the retries and a node
// down for a long weekend or a short trip; a longer grace would keep
// accepting a key the contact may have rotated away from because it
// leaked.
const RotationGrace = 7 * 24 * time.Hour

// Config configures a Bridge. DataDir is required; zero values of the
// other fields mean the defaults.
type Config struct {
	// DataDir holds the registry and the mailstore (DefaultDataDir of the
	// node's storage.path for asmtpd).
	DataDir string
	// Domain of the pseudo-addresses. Default DefaultDomain.
	Domain string
	// IMAPAddr is where mail clients read mail. Default DefaultIMAPAddr.
	IMAPAddr string
	// SMTPAddr is where mail clients send mail. Default DefaultSMTPAddr.
	SMTPAddr string
	// TLS turns on STARTTLS for IMAP and SMTP, with a self-signed
	// certificate made on first use in DataDir (auth.CertFile, for
	// clients to import). It is required to listen beyond loopback, and
	// for IMAPSAddr and SMTPSAddr.
	TLS bool
	// IMAPSAddr and SMTPSAddr, when set, are extra ports (993 and 465 by
	// convention) where IMAP and SMTP are served over implicit TLS, with
	// the same certificate. They need TLS, and may be on any address since
	// nothing crosses them in clear text. Empty: off.
	IMAPSAddr string
	SMTPSAddr string
	// CardDAVAddr, when set, is where mail clients sync the accounts'
	// address books (CardDAV, with the IMAP/SMTP logins) and fetch
	// Thunderbird's autoconfig file: DefaultCardDAVAddr for asmtpd.
	// Plain HTTP on loopback; elsewhere it needs TLS and serves HTTPS.
	// Empty: off.
	CardDAVAddr string
	// RefreshInterval is how often pending contacts' passports are looked
	// for and contacts' passports are checked for updates (shared-key
	// rotations). Default DefaultRefreshInterval.
	RefreshInterval time.Duration
	// Delivery tunes the outbound queue and inbound reassembly.
	Delivery DeliveryConfig
	// Logger receives the bridge's logs. Default slog.Default().
	Logger *slog.Logger

	// rotationGrace replaces RotationGrace, in tests.
	rotationGrace time.Duration
}

// DefaultConfig is the configuration with every default, for dataDir.
func DefaultConfig(dataDir string) Config {
	c := Config{DataDir: dataDir}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Domain == "" {
		c.Domain = accounts.DefaultDomain
	}
	if c.IMAPAddr == "" {
		c.IMAPAddr = DefaultIMAPAddr
	}
	if c.SMTPAddr == "" {
		c.SMTPAddr = DefaultSMTPAddr
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.rotationGrace <= 0 {
		c.rotationGrace = RotationGrace
	}
	c.Delivery.setDefaults()
}

// Defaults of DeliveryConfig.
const (
	DefaultRetryWindow = 4 * 24 * time.Hour
	// DefaultDelayWarning is when the sender of mail still undelivered
	// is told so, as Postfix's delay_warning_time is usually set.
	DefaultDelayWarning = 4 * time.Hour
	DefaultFirstRetry   = 30 * time.Second
	DefaultMaxRetry     = time.Hour
	DefaultWorkers      = 4
	// DefaultLookupInterval spaces the passport look-ups of unknown
	// recipients: at most 2 a second stays below the request rate peers
	// allow by default (node.DefaultQueryRate, 5 a second, which also
	// covers the node's own catch-up queries), over which they quarantine
	// the node.
	DefaultLookupInterval = 500 * time.Millisecond
	DefaultReplayMemory   = 100000 // delivered message ids remembered per account
	// DefaultMaxPendingBytes is the chunk data held for incomplete
	// messages per account: two messages of the largest size.
	DefaultMaxPendingBytes = 2 * outbound.MaxMessageSize
)

// DeliveryConfig tunes mail delivery. Zero values mean the defaults.
type DeliveryConfig struct {
	// RetryWindow is how long a message is retried before it bounces.
	// Default DefaultRetryWindow.
	RetryWindow time.Duration
	// DelayWarning is how long after submission a message still in the
	// outbox gets the sender a delay report (RFC 3464 Action: delayed) in
	// INBOX, once. One at or past RetryWindow sends none. Default
	// DefaultDelayWarning.
	DelayWarning time.Duration
	// FirstRetry is the wait after the first failed attempt; it doubles
	// with each further failure up to MaxRetry. Defaults DefaultFirstRetry
	// and DefaultMaxRetry.
	FirstRetry time.Duration
	MaxRetry   time.Duration
	// Workers bounds deliveries in progress at once. Default
	// DefaultWorkers.
	Workers int
	// LookupInterval is the least time between two passport look-ups on
	// the network. Default DefaultLookupInterval.
	LookupInterval time.Duration
	// ReassemblyTimeout drops an incomplete inbound message that got no
	// chunk for this long. Default asmtp/mail.DefaultTimeout (24 h).
	ReassemblyTimeout time.Duration
	// MaxPendingMessages and MaxPendingBytes bound the incomplete inbound
	// messages held per account. Defaults asmtp/mail.DefaultMaxPending
	// and DefaultMaxPendingBytes.
	MaxPendingMessages int
	MaxPendingBytes    int64
	// ReplayMemory is how many delivered message ids are remembered per
	// account, to ignore replays. Default DefaultReplayMemory.
	ReplayMemory int

	// hook, in tests, is called at stages of a delivery attempt.
	hook func(stage string, it mailstore.OutboxItem, chunk int)
}

func (c *DeliveryConfig) setDefaults() {
	if c.RetryWindow <= 0 {
		c.RetryWindow = DefaultRetryWindow
	}
	if c.DelayWarning <= 0 {
		c.DelayWarning = DefaultDelayWarning
	}
	if c.FirstRetry <= 0 {
		c.FirstRetry = DefaultFirstRetry
	}
	if c.MaxRetry <= 0 {
		c.MaxRetry = DefaultMaxRetry
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.LookupInterval <= 0 {
		c.LookupInterval = DefaultLookupInterval
	}
	if c.ReassemblyTimeout <= 0 {
		c.ReassemblyTimeout = mail.DefaultTimeout
	}
	if c.MaxPendingMessages <= 0 {
		c.MaxPendingMessages = mail.DefaultMaxPending
	}
	if c.MaxPendingBytes < mail.ChunkDataSize {
		c.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if c.ReplayMemory <= 0 {
		c.ReplayMemory = DefaultReplayMemory
	}
}

// outbound is the delivery worker's configuration.
func (c *Config) outbound(nodeKey ed25519.PrivateKey) outbound.Config {
	d := c.Delivery
	return outbound.Config{Domain: c.Domain, NodeKey: nodeKey, RetryWindow: d.RetryWindow, DelayWarning: d.DelayWarning,
		FirstRetry: d.FirstRetry, MaxRetry: d.MaxRetry, Workers: d.Workers, LookupInterval: d.LookupInterval,
		Hook: d.hook, Logger: c.Logger}
}

// inbound is the configuration of the accounts' inbound workers.
func (c *Config) inbound(nodeKey ed25519.PrivateKey) inbound.Config {
	d := c.Delivery
	return inbound.Config{Domain: c.Domain, NodeKey: nodeKey, ReassemblyTimeout: d.ReassemblyTimeout,
		MaxPendingMessages: d.MaxPendingMessages, MaxPendingBytes: d.MaxPendingBytes, ReplayMemory: d.ReplayMemory,
		RotationGrace: c.rotationGrace, Logger: c.Logger}
}

// WriteSettings prints what a mail client needs to use account a, one
// "key: value" line each: address, imap, smtp, then imaps and smtps when
// the implicit-TLS ports are on, carddav (the address book's URL) when it
// is on, username, password. The username line and the full address both
// log in.
func WriteSettings(w io.Writer, cfg Config, a accounts.Account, password string) error {
	lines := [][2]string{
		{"address", a.Address(cfg.Domain).String()},
		{"imap", cfg.IMAPAddr},
		{"smtp", cfg.SMTPAddr},
		{"imaps", cfg.IMAPSAddr},
		{"smtps", cfg.SMTPSAddr},
		{"carddav", cardDAVURL(cfg)},
		{"username", a.Name},
		{"password", password},
	}
	for _, l := range lines {
		if l[1] == "" {
			continue // a port that is off
		}
		if _, err := fmt.Fprintf(w, "%s: %s\n", l[0], l[1]); err != nil {
			return err
		}
	}
	return nil
}

// cardDAVURL is the URL clients are given for the address book server, or
// "" when it is off.
func cardDAVURL(cfg Config) string {
	if cfg.CardDAVAddr == "" {
		return ""
	}
	return carddav.URL(cfg.CardDAVAddr, cfg.TLS)
}
