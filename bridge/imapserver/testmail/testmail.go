// Package testmail generates the deterministic message corpus that the IMAP
// server's tests and contrib/bench/imap load into servers: message i is
// always the same bytes, and the corpus mixes the MIME shapes real mail has
// (plain text, multipart/alternative, attachments, quoted-printable Latin-1,
// forwarded message/rfc822).
package testmail

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// Needle is a word that appears in the body of every 100th message (i%100 ==
// 7), for text searches with a known answer.
const Needle = "quixotically"

var words = strings.Fields(`the of and to in is you that it he was for on are as with his they at be
this have from or one had by word but not what all were we when your can said there use an each
which she do how their if will up other about out many then them these so some her would make like
him into time has look two more write go see number no way could people my than first water been
call who oil its now find long down day did get come made may part bridge mail relay topic node`)

// Message returns message i (i >= 0) of the corpus, with CRLF line endings.
func Message(i int) []byte {
	r := rng(uint64(i)*2654435761 + 1)
	date := time.Date(2024, 1, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * 37 * time.Minute)
	from := fmt.Sprintf("Sender %d <sender%d@example.org>", i%97, i%97)
	subject := fmt.Sprintf("Test message %d about %s %s", i, r.word(), r.word())
	var b strings.Builder
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("Date", date.Format(time.RFC1123Z))
	header("From", from)
	header("To", fmt.Sprintf("user%d@example.net, Other <other@example.net>", i%13))
	header("Message-ID", fmt.Sprintf("<msg%d@testmail.example>", i))
	if i > 0 && i%5 == 0 {
		header("In-Reply-To", fmt.Sprintf("<msg%d@testmail.example>", i-1))
	}
	header("MIME-Version", "1.0")
	text := r.paragraph(20+int(r.next()%150), i)
	switch i % 5 {
	case 0: // no Content-Type at all: RFC 2045 defaults
		header("Subject", subject)
		b.WriteString("\r\n" + text)
	case 1:
		header("Subject", subject)
		header("Content-Type", `multipart/alternative; boundary="alt-`+fmt.Sprint(i)+`"`)
		fmt.Fprintf(&b, "\r\n--alt-%d\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", i, text)
		fmt.Fprintf(&b, "--alt-%d\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>%s</p>\r\n--alt-%d--\r\n", i, text, i)
	case 2:
		header("Subject", subject)
		header("Content-Type", `multipart/mixed; boundary="mix-`+fmt.Sprint(i)+`"`)
		att := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(fmt.Sprintf("attachment %d ", i), 40)))
		fmt.Fprintf(&b, "\r\n--mix-%d\r\nContent-Type: text/plain\r\n\r\n%s\r\n", i, text)
		fmt.Fprintf(&b, "--mix-%d\r\nContent-Type: application/octet-stream; name=\"f%d.bin\"\r\n"+
			"Content-Disposition: attachment; filename=\"f%d.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n--mix-%d--\r\n",
			i, i, i, wrap(att, 76), i)
	case 3:
		header("Subject", "=?iso-8859-1?q?Caf=E9?= "+subject)
		header("Content-Type", "text/plain; charset=iso-8859-1")
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\nD=E9j=E0 vu: " + text)
	case 4:
		header("Subject", "Fwd: "+subject)
		header("Content-Type", `multipart/mixed; boundary="fwd-`+fmt.Sprint(i)+`"`)
		fmt.Fprintf(&b, "\r\n--fwd-%d\r\nContent-Type: text/plain\r\n\r\nForwarded below.\r\n", i)
		fmt.Fprintf(&b, "--fwd-%d\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.com\r\nSubject: inner %d\r\n"+
			"Date: %s\r\n\r\n%s\r\n--fwd-%d--\r\n", i, i, date.Format(time.RFC1123Z), text, i)
	}
	return []byte(b.String())
}

func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\r\n")
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

type rng uint64

func (r *rng) next() uint64 {
	*r = *r*6364136223846793005 + 1442695040888963407
	return uint64(*r >> 33)
}

func (r *rng) word() string { return words[r.next()%uint64(len(words))] }

// paragraph returns n words in lines of about 70 characters, with the
// message's own token and, for every 100th message, Needle.
func (r *rng) paragraph(n, i int) string {
	var b strings.Builder
	line := 0
	put := func(w string) {
		if line+len(w) > 70 {
			b.WriteString("\r\n")
			line = 0
		} else if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	put(fmt.Sprintf("token%05d", i))
	for k := 0; k < n; k++ {
		put(r.word())
		if k == n/2 && i%100 == 7 {
			put(Needle)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}
