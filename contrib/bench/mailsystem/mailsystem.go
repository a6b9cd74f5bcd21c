// Package mailsystem names a mail system the contrib benchmarks drive
// (contrib/bench/e2e, contrib/bench/load): where a sender submits over
// SMTP and where the recipient reads over IMAP, from command-line flags.
package mailsystem

import "flag"

// Endpoints is one mail system under test.
type Endpoints struct {
	Name                     string
	SMTP, SMTPUser, SMTPPass string // AUTH PLAIN if SMTPUser != ""
	From, To                 string // envelope sender and recipient
	IMAP, IMAPUser, IMAPPass string // the recipient's
}

// Flags registers e's flags on the command line, each name starting with
// prefix ("ours-", "ref-"); name is the default display name.
func (e *Endpoints) Flags(prefix, name string) {
	flag.StringVar(&e.Name, prefix+"name", name, "display name")
	flag.StringVar(&e.SMTP, prefix+"smtp", "", "SMTP host:port")
	flag.StringVar(&e.SMTPUser, prefix+"smtp-user", "", "SMTP AUTH PLAIN user (empty: no AUTH)")
	flag.StringVar(&e.SMTPPass, prefix+"smtp-pass", "", "SMTP AUTH password")
	flag.StringVar(&e.From, prefix+"from", "", "envelope sender")
	flag.StringVar(&e.To, prefix+"to", "", "envelope recipient")
	flag.StringVar(&e.IMAP, prefix+"imap", "", "recipient's IMAP host:port")
	flag.StringVar(&e.IMAPUser, prefix+"imap-user", "", "IMAP user")
	flag.StringVar(&e.IMAPPass, prefix+"imap-pass", "", "IMAP password")
}
