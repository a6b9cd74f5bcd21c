package imapserver

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/imapserver/dovecotref"
)

// threadMessage is a small message with the headers threading looks at;
// an empty field is left out.
func threadMessage(id, subject, date, references, inReplyTo string) []byte {
	var b strings.Builder
	for _, h := range [][2]string{{"Message-ID", id}, {"Subject", subject}, {"Date", date},
		{"References", references}, {"In-Reply-To", inReplyTo}} {
		if h[1] != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
		}
	}
	b.WriteString("\r\nbody\r\n")
	return []byte(b.String())
}

// appendAt is appendCmd with an INTERNALDATE of its own, for ARRIVAL.
func appendAt(day int, raw []byte, flags string) string {
	return fmt.Sprintf(`APPEND INBOX (%s) "%02d-Mar-2024 10:20:30 +0000" {%d+}`+"\r\n%s", flags, day, len(raw), raw)
}

// threadFixture covers the cases of RFC 5256's base subject and REFERENCES
// rules: replies by References and by In-Reply-To, a missing parent, a
// sibling found only by subject, duplicate and missing Message-IDs, a
// reference loop, missing dates, list tags and forward wrappers.
func threadFixture() []string {
	msgs := [][]byte{
		threadMessage("<a@x>", "Hello", "Mon, 1 Jan 2024 10:00:00 +0000", "", ""),
		threadMessage("<b@x>", "Re: Hello", "Tue, 2 Jan 2024 10:00:00 +0000", "<a@x>", ""),
		threadMessage("<c@x>", "RE: hello", "Wed, 3 Jan 2024 10:00:00 +0000", "", "<b@x>"),
		threadMessage("<d@x>", "Re: Hello", "Tue, 2 Jan 2024 12:00:00 +0000", "<a@x> <missing@x>", ""),
		threadMessage("<e@x>", "[list] Re: Hello", "Thu, 4 Jan 2024 10:00:00 +0100", "", ""),
		threadMessage("<f@x>", "Other", "", "", ""),
		threadMessage("<g@x>", "Fwd: Other", "Fri, 5 Jan 2024 10:00:00 -0500", "", ""),
		threadMessage("", "=?utf-8?q?Caf=C3=A9?= time", "Sat, 6 Jan 2024 10:00:00 +0000", "", ""),
		threadMessage("<a@x>", "Dup", "Sat, 6 Jan 2024 10:00:00 +0000", "", ""),
		threadMessage("<j@x>", "Orphans", "Sun, 7 Jan 2024 10:00:00 +0000", "<zz@x>", ""),
		threadMessage("<k@x>", "Re: Orphans", "Sun, 7 Jan 2024 09:00:00 +0000", "<zz@x>", ""),
		threadMessage("<l@x>", "[fwd: Hello]", "Mon, 8 Jan 2024 10:00:00 +0000", "", ""),
		threadMessage("<m@x>", "Re: [list] Fwd: Topic (fwd)", "Mon, 8 Jan 2024 11:00:00 +0000", "", ""),
		threadMessage("<n@x>", "Topic", "Mon, 8 Jan 2024 12:00:00 +0000", "", ""),
		threadMessage("<o@x>", "Loop", "Tue, 9 Jan 2024 10:00:00 +0000", "<p@x>", ""),
		threadMessage("<p@x>", "Re: Loop", "Tue, 9 Jan 2024 11:00:00 +0000", "<o@x>", ""),
		threadMessage("<q@x>", "", "Wed, 10 Jan 2024 10:00:00 +0000", "", ""),
		threadMessage("<r@x>", "Re:", "Wed, 10 Jan 2024 11:00:00 +0000", "", ""),
	}
	var cmds []string
	for i, m := range msgs {
		cmds = append(cmds, appendAt(28-i, m, []string{"", `\Seen`}[i%2]))
	}
	return cmds
}

// sortFixture adds messages differing in From, To, Cc and size.
func sortFixture() []string {
	msgs := []string{
		"From: Zed <zed@example.com>\r\nTo: b@example.com\r\nCc: y@example.com\r\nSubject: one\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nshort\r\n",
		"From: amy@example.com\r\nTo: A <a@example.com>, z@example.com\r\nSubject: Two\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nlonger body here\r\n",
		"From: \"Bob\" <BOB@example.com>\r\nTo: team: c@example.com;\r\nCc: x@example.com\r\nSubject: re: one\r\n\r\nlongest body of all of them\r\n",
		"Subject: no addresses at all\r\nDate: Tue, 2 Jan 2024 01:00:00 +0300\r\n\r\nx\r\n",
	}
	var cmds []string
	for i, m := range msgs {
		cmds = append(cmds, appendAt(10+i%2, []byte(m), ""))
	}
	return cmds
}

// lit is a LITERAL+ literal.
func lit(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

// appendFixture is what the MULTIAPPEND and CATENATE conversations use:
// three small messages, one multipart.
var (
	plainA = "Subject: first\r\nFrom: a@example.com\r\n\r\nfirst body\r\n"
	plainB = "Subject: second\r\n\r\nsecond body\r\n"
	multi  = "Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\npart one\r\n" +
		"--b\r\nContent-Type: text/html\r\n\r\n<p>part two</p>\r\n--b--\r\n"
)

// TestImaplibSortThreadAgainstDovecot runs SORT, THREAD and LSUB as
// Python's imaplib sends them against the bridge and Dovecot: the answers
// must be the same.
func TestImaplibSortThreadAgainstDovecot(t *testing.T) {
	dove := startDovecot(t)
	ts := startServer(t)
	_, dovePort, _ := net.SplitHostPort(dove.Addr)
	ours := runTool(t, time.Minute, "python3", "testdata/imaplib_sort.py", "127.0.0.1", ts.port(), testUser, testToken)
	theirs := runTool(t, time.Minute, "python3", "testdata/imaplib_sort.py", "127.0.0.1", dovePort, "imaplib-sort", dovecotref.Password)
	var a, b map[string]any
	if err := json.Unmarshal([]byte(ours), &a); err != nil {
		t.Fatalf("bridge: %q: %v", ours, err)
	}
	if err := json.Unmarshal([]byte(theirs), &b); err != nil {
		t.Fatalf("dovecot: %q: %v", theirs, err)
	}
	if len(a) != 10 {
		t.Fatalf("bridge answered %d items: %v", len(a), a)
	}
	for k, v := range b {
		if fmt.Sprint(a[k]) != fmt.Sprint(v) {
			t.Errorf("%s: bridge %v, dovecot %v", k, a[k], v)
		}
	}
}
