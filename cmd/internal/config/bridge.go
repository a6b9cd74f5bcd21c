package config

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/asmtp/asmtp/bridge"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/outbound"
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
	// IMAPSListenAddress and SMTPSListenAddress, when set, serve IMAP and
	// SMTP over implicit TLS (993 and 465 by convention) with the same
	// certificate. They need TLS, and may be on any address since nothing
	// crosses them in clear text. Unset: off.
	IMAPSListenAddress Address `yaml:"imaps_listen_address"`
	SMTPSListenAddress Address `yaml:"smtps_listen_address"`
	// CardDAVListenAddress serves the accounts' address books (CardDAV)
	// and Thunderbird's autoconfig file. Loopback only, unless TLS is on
	// (then HTTPS). "": off.
	CardDAVListenAddress Address `yaml:"carddav_listen_address"`
	// RetryWindow is how long undelivered mail is retried before it
	// bounces back to the sender's INBOX with a delivery report.
	RetryWindow Duration `yaml:"retry_window"`
	// DelayWarning is how long mail may stay undelivered before the sender
	// gets a delay report (still being retried) in INBOX; at or past
	// RetryWindow, never.
	DelayWarning Duration `yaml:"delay_warning"`
}

func defaultBridge() Bridge {
	return Bridge{
		Enabled:              true,
		DataDir:              "bridge",
		Domain:               accounts.DefaultDomain,
		IMAPListenAddress:    Address{netip.MustParseAddrPort(bridge.DefaultIMAPAddr)},
		SMTPListenAddress:    Address{netip.MustParseAddrPort(bridge.DefaultSMTPAddr)},
		CardDAVListenAddress: Address{netip.MustParseAddrPort(bridge.DefaultCardDAVAddr)},
		RetryWindow:          Duration(outbound.DefaultRetryWindow),
		DelayWarning:         Duration(outbound.DefaultDelayWarning),
	}
}

func (b *Bridge) validate(fail func(key, format string, args ...any)) {
	if b.DataDir == "" {
		fail("bridge.data_dir", "must name a directory")
	}
	if b.RetryWindow <= 0 {
		fail("bridge.retry_window", "must be a positive duration such as \"96h\"")
	}
	if b.DelayWarning <= 0 {
		fail("bridge.delay_warning", "must be a positive duration such as \"4h\" (at or past retry_window: no delay report)")
	}
	if err := accounts.CheckDomain(b.Domain); err != nil {
		fail("bridge.domain", "%v", err)
	}
	type listener struct {
		key  string
		addr Address
	}
	var set []listener // the addresses to listen on
	for _, a := range []listener{{"bridge.imap_listen_address", b.IMAPListenAddress}, {"bridge.smtp_listen_address", b.SMTPListenAddress}} {
		if !a.addr.IsValid() {
			fail(a.key, "must be set")
			continue
		}
		if !a.addr.Addr().IsLoopback() && !b.TLS {
			// The servers refuse it too; saying so at load time is kinder.
			fail(a.key, "%s is not a loopback address: passwords and mail would cross the network in clear text; listen on 127.0.0.1 or set bridge.tls: true", a.addr)
		}
		set = append(set, a)
	}
	for _, a := range []listener{{"bridge.imaps_listen_address", b.IMAPSListenAddress}, {"bridge.smtps_listen_address", b.SMTPSListenAddress}} {
		if !a.addr.IsValid() {
			continue // off
		}
		if !b.TLS {
			// bridge.tls makes the certificate these ports serve; turning it
			// on here silently would also turn on STARTTLS elsewhere.
			fail(a.key, "implicit TLS needs bridge.tls: true, which makes the certificate it serves")
		}
		set = append(set, a)
	}
	if dav := b.CardDAVListenAddress; dav.IsValid() {
		if !dav.Addr().IsLoopback() && !b.TLS {
			fail("bridge.carddav_listen_address", "%s is not a loopback address: passwords would cross the network in clear text; listen on 127.0.0.1 or set bridge.tls: true (HTTPS)", dav)
		}
		set = append(set, listener{"bridge.carddav_listen_address", dav})
	}
	// Caught at load time rather than as "address already in use" at start.
	for i, a := range set {
		for _, earlier := range set[:i] {
			if a.addr.Port() != 0 && a.addr == earlier.addr {
				fail(a.key, "%s is also %s: each server needs its own port", a.addr, earlier.key)
				break
			}
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
	cfg.IMAPSAddr = optionalAddress(c.Bridge.IMAPSListenAddress)
	cfg.SMTPSAddr = optionalAddress(c.Bridge.SMTPSListenAddress)
	cfg.CardDAVAddr = optionalAddress(c.Bridge.CardDAVListenAddress)
	cfg.Delivery.RetryWindow = time.Duration(c.Bridge.RetryWindow)
	cfg.Delivery.DelayWarning = time.Duration(c.Bridge.DelayWarning)
	cfg.NamingV1 = c.Network.NamingV1 // the node gossips v1 too: contacts could not reach a v2 account
	if log != nil {
		cfg.Logger = log
	}
	return cfg
}

// optionalAddress is a as host:port, or "" when it is not set.
func optionalAddress(a Address) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
