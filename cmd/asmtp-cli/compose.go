package main

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // legacy charsets in headers and text parts

	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/passport"
)

// Messages are RFC 5322 mail in the payload format of package mail, the
// same as the bridge's, so that a mail client behind a bridge account and
// asmtp-cli read each other's messages.
const (
	// addressDomain is the domain of the bridge's pseudo-addresses
	// "<passport id>@asmtp" (bridge.DefaultDomain).
	addressDomain = "asmtp"
	// summaryRunes bounds the one-line summary of a message.
	summaryRunes = 60
	noSubject    = "(no subject)"
)

// pseudoAddress is the e-mail address of a passport. Petnames never leave
// the device, so headers carry bare addresses.
func pseudoAddress(id passport.Hash) netmail.Address {
	return netmail.Address{Address: id.String() + "@" + addressDomain}
}

// envelope is what asmtp-cli adds to what the user wrote.
type envelope struct {
	from, to netmail.Address
	id       mail.MessageID
	date     time.Time
}

// composeMail turns what the user wrote, plain text or a whole RFC 5322
// message, into the message sent. A message keeps its header, except that
// From is always ours (the recipient checks the sender by key anyway) and
// missing To, Date, Message-ID and MIME fields are added. Plain text
// becomes a text/plain message whose Subject is its first line. Line
// breaks become CRLF.
func composeMail(text []byte, env envelope) []byte {
	text = toCRLF(text)
	fields, body, ok := splitHeader(text)
	if !ok {
		fields, body = nil, text
		if s := firstLine(string(text)); s != "" {
			fields = []string{"Subject: " + mime.QEncoding.Encode("utf-8", s) + "\r\n"}
		}
	}
	has := make(map[string]bool)
	for _, f := range fields {
		has[fieldName(f)] = true
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", env.from.String())
	if !has["to"] {
		fmt.Fprintf(&b, "To: %s\r\n", env.to.String())
	}
	if !has["date"] {
		fmt.Fprintf(&b, "Date: %s\r\n", env.date.Format(time.RFC1123Z))
	}
	if !has["message-id"] {
		fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", env.id, addressDomain)
	}
	for _, f := range fields {
		if fieldName(f) != "from" {
			b.WriteString(f)
		}
	}
	if has["mime-version"] || has["content-type"] || has["content-transfer-encoding"] {
		b.WriteString("\r\n")
		b.Write(body)
		return b.Bytes()
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write(body) // a bytes.Buffer does not fail
	qp.Close()
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// isMailField reports whether a header field (lower-case name) makes text
// a mail rather than a note that happens to start with "Word: ".
func isMailField(name string) bool {
	switch name {
	case "from", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references", "mime-version", "content-type":
		return true
	}
	return false
}

// splitHeader splits an RFC 5322 message (CRLF line breaks) into its header
// fields, each with its folded lines and final CRLF, and its body. ok is
// false when text is not a message: no blank line after a well-formed
// header with at least one of headerFields.
func splitHeader(text []byte) (fields []string, body []byte, ok bool) {
	end := bytes.Index(text, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, nil, false
	}
	m, err := netmail.ReadMessage(bytes.NewReader(text[:end+4]))
	if err != nil {
		return nil, nil, false
	}
	known := false
	for k := range m.Header {
		known = known || isMailField(strings.ToLower(k))
	}
	if !known {
		return nil, nil, false
	}
	for _, line := range strings.SplitAfter(string(text[:end+2]), "\r\n") {
		switch {
		case line == "":
		case (line[0] == ' ' || line[0] == '\t') && len(fields) > 0:
			fields[len(fields)-1] += line
		default:
			fields = append(fields, line)
		}
	}
	return fields, text[end+4:], true
}

// fieldName is the lower-case name of a header field line.
func fieldName(field string) string {
	name, _, _ := strings.Cut(field, ":")
	return strings.ToLower(strings.TrimSpace(name))
}

// toCRLF turns LF and lone CR line breaks into CRLF.
func toCRLF(b []byte) []byte {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

// firstLine is the first non-blank line of text, cleaned and shortened to
// summaryRunes runes; "" if there is none.
func firstLine(text string) string {
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if s := oneLine(line); s != "" {
			return s
		}
	}
	return ""
}

// oneLine removes control characters, trims, and shortens s to
// summaryRunes runes.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case unicode.IsControl(r):
			return -1
		}
		return r
	}, s))
	if utf8.RuneCountInString(s) <= summaryRunes {
		return s
	}
	return string([]rune(s)[:summaryRunes-1]) + "…"
}

