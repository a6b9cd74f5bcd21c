package bridge

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/carddav"
	"github.com/asmtp/asmtp/bridge/imapserver"
	"github.com/asmtp/asmtp/bridge/inbound"
	"github.com/asmtp/asmtp/bridge/naming"
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
// its bridge retries for outbound.DefaultRetryWindow (4 days), and a node
// that was offline catches up from peers that keep topic messages for
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
	// Domain of the pseudo-addresses. Default accounts.DefaultDomain.
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
	// NamingV1 speaks naming v1 only (PROTOCOL.md §11): every contact on
	// its pair topic, every passport on its passport topic, no cards. The
	// release before naming v2 did this; it is kept to measure v2 against
	// and to run as a v1 peer (asmtpd: network.naming_v1, with the node).
	NamingV1 bool
	// CardWait is how long mail to a new contact waits for the contact's
	// card before the contact is taken for a v1 one (package naming). Default
	// naming.DefaultCardWait.
	CardWait time.Duration
	// CatchUpDays is how many past days of the accounts' inboxes are
	// caught up from their contacts' nodes on start. Default
	// naming.DefaultCatchUpDays.
	CatchUpDays int
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
	if c.CardWait <= 0 {
		c.CardWait = naming.DefaultCardWait
	}
	if c.CatchUpDays <= 0 {
		c.CatchUpDays = naming.DefaultCatchUpDays
	}
	if c.rotationGrace <= 0 {
		c.rotationGrace = RotationGrace
	}
	c.Delivery.setDefaults()
}

// DeliveryConfig tunes mail delivery: outbound.Pacing (retries, delay
// warning, workers, look-ups) and inbound.Limits (reassembly). Zero values
// mean the defaults.
type DeliveryConfig struct {
	outbound.Pacing
	inbound.Limits

	// hook, in tests, is called at stages of a delivery attempt.
	hook func(stage string, it mailstore.OutboxItem, chunk int)
}

func (c *DeliveryConfig) setDefaults() {
	c.Pacing.SetDefaults()
	c.Limits.SetDefaults()
}

// outbound is the delivery worker's configuration.
func (c *Config) outbound(nodeKey ed25519.PrivateKey) outbound.Config {
	return outbound.Config{Pacing: c.Delivery.Pacing, Domain: c.Domain, NodeKey: nodeKey, NamingV1: c.NamingV1, Hook: c.Delivery.hook,
		Logger: c.Logger}
}

// inbound is the configuration of the accounts' inbound workers.
func (c *Config) inbound(nodeKey ed25519.PrivateKey) inbound.Config {
	return inbound.Config{Limits: c.Delivery.Limits, Domain: c.Domain, NodeKey: nodeKey, RotationGrace: c.rotationGrace,
		Logger: c.Logger}
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

// Scheme is how a bridge with this configuration reaches a contact whose
// naming record is nm: as recorded, or v1 for every contact when it speaks
// only v1. asmtpd-cli shows it in `contact list` and `status`.
func (c Config) Scheme(nm accounts.Naming) accounts.Scheme {
	if c.NamingV1 {
		return accounts.SchemeV1
	}
	return nm.Scheme
}
