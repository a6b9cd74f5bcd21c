package mailtext

import (
	"bufio"
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/accounts"
)

// generatedID matches a Message-ID the bridge made.
var generatedID = regexp.MustCompile(`<[0-9a-f]{32}@asmtp>`)

func TestInboundCopy(t *testing.T) {
	carol := accounts.Contact{Name: "Carol", Passport: passport.Hash{0xca}}
	id := carol.Passport.String()
	want := func(rest string) string {
		return "X-ASMTP-Sender: " + id + "\r\nFrom: \"Carol\" <" + id + "@asmtp>\r\n" + rest
	}
	for _, c := range []struct{ name, in, want string }{
		{"plain",
			"From: Carol <carol@example.org>\r\nSubject: hi\r\n\r\nbody\r\n",
			want("X-ASMTP-Original-From: Carol <carol@example.org>\r\nSubject: hi\r\n\r\nbody\r\n")},
		{"forged sender fields removed, folded From kept whole",
			"X-ASMTP-Sender: 00000000000000000000000000000000\r\nFrom: The Bank\r\n <ceo@bank.example>\r\nx-asmtp-original-from: lies\r\nTo: x\r\n\r\nbody",
			want("X-ASMTP-Original-From: The Bank\r\n <ceo@bank.example>\r\nTo: x\r\n\r\nbody")},
		{"a sender-written Sender is removed: no \"on behalf of\" line in the client",
			"From: alice@x\r\nSender: Bob <" + id + "@asmtp>\r\nsender:\r\n folded@y\r\nSubject: s\r\n\r\nbody",
			want("X-ASMTP-Original-From: alice@x\r\nSubject: s\r\n\r\nbody")},
		{"two From fields",
			"From: a@x\r\nFrom: b@y\r\n\r\n",
			want("X-ASMTP-Original-From: a@x\r\nX-ASMTP-Original-From: b@y\r\n\r\n")},
		{"no From",
			"Subject: s\r\n\r\nbody\r\n",
			want("Subject: s\r\n\r\nbody\r\n")},
		{"From that is just the verified address is not repeated",
			"From: <" + strings.ToUpper(id) + "@ASMTP>\r\nSubject: s\r\n\r\nbody",
			want("Subject: s\r\n\r\nbody")},
		{"the sender's own display name is kept",
			"From: Carol C. <" + id + "@asmtp>\r\n\r\n",
			want("X-ASMTP-Original-From: Carol C. <" + id + "@asmtp>\r\n\r\n")},
		{"bare LF line ends kept",
			"From: c@x\nSubject: s\n\nbody\nmore\n",
			want("X-ASMTP-Original-From: c@x\nSubject: s\n\nbody\nmore\n")},
		{"no header at all: all body",
			"just text\r\n",
			want("\r\njust text\r\n")},
		{"header only, no line end",
			"Subject: s",
			want("Subject: s\r\n\r\n")},
		{"empty body line that looks like a header stays in the body",
			"Subject: s\r\n\r\nFrom: not a header\r\n",
			want("Subject: s\r\n\r\nFrom: not a header\r\n")},
	} {
		if got := string(InboundCopy([]byte(c.in), carol, "asmtp")); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
	// A petname that needs encoding is encoded.
	carol.Name = "Čarol ✓"
	if got := string(InboundCopy([]byte("\r\n"), carol, "asmtp")); !strings.Contains(got, "From: =?utf-8?q?") {
		t.Errorf("non-ASCII petname not encoded: %q", got)
	}
}

func TestOutgoingCopy(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const dated = "Date: Fri, 02 Jan 2026 03:04:05 +0000\r\nMessage-ID: <x@y>\r\n"
	for _, c := range []struct{ name, in, want string }{
		{"Bcc removed, To and Cc kept",
			dated + "To: a@asmtp\r\nCc: b@asmtp\r\nBcc: c@asmtp\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n",
			dated + "To: a@asmtp\r\nCc: b@asmtp\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n"},
		{"folded Bcc and Resent-Bcc removed whole, any case",
			dated + "bcc: c@asmtp,\r\n d@asmtp\r\nRESENT-BCC: e@asmtp\r\nSubject: s\r\n\r\nb",
			dated + "Subject: s\r\n\r\nb"},
		{"Date and Message-ID added when missing",
			"Subject: s\r\n\r\nbody",
			"Date: Fri, 02 Jan 2026 03:04:05 +0000\r\nMessage-ID: <ID@asmtp>\r\nSubject: s\r\n\r\nbody"},
		{"bare LF kept",
			dated + "Bcc: c@asmtp\nSubject: s\n\nbody\n",
			dated + "Subject: s\n\nbody\n"},
	} {
		got := generatedID.ReplaceAllString(string(outgoingMessage(t, []byte(c.in), now)), "<ID@asmtp>")
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}

	// Near the size limit nothing is added that would push it over.
	big := make([]byte, mail.MaxMessageSize-10)
	copy(big, "Subject: s\r\n\r\n")
	if got := outgoingMessage(t, big, now); len(got) != len(big) {
		t.Errorf("a message at the limit grew to %d bytes", len(got))
	}
}

// outgoingMessage is what the outbound queue stores of msg: the header
// read from a stream and edited, then the body.
func outgoingMessage(t *testing.T, msg []byte, now time.Time) []byte {
	t.Helper()
	head, err := ReadHead(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		t.Fatal(err)
	}
	return append(OutgoingCopy(head, int64(len(msg)-len(head)), now, "asmtp"), msg[len(head):]...)
}

// TestHeadSplit: the header read from a stream (ReadHead) is the one cut
// from memory (SplitHead), and editing only it gives what editing the
// whole message gave, for messages of every shape.
func TestHeadSplit(t *testing.T) {
	long := "X-Long: " + strings.Repeat("y", 10000) + "\r\n"
	c := accounts.Contact{Name: "Bob", Passport: passport.Hash{7}}
	for _, msg := range []string{
		"Subject: s\r\n\r\nbody\r\n\r\nmore",
		"Subject: s\n\nbody",
		"Subject: all header\r\nFrom: a@b\r\n",
		"\r\nbody only",
		"not a header line\r\nmore\r\n\r\nbody",
		long + "Subject: s\r\n\r\nbody",
		"Subject: s\r\n" + long + "\r\n" + long,
		"",
	} {
		head, body := SplitHead([]byte(msg))
		read, err := ReadHead(bufio.NewReaderSize(strings.NewReader(msg), 16))
		if err != nil || string(read) != string(head) || string(head)+string(body) != msg {
			t.Errorf("%.40q: ReadHead %.40q, %v; SplitHead %.40q + %.40q", msg, read, err, head, body)
		}
		if whole, split := InboundCopy([]byte(msg), c, "asmtp"), append(InboundCopy(head, c, "asmtp"), body...); string(whole) != string(split) {
			t.Errorf("%.40q: inbound copy of the head and body\n%q, of the whole\n%q", msg, split, whole)
		}
	}
	huge := "Subject: s\r\n" + strings.Repeat("To: a@b\r\n", MaxHeadBytes/9) + "\r\nbody"
	if _, err := ReadHead(bufio.NewReader(strings.NewReader(huge))); !errors.Is(err, ErrHeadTooLarge) {
		t.Errorf("a %d-byte header: %v, want ErrHeadTooLarge", len(huge), err)
	}
}
