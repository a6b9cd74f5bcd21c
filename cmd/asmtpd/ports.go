package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"github.com/asmtp/asmtp/bridge"
	"github.com/asmtp/asmtp/cmd/internal/config"
)

// listenFlag is one of the addresses the first run writes into the config
// it makes: a flag, the environment variable that may stand in for it, the
// template's line it replaces, and the config key that holds it later.
type listenFlag struct {
	name, env, what, key string
	// line is the template's line, with %s where the address goes.
	line, def string
	value     *string // the flag's value; "" when not given
}

// listenAddrs are the first run's port choices by flag ("" when not given).
type listenAddrs struct{ node, imap, smtp, carddav string }

// listenFlags are the flags setting l, in the order checked.
func listenFlags(l *listenAddrs) []*listenFlag {
	return []*listenFlag{
		{value: &l.node, name: "listen", env: "ASMTPD_LISTEN", what: "the node's ASMTP port", key: "network.listen_address",
			line: `  listen_address: "%s"`, def: fmt.Sprintf("127.0.0.1:%d", config.DefaultPort)},
		{value: &l.imap, name: "imap-listen", env: "ASMTPD_IMAP_LISTEN", what: "IMAP", key: "bridge.imap_listen_address",
			line: `  imap_listen_address: "%s"`, def: bridge.DefaultIMAPAddr},
		{value: &l.smtp, name: "smtp-listen", env: "ASMTPD_SMTP_LISTEN", what: "SMTP submission", key: "bridge.smtp_listen_address",
			line: `  smtp_listen_address: "%s"`, def: bridge.DefaultSMTPAddr},
		{value: &l.carddav, name: "carddav-listen", env: "ASMTPD_CARDDAV_LISTEN", what: "CardDAV and autoconfig", key: "bridge.carddav_listen_address",
			line: `  carddav_listen_address: "%s"`, def: bridge.DefaultCardDAVAddr},
	}
}

// addr is the address chosen by flag or environment, else the default.
func (f *listenFlag) addr() string {
	if *f.value != "" {
		return *f.value
	}
	if v := os.Getenv(f.env); v != "" {
		return v
	}
	return f.def
}

func (f *listenFlag) register(fs *flag.FlagSet) {
	fs.StringVar(f.value, f.name, "", fmt.Sprintf("first run: `host:port` for %s, written into the config (default %s, or $%s)", f.what, f.def, f.env))
}

// chosen reports whether the flag or its environment variable is set.
func (f *listenFlag) chosen() bool { return *f.value != "" || os.Getenv(f.env) != "" }

// applyListenFlags writes the chosen addresses into the config template,
// after checking that each parses, is free to listen on, and is not
// another's: a first run that would fail to start says so before making
// anything, naming the flag that picks another port.
func applyListenFlags(tmpl string, flags []*listenFlag) (string, error) {
	seen := map[netip.AddrPort]string{}
	for _, f := range flags {
		addr := f.addr()
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return "", fmt.Errorf("--%s %q: want an IP and port such as %s", f.name, addr, f.def)
		}
		if other, dup := seen[ap]; dup {
			return "", fmt.Errorf("--%s %s: also the address of --%s; each server needs its own port", f.name, addr, other)
		}
		seen[ap] = f.name
		if err := checkFree(addr); err != nil {
			return "", portTaken(f, addr, err)
		}
		old := fmt.Sprintf(f.line, f.def)
		if !strings.Contains(tmpl, old) {
			return "", fmt.Errorf("first run: template has no line %q", old)
		}
		tmpl = strings.Replace(tmpl, old, fmt.Sprintf(f.line, addr), 1)
	}
	return tmpl, nil
}

// checkFree listens on addr and closes it at once.
func checkFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

func portTaken(f *listenFlag, addr string, err error) error {
	why := "cannot listen there"
	if errors.Is(err, syscall.EADDRINUSE) {
		why = "is in use by another program"
	}
	return fmt.Errorf("%s for %s %s (%v): choose another with --%s 127.0.0.1:PORT (or $%s)",
		addr, f.what, why, err, f.name, f.env)
}

// warnIgnoredListenFlags: the flags only shape the config the first run
// makes; one that disagrees with an existing config would otherwise be
// silently ignored.
func warnIgnoredListenFlags(flags []*listenFlag, cfg *config.Config, configPath string, warn func(string)) {
	current := map[string]config.Address{
		"listen": cfg.Network.ListenAddress, "imap-listen": cfg.Bridge.IMAPListenAddress,
		"smtp-listen": cfg.Bridge.SMTPListenAddress, "carddav-listen": cfg.Bridge.CardDAVListenAddress,
	}
	for _, f := range flags {
		if !f.chosen() {
			continue
		}
		if ap, err := netip.ParseAddrPort(f.addr()); err == nil && current[f.name].AddrPort == ap {
			continue
		}
		warn(fmt.Sprintf("--%s (or $%s) %s is ignored: %s exists; its %s is %s. Edit it to change the port.",
			f.name, f.env, f.addr(), configPath, f.key, current[f.name]))
	}
}

// explainPortInUse adds to a listen error, when another program holds the
// port, which configuration key to change: after the first run the
// flags no longer apply.
func explainPortInUse(err error, cfg *config.Config, configPath string) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	for _, l := range []struct {
		key  string
		addr config.Address
	}{
		{"network.listen_address", cfg.Network.ListenAddress},
		{"bridge.imap_listen_address", cfg.Bridge.IMAPListenAddress},
		{"bridge.smtp_listen_address", cfg.Bridge.SMTPListenAddress},
		{"bridge.carddav_listen_address", cfg.Bridge.CardDAVListenAddress},
		{"bridge.imaps_listen_address", cfg.Bridge.IMAPSListenAddress},
		{"bridge.smtps_listen_address", cfg.Bridge.SMTPSListenAddress},
	} {
		if l.addr.IsValid() && strings.Contains(err.Error(), l.addr.String()+":") {
			return fmt.Errorf("%w: another program listens on %s; choose another port for %s in %s", err, l.addr, l.key, configPath)
		}
	}
	return fmt.Errorf("%w: another program listens on one of the ports in %s", err, configPath)
}
