package imapserver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/mailstore"
)

const (
	testUser  = "alice"
	testToken = "correct-horse-battery-staple"
)

// testServer is a real server on a loopback port over a real SQLite store.
type testServer struct {
	addr   string
	dbPath string
	store  *mailstore.DB
	srv    *Server
	ln     net.Listener
}

func startServer(t testing.TB, configure ...func(*Options)) *testServer {
	t.Helper()
	dbPath := filepath.Join(t.TempDir(), "mail.db")
	store, err := mailstore.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateAccount(context.Background(), testUser); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{dbPath: dbPath, store: store}
	ts.serve(t, configure...)
	t.Cleanup(func() { ts.stop() })
	return ts
}

func (ts *testServer) serve(t testing.TB, configure ...func(*Options)) {
	t.Helper()
	opts := Options{
		Store:         ts.store,
		Authenticator: auth.NewTokenAuthenticator(map[string]string{testUser: testToken}),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	for _, c := range configure {
		c(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:0"
	if ts.addr != "" {
		addr = ts.addr // restart on the same port
	}
	ln, err := srv.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	ts.srv, ts.ln = srv, ln
	go srv.Serve(ln)
}

// restart stops the server and the store and opens both again on the same
// file and port, as a bridge restart would.
func (ts *testServer) restart(t testing.TB) {
	t.Helper()
	ts.stop()
	store, err := mailstore.Open(context.Background(), ts.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	ts.store = store
	ts.serve(t)
}

func (ts *testServer) stop() {
	if ts.srv != nil {
		ts.ln.Close() // now, even if Serve has not started yet, so the port is free
		ts.srv.Close()
		ts.srv = nil
	}
	if ts.store != nil {
		ts.store.Close()
		ts.store = nil
	}
}

func (ts *testServer) port() string {
	_, port, _ := net.SplitHostPort(ts.addr)
	return port
}

// rawClient speaks IMAP line by line, for conversation and abuse tests.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReaderSize(conn, 1<<20)}
	if greeting := c.readLine(); !strings.HasPrefix(greeting, "* OK") {
		t.Fatalf("greeting %q", greeting)
	}
	return c
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send %q: %v", trim(s), err)
	}
}

func (c *rawClient) readLine() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (after %q)", err, trim(line))
	}
	return line
}

// cmd sends "tN command" and returns the untagged lines (literals inlined)
// and the tagged status line.
func (c *rawClient) cmd(command string) (untagged []string, status string) {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	c.send(tag + " " + command + "\r\n")
	return c.readUntil(tag)
}

func (c *rawClient) readUntil(tag string) (untagged []string, status string) {
	c.t.Helper()
	for {
		line := c.readResponse()
		if strings.HasPrefix(line, tag+" ") {
			return untagged, strings.TrimRight(line, "\r\n")
		}
		untagged = append(untagged, strings.TrimRight(line, "\r\n"))
	}
}

// readResponse reads one response line with any literals it announces.
func (c *rawClient) readResponse() string {
	c.t.Helper()
	line := c.readLine()
	for {
		size, _, ok := literalAnnounce([]byte(line))
		if !ok {
			return line
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			c.t.Fatalf("read literal: %v", err)
		}
		line = strings.TrimRight(line, "\r\n") + "\r\n" + string(buf) + c.readLine()
	}
}

func (c *rawClient) login() {
	c.t.Helper()
	if _, st := c.cmd("LOGIN " + testUser + " " + testToken); !strings.Contains(st, "OK") {
		c.t.Fatalf("login: %s", st)
	}
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// needTool returns the path of an external client; a missing tool fails the
// test (CI installs them), it does not skip it.
func needTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is required for this test (Debian package listed in the report / .ci/run): %v", name, err)
	}
	return path
}

// runTool runs an external program with a timeout and returns its output.
func runTool(t testing.TB, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, needTool(t, name), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, trim(string(out)))
	}
	return string(out)
}

// execOutput runs a program and returns its combined output and error.
func execOutput(path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	return string(out), err
}
