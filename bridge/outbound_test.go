package bridge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/smtpserver"
	"github.com/asmtp/asmtp/mailstore"
)

// generatedID matches a Message-ID the bridge made.
var generatedID = regexp.MustCompile(`<[0-9a-f]{32}@asmtp>`)

func TestOutgoingCopy(t *testing.T) {
	b := &Bridge{cfg: Config{Domain: "asmtp"}}
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
		got := generatedID.ReplaceAllString(string(outgoingMessage(t, b, []byte(c.in), now)), "<ID@asmtp>")
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}

	// Near the size limit nothing is added that would push it over.
	big := make([]byte, MaxMessageSize-10)
	copy(big, "Subject: s\r\n\r\n")
	if got := outgoingMessage(t, b, big, now); len(got) != len(big) {
		t.Errorf("a message at the limit grew to %d bytes", len(got))
	}
}

// outgoingMessage is what Submit stores of msg: the header read from a
// stream and edited, then the body.
func outgoingMessage(t *testing.T, b *Bridge, msg []byte, now time.Time) []byte {
	t.Helper()
	head, err := readHead(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		t.Fatal(err)
	}
	return append(b.outgoingCopy(head, int64(len(msg)-len(head)), now), msg[len(head):]...)
}

// TestHeadSplit: the header read from a stream (readHead) is the one cut
// from memory (splitHead), and editing only it gives what editing the
// whole message gave, for messages of every shape.
func TestHeadSplit(t *testing.T) {
	long := "X-Long: " + strings.Repeat("y", 10000) + "\r\n"
	c := Contact{Name: "Bob", Passport: passport.Hash{7}}
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
		head, body := splitHead([]byte(msg))
		read, err := readHead(bufio.NewReaderSize(strings.NewReader(msg), 16))
		if err != nil || string(read) != string(head) || string(head)+string(body) != msg {
			t.Errorf("%.40q: readHead %.40q, %v; splitHead %.40q + %.40q", msg, read, err, head, body)
		}
		if whole, split := inboundCopy([]byte(msg), c, "asmtp"), append(inboundCopy(head, c, "asmtp"), body...); string(whole) != string(split) {
			t.Errorf("%.40q: inbound copy of the head and body\n%q, of the whole\n%q", msg, split, whole)
		}
	}
	huge := "Subject: s\r\n" + strings.Repeat("To: a@b\r\n", maxHeadBytes/9) + "\r\nbody"
	if _, err := readHead(bufio.NewReader(strings.NewReader(huge))); !errors.Is(err, errHeadTooLarge) {
		t.Errorf("a %d-byte header: %v, want errHeadTooLarge", len(huge), err)
	}
}

func TestResolveRecipient(t *testing.T) {
	e := newTestEnv(t)
	b := &Bridge{cfg: Config{Domain: "asmtp"}, reg: e.reg}
	e.addAccount(t, "alice")
	carol := newOutsider(t)
	if _, err := e.reg.AddContact(context.Background(), "alice", "Carol", carol.p.Export()); err != nil {
		t.Fatal(err)
	}
	stranger := passport.Hash{1, 2, 3}
	for _, c := range []struct {
		addr   string
		want   passport.Hash
		status [3]int // zero: accepted
		says   string
	}{
		{addr: carol.p.ID().String() + "@asmtp", want: carol.p.ID()},
		{addr: strings.ToUpper(carol.p.ID().String()) + "@ASMTP", want: carol.p.ID()},
		{addr: "carol@asmtp", want: carol.p.ID()},
		{addr: stranger.String() + "@asmtp", want: stranger},
		{addr: "dave@asmtp", status: [3]int{5, 1, 1}, says: `No contact named "dave"`},
		{addr: "carol@example.org", status: [3]int{5, 1, 2}, says: "not an ASMTP address"},
		{addr: "carol", status: [3]int{5, 1, 3}, says: "not a mail address"},
		{addr: "@asmtp", status: [3]int{5, 1, 3}, says: "not a mail address"},
	} {
		got, err := b.resolveRecipient(context.Background(), "alice", c.addr)
		var rej *smtpserver.Rejection
		switch {
		case c.status == [3]int{} && (err != nil || got != c.want):
			t.Errorf("%s: %v, %v; want %v", c.addr, got, err, c.want)
		case c.status != [3]int{} && (!errors.As(err, &rej) || rej.Status != c.status || !strings.Contains(rej.Reason, c.says)):
			t.Errorf("%s: %v; want a %v rejection saying %q", c.addr, err, c.status, c.says)
		}
	}
}

// Every attempt at a queued mail keeps the message id drawn when it was
// queued, and the SMTP login works with the pseudo-address too.
func TestRetriesKeepTheMessageID(t *testing.T) {
	s, alice, pw := oneSite(t, func(c *DeliveryConfig) { c.RetryWindow = time.Hour; c.FirstRetry = 100 * time.Millisecond })
	addr := alice.Address("asmtp").String()
	nowhere := passport.Hash{0xde, 0xad}.String() + "@asmtp"
	host, port := hostPort(s.bridge.SMTPAddr())
	runPy(t, `
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=30) as s:
    s.login(sys.argv[3], sys.argv[4])
    s.sendmail(sys.argv[3], [sys.argv[5]], b"Subject: retried\r\n\r\nhi\r\n")
`, host, port, addr, pw, nowhere)
	// The look-up fails at once ("no peer to ask"), so attempts follow
	// each other FirstRetry apart: the first one seen may be the second.
	var first mailstore.OutboxItem
	waitUntil(t, 10*time.Second, "a failed attempt", func() bool {
		q, err := s.mail.Outbox(context.Background(), "alice")
		if err == nil && len(q) == 1 && q[0].Attempts >= 1 {
			first = q[0]
		}
		return first.Attempts >= 1
	})
	if !strings.Contains(first.LastError, "not found") {
		t.Errorf("last error %q, want the passport look-up failure", first.LastError)
	}
	waitUntil(t, 20*time.Second, "a further failed attempt", func() bool {
		q, err := s.mail.Outbox(context.Background(), "alice")
		return err == nil && len(q) == 1 && q[0].Attempts > first.Attempts && q[0].MessageID == first.MessageID
	})
}

// runPy runs a Python script with args.
func runPy(t testing.TB, script string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "python3", append([]string{"-c", script}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
}
