package smtpserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/bridge/loginlimit"
	"github.com/asmtp/asmtp/internal/wait"
)

func testLogger() *slog.Logger {
	if os.Getenv("ASMTP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type submitted struct {
	account, from string
	rcpts         []string
	msg           []byte
}

// fakeQueue accepts addresses at "asmtp" except those in reject, and
// records submissions.
type fakeQueue struct {
	mu        sync.Mutex
	got       []submitted
	submitErr error
	release   chan struct{} // when set, Submit waits for it
}

func (q *fakeQueue) Recipient(_ context.Context, _, address string) error {
	switch {
	case strings.HasPrefix(address, "broken@"):
		return errors.New("registry unreadable")
	case !strings.HasSuffix(address, "@asmtp"):
		return &Rejection{Status: [3]int{5, 1, 2}, Reason: address + " is not an ASMTP address"}
	}
	return nil
}

func (q *fakeQueue) Submit(ctx context.Context, account, from string, rcpts []string, r io.Reader, size int64) error {
	msg, err := io.ReadAll(r)
	if err != nil || int64(len(msg)) != size {
		return fmt.Errorf("read %d of %d bytes: %v", len(msg), size, err)
	}
	if q.release != nil {
		select {
		case <-q.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.submitErr != nil {
		return q.submitErr
	}
	q.got = append(q.got, submitted{account, from, rcpts, msg})
	return nil
}

func (q *fakeQueue) submissions() []submitted {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]submitted(nil), q.got...)
}

const password = "correct horse"

// start runs a server on 127.0.0.1 for user "alice"; tlsCfg may be nil.
func start(t testing.TB, q Queue, tlsCfg *tls.Config, tweak func(*Options)) (*Server, string) {
	t.Helper()
	opts := Options{
		Authenticator: auth.NewTokenAuthenticator(map[string]string{"alice": password}),
		Queue:         q,
		TLSConfig:     tlsCfg,
		Logger:        testLogger(),
	}
	if tweak != nil {
		tweak(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

// conversation is a raw SMTP client: send a line, read a reply.
type conversation struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dial(t testing.TB, addr string) *conversation {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	cv := &conversation{t: t, c: c, r: bufio.NewReader(c)}
	cv.expect("220")
	return cv
}

// reply reads one (possibly multi-line) reply.
func (cv *conversation) reply() string {
	cv.t.Helper()
	var all strings.Builder
	for {
		line, err := cv.r.ReadString('\n')
		if err != nil {
			cv.t.Fatalf("reading reply: %v (so far %q)", err, all.String())
		}
		all.WriteString(line)
		if len(line) < 4 || line[3] != '-' {
			return all.String()
		}
	}
}

func (cv *conversation) expect(prefix string) string {
	cv.t.Helper()
	r := cv.reply()
	if !strings.HasPrefix(r, prefix) {
		cv.t.Fatalf("reply %q, want %s", r, prefix)
	}
	return r
}

func (cv *conversation) cmd(line, want string) string {
	cv.t.Helper()
	fmt.Fprintf(cv.c, "%s\r\n", line)
	return cv.expect(want)
}

// cmdAny sends line and returns the reply, whatever it is.
func (cv *conversation) cmdAny(line string) string {
	cv.t.Helper()
	fmt.Fprintf(cv.c, "%s\r\n", line)
	return cv.reply()
}

func TestCapabilitiesAndAuthRequired(t *testing.T) {
	_, addr := start(t, &fakeQueue{}, nil, nil)
	cv := dial(t, addr)
	ehlo := cv.cmd("EHLO client", "250")
	for _, want := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE 26214400", "AUTH PLAIN LOGIN", "ENHANCEDSTATUSCODES"} {
		if !strings.Contains(ehlo, want) {
			t.Errorf("EHLO reply lacks %q:\n%s", want, ehlo)
		}
	}
	if strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("STARTTLS advertised without TLS:\n%s", ehlo)
	}
	r := cv.cmd("MAIL FROM:<alice@asmtp>", "530 5.7.0")
	if !strings.Contains(r, "bridge password") {
		t.Errorf("530 does not say how to log in: %q", r)
	}
	cv.cmd("RCPT TO:<bob@asmtp>", "502") // go-smtp: no MAIL yet
}

func TestAuthMechanisms(t *testing.T) {
	q := &fakeQueue{}
	_, addr := start(t, q, nil, nil)
	plain := func(user, pw string) string {
		return b64("\x00" + user + "\x00" + pw)
	}
	for _, c := range []struct {
		name  string
		steps [][2]string // line sent, reply prefix wanted
	}{
		{"PLAIN with initial response", [][2]string{{"AUTH PLAIN " + plain("alice", password), "235"}}},
		{"PLAIN after a challenge", [][2]string{{"AUTH PLAIN", "334"}, {plain("alice", password), "235"}}},
		{"PLAIN with authzid = user", [][2]string{{"AUTH PLAIN " + b64("alice\x00alice\x00"+password), "235"}}},
		{"PLAIN for another user", [][2]string{{"AUTH PLAIN " + b64("bob\x00alice\x00"+password), "535"}}},
		{"LOGIN", [][2]string{{"AUTH LOGIN", "334 VXNlcm5hbWU6"}, {b64("alice"), "334 UGFzc3dvcmQ6"}, {b64(password), "235"}}},
		{"LOGIN with initial response", [][2]string{{"AUTH LOGIN " + b64("alice"), "334 UGFzc3dvcmQ6"}, {b64(password), "235"}}},
		{"LOGIN cancelled", [][2]string{{"AUTH LOGIN", "334"}, {"*", "501"}}},
		{"unknown mechanism", [][2]string{{"AUTH CRAM-MD5", "504"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cv := dial(t, addr)
			cv.cmd("EHLO client", "250")
			for _, s := range c.steps {
				cv.cmd(s[0], s[1])
			}
		})
	}

	cv := dial(t, addr)
	cv.cmd("EHLO client", "250")
	cv.cmd("AUTH PLAIN "+plain("alice", "wrong"), "535 5.7.8")

	// An attempt the Authenticator's limiter refused unchecked is a
	// temporary failure that says when to try again.
	_, addr = start(t, q, nil, func(o *Options) { o.Authenticator = busyAuthenticator{} })
	cv = dial(t, addr)
	cv.cmd("EHLO client", "250")
	if r := cv.cmd("AUTH PLAIN "+plain("alice", password), "454 4.7.0"); !strings.Contains(r, "try again in 3 s") {
		t.Fatalf("refused login: %q", r)
	}
}

// busyAuthenticator refuses every attempt as a loginlimit.Limiter with a
// long queue does.
type busyAuthenticator struct{}

func (busyAuthenticator) Authenticate(context.Context, string, string, net.Addr) (string, error) {
	return "", &loginlimit.BusyError{RetryIn: 2 * time.Second}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestSubmission runs real clients (swaks, Python smtplib) against the
// server: what they send arrives byte for byte, with the envelope.
func TestSubmission(t *testing.T) {
	q := &fakeQueue{}
	_, addr := start(t, q, nil, nil)
	host, port, _ := net.SplitHostPort(addr)
	body := "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nFrom: alice@asmtp\r\n\r\n" +
		"8-bit text: grüße\r\n.leading dot\r\n" + strings.Repeat("long line ", 300) + "\r\n"
	msgFile := writeTemp(t, body)

	t.Run("swaks AUTH LOGIN", func(t *testing.T) {
		requireTool(t, "swaks")
		out, err := exec.Command("swaks", "--server", host, "--port", port, "--auth", "LOGIN",
			"--auth-user", "alice", "--auth-password", password, "--from", "alice@asmtp",
			"--to", "bob@asmtp,carol@asmtp", "--data", "@"+msgFile, "--pipeline").CombinedOutput()
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
	})
	t.Run("smtplib AUTH PLAIN", func(t *testing.T) {
		runPython(t, `
import smtplib, sys
host, port, pw, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with smtplib.SMTP(host, port, timeout=30) as s:
    s.ehlo()
    s.login("alice", pw)
    refused = s.sendmail("alice@asmtp", ["bob@asmtp", "BOB@asmtp", "carol@asmtp"], open(path, "rb").read(), mail_options=["SMTPUTF8"])
    assert refused == {}, refused
`, host, port, password, msgFile)
	})
	got := q.submissions()
	if len(got) != 2 {
		t.Fatalf("%d submissions, want 2", len(got))
	}
	for i, s := range got {
		if s.account != "alice" || s.from != "alice@asmtp" || len(s.rcpts) != 2 || s.rcpts[0] != "bob@asmtp" || s.rcpts[1] != "carol@asmtp" {
			t.Errorf("submission %d: %+v", i, s)
		}
	}
	// smtplib sends the file as it is; swaks adds nothing to a message
	// given with --data either, but may end it with a line break.
	if !bytes.Equal(got[1].msg, []byte(body)) {
		t.Errorf("smtplib message changed on the way:\n got %q\nwant %q", got[1].msg, body)
	}
	if !bytes.HasPrefix(got[0].msg, []byte(body)) {
		t.Errorf("swaks message changed on the way:\n got %q\nwant %q", got[0].msg, body)
	}
}

func TestRefusals(t *testing.T) {
	q := &fakeQueue{}
	_, addr := start(t, q, nil, func(o *Options) { o.MaxMessageBytes = 1000 })
	cv := dial(t, addr)
	cv.cmd("EHLO client", "250")
	cv.cmd("AUTH PLAIN "+b64("\x00alice\x00"+password), "235")
	cv.cmd("MAIL FROM:<alice@asmtp> SIZE=2000", "552")
	cv.cmd("MAIL FROM:<alice@asmtp>", "250")
	if r := cv.cmd("RCPT TO:<bob@example.org>", "550 5.1.2"); !strings.Contains(r, "not an ASMTP address") {
		t.Errorf("RCPT rejection without the reason: %q", r)
	}
	cv.cmd("RCPT TO:<broken@asmtp>", "451 4.3.0")
	cv.cmd("RCPT TO:<bob@asmtp>", "250")
	cv.cmd("DATA", "354")
	cv.cmd(strings.Repeat("x", 1200)+"\r\n.", "552")

	q.submitErr = errors.New("disk full")
	cv.cmd("MAIL FROM:<alice@asmtp>", "250")
	cv.cmd("RCPT TO:<bob@asmtp>", "250")
	cv.cmd("DATA", "354")
	if r := cv.cmd("Subject: x\r\n\r\nhi\r\n.", "451 4.3.0"); !strings.Contains(r, "nothing was sent") {
		t.Errorf("failed queueing reply: %q", r)
	}
	if len(q.submissions()) != 0 {
		t.Fatal("a refused message was recorded")
	}
}

// The 250 after DATA comes only once Submit has returned.
func TestAcknowledgedOnlyWhenQueued(t *testing.T) {
	q := &fakeQueue{release: make(chan struct{})}
	_, addr := start(t, q, nil, nil)
	cv := dial(t, addr)
	cv.cmd("EHLO client", "250")
	cv.cmd("AUTH PLAIN "+b64("\x00alice\x00"+password), "235")
	cv.cmd("MAIL FROM:<alice@asmtp>", "250")
	cv.cmd("RCPT TO:<bob@asmtp>", "250")
	cv.cmd("DATA", "354")
	fmt.Fprint(cv.c, "Subject: x\r\n\r\nhi\r\n.\r\n")
	replied := make(chan string, 1)
	go func() {
		line, _ := cv.r.ReadString('\n')
		replied <- line
	}()
	select {
	case r := <-replied:
		t.Fatalf("replied %q before the message was queued", r)
	case <-time.After(300 * time.Millisecond):
	}
	close(q.release)
	if r := <-replied; !strings.HasPrefix(r, "250") {
		t.Fatalf("after queueing: %q", r)
	}
}

// TestConnectionLimit: connections that have not logged in make room for
// new ones by closing the oldest with 421, logins beyond MaxConnections are
// refused until one closes, and a connection that does not log in is
// closed at PreAuthTimeout (not go-smtp's ReadTimeout of minutes).
func TestConnectionLimit(t *testing.T) {
	_, addr := start(t, &fakeQueue{}, nil, func(o *Options) {
		o.MaxConnections = 1
		o.PreAuthTimeout = 2 * time.Second
	})
	auth := "AUTH PLAIN " + b64("\x00alice\x00"+password)
	a := dial(t, addr)
	a.cmd("EHLO client", "250")
	a.cmd(auth, "235")
	b := dial(t, addr)
	c := dial(t, addr) // closes b, the oldest not logged in
	b.expect("421 4.7.0 Too many connections")
	c.cmd("EHLO client", "250")
	c.cmd(auth, "454 4.7.0 Too many connections")
	a.cmd("QUIT", "221")
	a.c.Close()
	wait.Until(t, 5*time.Second, "the logged-in slot given back when go-smtp closes a's side", func() bool {
		return strings.HasPrefix(c.cmdAny(auth), "235")
	})
	c.cmd("NOOP", "250")

	idle := dial(t, addr)
	start := time.Now()
	idle.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if rest, err := io.ReadAll(idle.r); err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("idle connection not closed at PreAuthTimeout: %q, %v after %v", rest, err, time.Since(start))
	}
}

func TestTLS(t *testing.T) {
	cert, certPath, err := auth.LoadOrCreateCertificate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}

	plain, err := New(Options{Authenticator: auth.NewTokenAuthenticator(nil), Queue: &fakeQueue{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Listen("0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "clear text") {
		t.Fatalf("Listen on a non-loopback address without TLS: %v, want a refusal saying why", err)
	}
	if _, err := plain.Listen("localhost:0"); err != nil {
		t.Fatalf("Listen on localhost: %v", err)
	}

	q := &fakeQueue{}
	s, addr := start(t, q, cfg, nil)
	host, port, _ := net.SplitHostPort(addr)
	cv := dial(t, addr)
	if r := cv.cmd("EHLO client", "250"); !strings.Contains(r, "STARTTLS") {
		t.Fatalf("no STARTTLS with TLS configured:\n%s", r)
	}
	runPython(t, `
import smtplib, ssl, sys
host, port, pw, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
with smtplib.SMTP(host, port, timeout=30) as s:
    s.starttls(context=ctx)
    s.login("alice", pw)
    s.sendmail("alice@asmtp", ["bob@asmtp"], b"Subject: over STARTTLS\r\n\r\nhi\r\n")
`, host, port, password, certPath)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.ServeTLS(ln)
	host, port, _ = net.SplitHostPort(ln.Addr().String())
	runPython(t, `
import smtplib, ssl, sys
host, port, pw, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
with smtplib.SMTP_SSL(host, port, context=ctx, timeout=30) as s:
    s.login("alice", pw)
    s.sendmail("alice@asmtp", ["bob@asmtp"], b"Subject: over implicit TLS\r\n\r\nhi\r\n")
`, host, port, password, certPath)
	if got := q.submissions(); len(got) != 2 {
		t.Fatalf("%d messages over TLS, want 2", len(got))
	}
}

func writeTemp(t testing.TB, content string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "msg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func requireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
}

func runPython(t testing.TB, script string, args ...string) string {
	t.Helper()
	requireTool(t, "python3")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "python3", append([]string{"-c", script}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	return string(out)
}
