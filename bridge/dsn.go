package bridge

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
func (b *Bridge) bounce(ctx context.Context, it mailstore.OutboxItem, raw []byte, cause error, now time.Time) []byte {
	domain := b.cfg.Domain
	to := it.Account
	if a, err := b.reg.Account(ctx, it.Account); err == nil {
		to = a.Address(domain).String()
	}
	status, why := bounceReason(cause, b.cfg.Delivery.RetryWindow)
	diagnostic := strings.Join(strings.Fields(cause.Error()), " ")
	if len(diagnostic) > maxDiagnostic {
		diagnostic = diagnostic[:maxDiagnostic] + "…"
	}

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	text := fmt.Sprintf("This is the ASMTP bridge.\r\n\r\n"+
		"Your message could not be delivered to %s.\r\n\r\n%s\r\n\r\n"+
		"Submitted: %s\r\nAttempts:  %d, the last at %s\r\nError:     %s\r\n\r\n"+
		"The header of your message is attached.\r\n",
		it.Address, wrap(why, 76), it.QueuedAt.Format(time.RFC1123Z), it.Attempts+1, now.Format(time.RFC1123Z), diagnostic)
	writePart(mw, "text/plain; charset=utf-8", "8bit", text)
	report := fmt.Sprintf("Reporting-MTA: dns; %s\r\nArrival-Date: %s\r\n\r\n"+
		"Final-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n"+
		"Diagnostic-Code: X-ASMTP; %s\r\nLast-Attempt-Date: %s\r\n",
		domain, it.QueuedAt.Format(time.RFC1123Z), it.Address, status, diagnostic, now.Format(time.RFC1123Z))
	writePart(mw, "message/delivery-status", "7bit", report)
	writePart(mw, "text/rfc822-headers", "8bit", string(headerBytes(raw)))
	mw.Close()

	var id [16]byte
	rand.Read(id[:])
	var m bytes.Buffer
	fmt.Fprintf(&m, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", domain)
	fmt.Fprintf(&m, "To: <%s>\r\n", to)
	fmt.Fprintf(&m, "Subject: Undelivered Mail Returned to Sender\r\n")
	fmt.Fprintf(&m, "Date: %s\r\n", now.Format(time.RFC1123Z))
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
			"later, or add the contact from its passport file (asmtpd-cli contact add --passport).", humanDuration(window))
	}
	return "5.4.7", fmt.Sprintf("The message could not be handed to the ASMTP network in %s of trying.", humanDuration(window))
}

// humanDuration writes d in the largest whole unit that fits twice.
func humanDuration(d time.Duration) string {
	unit := func(n time.Duration, name string) string {
		if v := d / n; v != 1 {
			return fmt.Sprintf("%d %ss", v, name)
		}
		return "1 " + name
	}
	switch {
	case d >= 48*time.Hour:
		return unit(24*time.Hour, "day")
	case d >= 2*time.Hour:
		return unit(time.Hour, "hour")
	case d >= 2*time.Minute:
		return unit(time.Minute, "minute")
	}
	return unit(time.Second, "second")
}

// wrap breaks text into CRLF lines of at most width bytes at spaces.
func wrap(text string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\r\n")
}
