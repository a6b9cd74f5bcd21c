package bridge

import (
	"fmt"
	"io"

	"github.com/asmtp/asmtp/bridge/carddav"
)

// WriteSettings prints what a mail client needs to use account a, one
// "key: value" line each: address, imap, smtp, then imaps and smtps when
// the implicit-TLS ports are on, carddav (the address book's URL) when it
// is on, username, password. The username line and the full address both
// log in.
func WriteSettings(w io.Writer, cfg Config, a Account, password string) error {
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
