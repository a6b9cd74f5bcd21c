package bridge

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/smtp"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkMail10KiB and BenchmarkMail1MiB time what a mail client sees,
// in process, over the three nodes of TestEndToEnd (alice's, a relay,
// bob's): from the 250 after SMTP DATA at alice's bridge to the "* N
// EXISTS" an IMAP IDLE session of bob's gets. ns/op is that time; p50-ms
// and p99-ms are its percentiles over the b.N mails.
func BenchmarkMail10KiB(b *testing.B) { benchmarkMail(b, 10<<10) }
func BenchmarkMail1MiB(b *testing.B)  { benchmarkMail(b, 1<<20) }

func benchmarkMail(b *testing.B, size int) {
	relay := startRelay(b)
	a, c := newSite(b, relay), newSite(b, relay)
	alice, alicePW := a.AddAccount(b, "alice")
	bob, bobPW := c.AddAccount(b, "bob")
	befriend(b, a, "alice", "Alice", c, "bob", "Bob")
	a.start()
	c.start()
	a.waitHolder(b, "alice", "Bob")
	c.waitHolder(b, "bob", "Alice")
	from, to := alice.Address("asmtp").String(), bob.Address("asmtp").String()

	sc, err := smtp.Dial(a.bridge.SMTPAddr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Auth(smtp.PlainAuth("", "alice", alicePW, "127.0.0.1")); err != nil {
		b.Fatal(err)
	}
	idle := newIdler(b, c.bridge.IMAPAddr(), "bob", bobPW)
	defer idle.close()

	// The first mail, not timed, warms the path up.
	send := func(i int) {
		b.Helper()
		if err := sendOne(sc, from, to, benchMessage(i, size)); err != nil {
			b.Fatal(err)
		}
	}
	idle.start()
	send(-1)
	idle.wait(60 * time.Second)

	lat := make([]time.Duration, 0, b.N)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		msg := benchMessage(i, size)
		idle.start()
		b.StartTimer()
		if err := sendOne(sc, from, to, msg); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now() // the 250 to DATA's end
		idle.wait(30 * time.Second)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1e6
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// sendOne sends msg and returns once the server has answered DATA's end.
func sendOne(sc *smtp.Client, from, to string, msg []byte) error {
	if err := sc.Mail(from); err != nil {
		return err
	}
	if err := sc.Rcpt(to); err != nil {
		return err
	}
	w, err := sc.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close() // reads the 250
}

// benchMessage is a size-byte text message with 76-character lines (of
// a base64-like body), numbered n.
func benchMessage(n, size int) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "From: alice\r\nSubject: bench %d\r\nMessage-ID: <bench-%d-%d@client.test>\r\n"+
		"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n", n, n, time.Now().UnixNano())
	const line = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ABCDEFGHIJKL\r\n"
	for buf.Len()+len(line) <= size {
		buf.WriteString(line)
	}
	return buf.Bytes()
}

// idler is an IMAP session in IDLE on INBOX.
type idler struct {
	t   testing.TB
	c   net.Conn
	r   *bufio.Reader
	tag int
}

func newIdler(t testing.TB, addr net.Addr, user, pw string) *idler {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	i := &idler{t: t, c: c, r: bufio.NewReader(c)}
	i.line(10 * time.Second) // greeting
	i.command(fmt.Sprintf("LOGIN %s %s", user, pw))
	i.command("SELECT INBOX")
	return i
}

func (i *idler) close() { i.c.Close() }

// line reads one response line.
func (i *idler) line(timeout time.Duration) string {
	i.t.Helper()
	i.c.SetReadDeadline(time.Now().Add(timeout))
	s, err := i.r.ReadString('\n')
	if err != nil {
		i.t.Fatalf("imap: %v", err)
	}
	return s
}

// command runs one command to its tagged OK.
func (i *idler) command(cmd string) {
	i.t.Helper()
	i.tag++
	tag := fmt.Sprintf("b%d ", i.tag)
	fmt.Fprintf(i.c, "%s%s\r\n", tag, cmd)
	for {
		s := i.line(10 * time.Second)
		if strings.HasPrefix(s, tag) {
			if !strings.HasPrefix(s, tag+"OK") {
				i.t.Fatalf("imap %s: %s", cmd, s)
			}
			return
		}
	}
}

// start enters IDLE.
func (i *idler) start() {
	i.t.Helper()
	i.tag++
	fmt.Fprintf(i.c, "b%d IDLE\r\n", i.tag)
	if s := i.line(10 * time.Second); !strings.HasPrefix(s, "+") {
		i.t.Fatalf("imap IDLE: %s", s)
	}
}

// wait reads until an EXISTS, then leaves IDLE.
func (i *idler) wait(timeout time.Duration) {
	i.t.Helper()
	for !strings.HasSuffix(i.line(timeout), "EXISTS\r\n") {
	}
	fmt.Fprintf(i.c, "DONE\r\n")
	tag := fmt.Sprintf("b%d ", i.tag)
	for !strings.HasPrefix(i.line(10*time.Second), tag) {
	}
}
