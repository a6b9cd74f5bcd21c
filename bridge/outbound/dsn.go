package outbound

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"strings"
	"time"

	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/bridge/mailtext"
	"github.com/asmtp/asmtp/mailstore"
)

// maxDiagnostic bounds the error text quoted in a bounce.
const maxDiagnostic = 900

// bounce builds the delivery status notification (RFC 3464: a
// multipart/report with a text for people, a message/delivery-status for
// programs, and the original header as text/rfc822-headers) that tells the
// sender a message could not be delivered to it.Address and why. The
// original body is not included: the sender has it in Sent, and a 25 MiB
// message would double in size.
func (w *Worker) bounce(ctx context.Context, it mailstore.OutboxItem, raw []byte, cause error, now time.Time) []byte {
	status, why := bounceReason(cause, w.cfg.RetryWindow)
	text := fmt.Sprintf("Your message could not be delivered to %s.\r\n\r\n%s", it.Address, mailtext.Wrap(why, 76))
	return w.report(ctx, dsn{it: it, raw: raw, cause: cause, now: now, action: "failed", status: status, text: text,
		subject: "Undelivered Mail Returned to Sender"})
}

// delayed builds the notification (RFC 3464, Action: delayed, as Postfix's
// delay_warning_time sends) that tells the sender a message to it.Address
// is still not delivered after DelayWarning, why, and until when it is
// retried. It needs no answer: the sender need not send the message again.
func (w *Worker) delayed(ctx context.Context, it mailstore.OutboxItem, raw []byte, cause error, now time.Time) []byte {
	until := it.QueuedAt.Add(w.cfg.RetryWindow)
	status, why := delayReason(cause)
	text := fmt.Sprintf("%s\r\n\r\n%s\r\n\r\n%s",
		mailtext.Wrap(fmt.Sprintf("Your message to %s is not delivered yet, %s after you sent it.", it.Address, mailtext.Duration(now.Sub(it.QueuedAt))), 76),
		mailtext.Wrap(why, 76),
		mailtext.Wrap(fmt.Sprintf("It is still being tried, until %s; if it cannot be delivered by then you will get another report. "+
			"You do not need to send it again.", until.Format(time.RFC1123Z)), 76))
	return w.report(ctx, dsn{it: it, raw: raw, cause: cause, now: now, action: "delayed", status: status, text: text,
		subject: "Delayed Mail (still being retried)", retryUntil: until})
}

// dsn is what a delivery status notification says.
type dsn struct {
	it         mailstore.OutboxItem
	raw        []byte // the queued message: its header is attached
	cause      error  // the last failure
	now        time.Time
	action     string // RFC 3464 Action: failed or delayed
	status     string // RFC 3463 status code
	subject    string
	text       string    // the explanation for people, CRLF lines
	retryUntil time.Time // Will-Retry-Until, when set
}

