package bridge

import (
	"fmt"
	"io"
)

// WriteSettings prints what a mail client needs to use account a, one
// "key: value" line each: address, imap, smtp, then imaps and smtps when
// the implicit-TLS ports are on, username, password.
func WriteSettings(w io.Writer, cfg Config, a Account, password string) error {
	lines := [][2]string{
		{"address", a.Address(cfg.Domain).String()},
		{"imap", cfg.IMAPAddr},
		{"smtp", cfg.SMTPAddr},
		{"imaps", cfg.IMAPSAddr},
		{"smtps", cfg.SMTPSAddr},
		{"username", a.Name},
		{"password", password},
	}
	for _, l := range lines {
		if l[1] == "" {
			continue // an implicit-TLS port that is off
		}
		if _, err := fmt.Fprintf(w, "%s: %s\n", l[0], l[1]); err != nil {
			return err
		}
	}
	return nil
}
