package bridge

import (
	"fmt"
	"io"
)

// WriteSettings prints what a mail client needs to use account a, one
// "key: value" line each: address, imap, smtp, username, password.
func WriteSettings(w io.Writer, cfg Config, a Account, password string) error {
	_, err := fmt.Fprintf(w, "address: %s\nimap: %s\nsmtp: %s\nusername: %s\npassword: %s\n",
		a.Address(cfg.Domain), cfg.IMAPAddr, cfg.SMTPAddr, a.Name, password)
	return err
}