// report builds the multipart/report message of r.
func (w *Worker) report(ctx context.Context, r dsn) []byte {
	domain := w.cfg.Domain
	to := r.it.Account
	if a, err := w.dir.Account(ctx, r.it.Account); err == nil {
		to = a.Address(domain).String()
	}
	diagnostic := strings.Join(strings.Fields(r.cause.Error()), " ")
	if len(diagnostic) > maxDiagnostic {
		diagnostic = diagnostic[:maxDiagnostic] + "…"
	}

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	text := fmt.Sprintf("This is the ASMTP bridge.\r\n\r\n%s\r\n\r\n"+
		"Submitted: %s\r\nAttempts:  %d, the last at %s\r\nError:     %s\r\n\r\n"+
		"The header of your message is attached.\r\n",
		r.text, r.it.QueuedAt.Format(time.RFC1123Z), r.it.Attempts+1, r.now.Format(time.RFC1123Z), diagnostic)
	writePart(mw, "text/plain; charset=utf-8", "8bit", text)
	status := fmt.Sprintf("Reporting-MTA: dns; %s\r\nArrival-Date: %s\r\n\r\n"+
		"Final-Recipient: rfc822; %s\r\nAction: %s\r\nStatus: %s\r\n"+
		"Diagnostic-Code: X-ASMTP; %s\r\nLast-Attempt-Date: %s\r\n",
		domain, r.it.QueuedAt.Format(time.RFC1123Z), r.it.Address, r.action, r.status, diagnostic, r.now.Format(time.RFC1123Z))
	if !r.retryUntil.IsZero() {
		status += "Will-Retry-Until: " + r.retryUntil.Format(time.RFC1123Z) + "\r\n"
	}
	writePart(mw, "message/delivery-status", "7bit", status)
	writePart(mw, "text/rfc822-headers", "8bit", string(mailtext.Header(r.raw)))
	mw.Close()

	var id [16]byte
	rand.Read(id[:])
	var m bytes.Buffer
	fmt.Fprintf(&m, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", domain)
	fmt.Fprintf(&m, "To: <%s>\r\n", to)
	fmt.Fprintf(&m, "Subject: %s\r\n", r.subject)
	fmt.Fprintf(&m, "Date: %s\r\n", r.now.Format(time.RFC1123Z))
	fmt.Fprintf(&m, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(id[:]), domain)
	fmt.Fprintf(&m, "Auto-Submitted: auto-replied\r\n")
	fmt.Fprintf(&m, "MIME-Version: 1.0\r\n")
	fmt.Fprintf(&m, "Content-Type: multipart/report; report-type=delivery-status; boundary=\"%s\"\r\n\r\n", mw.Boundary())
	m.WriteString("This is a delivery status notification in MIME format.\r\n")
	m.Write(body.Bytes())
	return m.Bytes()
}

func writePart(mw *multipart.Writer, contentType, encoding, content string) {
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", contentType)
	h.Set("Content-Transfer-Encoding", encoding)
	w, _ := mw.CreatePart(h) // writes to a bytes.Buffer: cannot fail
	w.Write([]byte(content))
}

// bounceReason is the RFC 3463 status and a sentence for the sender.
func bounceReason(cause error, window time.Duration) (status, why string) {
	if errors.Is(cause, errUnknownPassport) {
		return "5.1.1", fmt.Sprintf("The address names a passport that could not be found on the ASMTP network in %s of trying. "+
			"Check the address. If it is right, its owner's node has been offline all that time: send the message again "+
			"later, or add the contact from its passport file (asmtpd-cli contact add --passport).", mailtext.Duration(window))
	}
	if errors.Is(cause, errNoHolder) {
		return "5.4.4", fmt.Sprintf("Your node has stored the message, but in %s no node of the recipient's was seen to take it: "+
			"their node has been offline all that time, or they have not added you as a contact (ASMTP carries mail only "+
			"between contacts). Your node keeps the message for its retention period (%s by default): if their node "+
			"comes back, or they add you, before then, it may still arrive.", mailtext.Duration(window), mailtext.Duration(node.DefaultRetention))
	}
	return "5.4.7", fmt.Sprintf("The message could not be handed to the ASMTP network in %s of trying.", mailtext.Duration(window))
}

// delayReason is the RFC 3463 status (persistent transient: 4.x.x) and a
// sentence for the sender of a delayed message.
func delayReason(cause error) (status, why string) {
	switch {
	case errors.Is(cause, errUnknownPassport):
		return "4.1.1", "The address names a passport that has not been found on the ASMTP network so far: " +
			"its owner's node may be offline, or the address may be wrong."
	case errors.Is(cause, errNoHolder):
		return "4.4.4", "Your node has stored the message, but no node of the recipient's has been seen to take it so far: " +
			"their node may be offline, or they may not have added you as a contact (ASMTP carries mail only between contacts)."
	case errors.Is(cause, errAwaitingCard):
		return "4.4.4", "The recipient's node has not answered your contact card so far: their node may be offline, " +
			"or they may not have added you as a contact (ASMTP carries mail only between contacts)."
	case errors.Is(cause, errNotLinked):
		return "4.4.7", "Your account is not on the ASMTP node yet: the node has refused it so far (see the node's log)."
	}
	return "4.4.7", "The message could not be handed to the ASMTP network so far."
}
