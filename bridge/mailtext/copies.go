package mailtext

import (
	"crypto/rand"
	"encoding/hex"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/bridge/accounts"
)

// Header fields the bridge writes on inbound mail; the same fields written
// by a sender are removed first.
const (
	// Sender names the passport whose shared key sealed the message, as
	// checked by the bridge.
	Sender = "X-ASMTP-Sender"
	// OriginalFrom keeps the From: the sender wrote.
	OriginalFrom = "X-ASMTP-Original-From"
)

// OutgoingCopy is the header every recipient gets, from head (see
// SplitHead) of a message whose body is bodySize bytes: without Bcc and
// Resent-Bcc fields (each recipient has an envelope of its own, so Bcc
// recipients are not revealed to anyone), and with a Date and a Message-ID
// at domain when the client gave none (RFC 6409 §8.2-8.3), as long as the
// message still fits in mail.MaxMessageSize. Everything else is kept byte
// for byte.
func OutgoingCopy(head []byte, bodySize int64, now time.Time, domain string) []byte {
	fields, rest := splitMessage(head)
	fields = withoutFields(fields, "Bcc", "Resent-Bcc")
	var added []headerField
	if !hasField(fields, "Date") {
		added = append(added, newField("Date", now.UTC().Format(time.RFC1123Z)))
	}
	if !hasField(fields, "Message-ID") {
		var id [16]byte
		rand.Read(id[:])
		added = append(added, newField("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+domain+">"))
	}
	if out := joinMessage(append(added, fields...), rest); int64(len(out))+bodySize <= mail.MaxMessageSize {
		return out
	}
	return joinMessage(fields, rest)
}

// InboundCopy is msg, or the head of one (SplitHead), as the account's
// INBOX gets it from contact c: From:
// is the contact's address with the petname from the address book, the
// sender's own From fields kept as X-ASMTP-Original-From, and
// X-ASMTP-Sender names the verified passport. Those fields written by the
// sender, and Sender (authorFields), are removed; everything else, the
// body above all, is kept byte for byte. A message that does not start
// with a header field is taken as all body.
func InboundCopy(msg []byte, c accounts.Contact, domain string) []byte {
	fields, rest := splitMessage(msg)
	if len(fields) > 0 && fields[0].name == "" {
		fields, rest = nil, append([]byte("\r\n"), msg...)
	}
	out := []headerField{
		newField(Sender, c.Passport.String()),
		newField("From", c.MailAddress(domain).String()),
	}
	own := c.Address(domain).String()
	for _, f := range fields {
		if f.is("From") && !isAddress(f.value(), own) {
			out = append(out, headerField{name: OriginalFrom, raw: append([]byte(OriginalFrom+":"), f.value()...)})
		}
	}
	out = append(out, withoutFields(fields, authorFields...)...)
	if rest == nil {
		rest = []byte("\r\n")
	}
	return joinMessage(out, rest)
}

// isAddress reports whether a From value is just addr, with no display
// name (as asmtp-cli writes it), so that X-ASMTP-Original-From would only
// repeat the From the bridge writes.
func isAddress(value []byte, addr string) bool {
	a, err := netmail.ParseAddress(strings.TrimSpace(string(value)))
	return err == nil && a.Name == "" && strings.EqualFold(a.Address, addr)
}
