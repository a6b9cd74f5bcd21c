package mail

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	// LegacyMessageIDDomain is the right-hand side of the Message-ID that
	// FormatLegacy gives a v0.1.0 text (.invalid: it names no real host).
	LegacyMessageIDDomain = "legacy.asmtp.invalid"
	// LegacyNoSubject is the Subject of a v0.1.0 text with no non-blank line.
	LegacyNoSubject = "(no subject)"
	// legacySubjectRunes bounds the Subject taken from the text's first line.
	legacySubjectRunes = 60
)

// ErrNotLegacy is returned by FormatLegacy for a message that is not
// KindLegacyText.
var ErrNotLegacy = errors.New("mail: not a legacy text message")

// LegacyHeader is what FormatLegacy needs that a v0.1.0 text lacks.
type LegacyHeader struct {
	From netmail.Address // the contact
	To   netmail.Address // the account
	Date time.Time       // when the text was received
}

// FormatLegacy presents an upstream v0.1.0 raw text as an RFC 5322 message:
// a single text/plain; charset=utf-8 part, quoted-printable, whose decoded
// body is the text with invalid UTF-8 replaced by U+FFFD (as upstream shows
// it) and line breaks (LF, CRLF or a lone CR) as CRLF. The Subject is the
// first non-blank line, shortened to 60 characters; the Message-ID is
// <id@legacy.asmtp.invalid>.
func FormatLegacy(m Message, h LegacyHeader) ([]byte, error) {
	if m.Kind != KindLegacyText {
		return nil, fmt.Errorf("format legacy %s: %w: kind %s", m.ID, ErrNotLegacy, m.Kind)
	}
	if h.From.Address == "" || h.To.Address == "" || h.Date.IsZero() {
		return nil, fmt.Errorf("format legacy %s: From, To and Date are required", m.ID)
	}
	text := strings.ToValidUTF8(string(m.Data), string(utf8.RuneError))

	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", h.From.String())
	fmt.Fprintf(&b, "To: %s\r\n", h.To.String())
	fmt.Fprintf(&b, "Date: %s\r\n", h.Date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", legacySubject(text)))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", m.ID, LegacyMessageIDDomain)
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(text)); err != nil {
		return nil, fmt.Errorf("format legacy %s: body: %w", m.ID, err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("format legacy %s: body: %w", m.ID, err)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("=\r\n") // a soft line break: ends the message with CRLF without changing the text
	}
	return b.Bytes(), nil
}

// legacySubject is the first non-blank line of text, tabs as spaces, other
// control characters removed, at most legacySubjectRunes runes.
func legacySubject(text string) string {
	isBreak := func(r rune) bool { return r == '\r' || r == '\n' }
	for _, line := range strings.FieldsFunc(text, isBreak) {
		line = strings.TrimSpace(strings.Map(dropControl, line))
		if line == "" {
			continue
		}
		if utf8.RuneCountInString(line) <= legacySubjectRunes {
			return line
		}
		r := []rune(line)
		return string(r[:legacySubjectRunes-1]) + "…"
	}
	return LegacyNoSubject
}

// dropControl turns a tab into a space and removes other control characters.
func dropControl(r rune) rune {
	switch {
	case r == '\t':
		return ' '
	case unicode.IsControl(r):
		return -1
	}
	return r
}
