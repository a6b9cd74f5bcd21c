package config

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/asmtp/asmtp/bridge"
)

// Bridge is the mail bridge: IMAP and SMTP for ordinary mail clients, run
// inside asmtpd.
type Bridge struct {
	// Enabled runs the bridge in asmtpd. Accounts are managed with
	// `asmtpd-cli account`, whether the node runs or not.
	Enabled bool `yaml:"enabled"`
	// DataDir holds the account registry and the mailboxes.
	DataDir string `yaml:"data_dir"`
	// Domain of the pseudo-addresses <passport-id>@domain.
	Domain            string  `yaml:"domain"`
	IMAPListenAddress Address `yaml:"imap_listen_address"`
	SMTPListenAddress Address `yaml:"smtp_listen_address"`
	// TLS turns on STARTTLS with a self-signed certificate kept in DataDir;
	// it is required for listening beyond loopback.
	TLS bool `yaml:"tls"`
	// RetryWindow is how long undelivered mail is retried before it
	// bounces back to the sender's INBOX with a delivery report.
	RetryWindow Duration `yaml:"retry_window"`
}

func defaultBridge() Bridge {
	return Bridge{
		Enabled:           true,
		DataDir:           "bridge",
		Domain:            bridge.DefaultDomain,
		IMAPListenAddress: Address{netip.MustParseAddrPort(bridge.DefaultIMAPAddr)},
		SMTPListenAddress: Address{netip.MustParseAddrPort(bridge.DefaultSMTPAddr)},
		RetryWindow:       Duration(bridge.DefaultRetryWindow),
	}
}

func (b *Bridge) validate(fail func(key, format string, args ...any)) {
	if b.DataDir == "" {
		fail("bridge.data_dir", "must name a directory")
	}
	if b.RetryWindow <= 0 {
		fail("bridge.retry_window", "must be a positive duration such as \"96h\"")
	}
	if err := bridge.CheckDomain(b.Domain); err != nil {
		fail("bridge.domain", "%v", err)
	}
	for _, a := range []struct {
		key  string
		addr Address
	}{{"bridge.imap_listen_address", b.IMAPListenAddress}, {"bridge.smtp_listen_address", b.SMTPListenAddress}} {
		if !a.addr.IsValid() {
			fail(a.key, "must be set")
		} else if !a.addr.Addr().IsLoopback() && !b.TLS {
			// The servers refuse it too; saying so at load time is kinder.
			fail(a.key, "%s is not a loopback address: passwords and mail would cross the network in clear text; listen on 127.0.0.1 or set bridge.tls: true", a.addr)
		}
	}
}

// BridgeConfig is the bridge configuration this file describes.
func (c *Config) BridgeConfig(log *slog.Logger) bridge.Config {
	cfg := bridge.DefaultConfig(c.Bridge.DataDir)
	cfg.Domain = c.Bridge.Domain
	cfg.IMAPAddr = c.Bridge.IMAPListenAddress.String()
	cfg.SMTPAddr = c.Bridge.SMTPListenAddress.String()
	cfg.TLS = c.Bridge.TLS
	cfg.Delivery.RetryWindow = time.Duration(c.Bridge.RetryWindow)
	if log != nil {
		cfg.Logger = log
	}
	return cfg
}