// parsedMail is what asmtp-cli shows of a message.
type parsedMail struct {
	subject string
	date    string // as written by the sender; "" if none
	text    string // the first text/plain part, decoded
}

// parseMessage reads a received message: an RFC 5322 mail, or an upstream
// v0.1.0 raw text (subject = first line, text = everything).
func parseMessage(m message) parsedMail {
	if m.kind == mail.KindLegacyText {
		text := strings.ToValidUTF8(string(m.data), string(utf8.RuneError))
		return parsedMail{subject: firstLine(text), text: text}
	}
	e, err := gomessage.Read(bytes.NewReader(m.data))
	if e == nil {
		return parsedMail{text: fmt.Sprintf("(unreadable message: %v; `read --raw` shows it as received)", err)}
	}
	var p parsedMail
	p.subject, _ = e.Header.Text("Subject")
	p.subject = oneLine(p.subject)
	p.date = e.Header.Get("Date")
	p.text = textPart(e)
	if p.subject == "" {
		p.subject = firstLine(p.text)
	}
	return p
}

// textPart returns the first text/plain part that is not an attachment.
func textPart(e *gomessage.Entity) string {
	var text string
	found := false
	e.Walk(func(_ []int, part *gomessage.Entity, err error) error {
		if found || (err != nil && !gomessage.IsUnknownCharset(err)) {
			return nil
		}
		t, _, terr := part.Header.ContentType()
		if terr != nil && part.Header.Get("Content-Type") == "" {
			t = "text/plain" // RFC 2045 default
		}
		if disp, _, _ := part.Header.ContentDisposition(); t != "text/plain" || disp == "attachment" {
			return nil
		}
		b, rerr := io.ReadAll(io.LimitReader(part.Body, mail.MaxMessageSize))
		if rerr != nil {
			return nil
		}
		text, found = strings.ToValidUTF8(string(b), string(utf8.RuneError)), true
		return nil
	})
	if !found {
		return "(no text part; `read --raw` shows the whole message)"
	}
	return strings.ReplaceAll(text, "\r\n", "\n")
}

// summary is the one line a message is listed with: its subject, or the
// first line of its text.
func summary(m message) string {
	if s := parseMessage(m).subject; s != "" {
		return s
	}
	return noSubject
}

// summaryLine is how sync and the prompt announce a message:
// "<time> <from> <subject-or-first-line>".
func summaryLine(m message) string {
	return fmt.Sprintf("%s %s %s", m.receivedAt.Local().Format(time.RFC3339), m.petname, summary(m))
}

// renderMessage writes a message for reading. The sender line is the
// contact the topic belongs to, which the seal proved; a From header can
// say anything.
func renderMessage(w io.Writer, m message, c contact) error {
	p := parseMessage(m)
	date := p.date
	if date == "" {
		date = m.receivedAt.Local().Format(time.RFC1123Z)
	}
	subject := p.subject
	if subject == "" {
		subject = noSubject
	}
	_, err := fmt.Fprintf(w, "From:     %s <%s> (sender verified by key)\nDate:     %s\nReceived: %s\nSubject:  %s\nId:       %s\n\n%s",
		c.petname, pseudoAddress(c.passport).Address, date, m.receivedAt.Local().Format(time.RFC3339), subject, m.id, p.text)
	if err == nil && !strings.HasSuffix(p.text, "\n") {
		_, err = fmt.Fprintln(w)
	}
	return err
}

// rawMessage is a message as RFC 5322 bytes; an upstream raw text is
// presented as a text/plain mail (mail.FormatLegacy).
func rawMessage(m message, c contact, own passport.Hash) ([]byte, error) {
	if m.kind != mail.KindLegacyText {
		return m.data, nil
	}
	return mail.FormatLegacy(mail.Message{Sender: c.sharedKey, ID: m.id, Kind: m.kind, Data: m.data}, mail.LegacyHeader{
		From: pseudoAddress(c.passport),
		To:   pseudoAddress(own),
		Date: m.receivedAt,
	})
}
