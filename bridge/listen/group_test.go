package listen_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/bridge/listen"
	"github.com/asmtp/asmtp/internal/wait"
)

// greeter is a protocol server in miniature: it greets each connection and
// closes it when the client does.
type greeter struct {
	readDeadline time.Duration // if set, asked for before reading

	mu    sync.Mutex
	conns []net.Conn
}

// conn returns the i-th connection accepted, waiting for it.
func (g *greeter) conn(i int) net.Conn {
	for {
		g.mu.Lock()
		if i < len(g.conns) {
			defer g.mu.Unlock()
			return g.conns[i]
		}
		g.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

func (g *greeter) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		g.mu.Lock()
		g.conns = append(g.conns, c)
		g.mu.Unlock()
		go func() {
			defer c.Close()
			if _, err := io.WriteString(c, "hello\r\n"); err != nil {
				return
			}
			if g.readDeadline > 0 {
				c.SetReadDeadline(time.Now().Add(g.readDeadline))
			}
			io.Copy(io.Discard, c)
		}()
	}
}

func (g *greeter) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		c.Close()
	}
	return nil
}

func newGroup(t *testing.T, tlsConfig *tls.Config, maxConns int) *listen.Group {
	t.Helper()
	g := listen.NewGroup(listen.GroupOptions{Name: "test", DefaultAddr: "127.0.0.1:0", TLSConfig: tlsConfig,
		MaxConnections: maxConns, Refusal: "BUSY\r\n"})
	t.Cleanup(func() { g.Close() })
	return g
}

// serve runs g.Serve (or ServeTLS) on a new loopback listener; at cleanup
// it checks that Serve returned nil after Close.
func serve(t *testing.T, g *listen.Group, implicitTLS bool) string {
	t.Helper()
	ln, err := g.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		if implicitTLS {
			done <- g.ServeTLS(ln, &greeter{}, nil)
		} else {
			done <- g.Serve(ln, func(bool) listen.Server { return &greeter{} }, nil)
		}
	}()
	t.Cleanup(func() {
		g.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve after Close: %v, want nil", err)
		}
	})
	return ln.Addr().String()
}

// serveWith runs g.Serve with srv on a new loopback listener.
func serveWith(t *testing.T, g *listen.Group, srv *greeter) string {
	t.Helper()
	ln, err := g.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln, func(bool) listen.Server { return srv }, nil)
	return ln.Addr().String()
}

// greeting dials addr and returns the first line and the connection.
func greeting(t *testing.T, dial func() (net.Conn, error)) (string, net.Conn) {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line, c
}

func plainDial(addr string) func() (net.Conn, error) {
	return func() (net.Conn, error) { return net.Dial("tcp", addr) }
}

// The limits hold across all the group's listeners: a connection that has
// not logged in makes room for a new one by closing the oldest, with the
// refusal in the protocol's words; logins are bounded separately and a
// closed logged-in connection gives its slot back.
func TestGroupLimitsConnectionsAcrossListeners(t *testing.T) {
	g := newGroup(t, nil, 1)
	srv := &greeter{}
	one, two := serveWith(t, g, srv), serveWith(t, g, srv)
	a, ac := greeting(t, plainDial(one))
	if a != "hello\r\n" {
		t.Fatalf("greeting %q", a)
	}
	if err := g.Authenticated(srv.conn(0)); err != nil {
		t.Fatalf("first login: %v", err)
	}
	_, bc := greeting(t, plainDial(two))
	_, cc := greeting(t, plainDial(one)) // closes b, the oldest not logged in
	bc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if rest, _ := io.ReadAll(bc); string(rest) != "BUSY\r\n" {
		t.Fatalf("oldest connection got %q, want the refusal and EOF", rest)
	}
	if err := g.Authenticated(srv.conn(2)); !errors.Is(err, listen.ErrTooManyConnections) {
		t.Fatalf("login beyond MaxConnections: %v", err)
	}
	ac.Close()
	wait.Until(t, 10*time.Second, "the connection logged in", func() bool { return g.Authenticated(srv.conn(2)) == nil })
	cc.Close()
}

// A connection that does not log in is closed at PreAuthTimeout, whatever
// read deadline the server sets; one that logs in is not.
func TestGroupPreAuthTimeout(t *testing.T) {
	g := listen.NewGroup(listen.GroupOptions{Name: "test", DefaultAddr: "127.0.0.1:0", MaxConnections: 4,
		PreAuthTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { g.Close() })
	srv := &greeter{readDeadline: time.Hour}
	addr := serveWith(t, g, srv)
	_, idle := greeting(t, plainDial(addr))
	_, user := greeting(t, plainDial(addr))
	if err := g.Authenticated(srv.conn(1)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(idle); err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("idle connection: %v after %v, want closed by the server", err, time.Since(start))
	}
	user.SetReadDeadline(time.Now().Add(600 * time.Millisecond))
	if _, err := user.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("logged-in connection: %v, want still open", err)
	}
}

// ServeTLS speaks TLS from the first byte, and closes the oldest
// connection that has not logged in without writing clear text into TLS.
func TestGroupServeTLS(t *testing.T) {
	cert, _, err := auth.LoadOrCreateCertificate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	g := newGroup(t, &tls.Config{Certificates: []tls.Certificate{cert}}, 1)
	addr := serve(t, g, true)
	dial := func() (net.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	}
	line, first := greeting(t, dial)
	if line != "hello\r\n" {
		t.Fatalf("greeting over TLS %q", line)
	}
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	first.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(first); len(b) != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("oldest connection read %q, %v; want a silent close", b, err)
	}
}

func TestGroupRefusals(t *testing.T) {
	plain := newGroup(t, nil, 1)
	if _, err := plain.Listen("0.0.0.0:0"); err == nil || !strings.HasPrefix(err.Error(), "test: ") || !strings.Contains(err.Error(), "without TLS") {
		t.Errorf("Listen beyond loopback without TLS: %v, want a refusal saying why", err)
	}
	wild, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer wild.Close()
	if err := plain.Serve(wild, func(bool) listen.Server { t.Error("server made for a refused listener"); return nil }, nil); err == nil || !strings.Contains(err.Error(), "without TLS") {
		t.Errorf("Serve beyond loopback without TLS: %v", err)
	}
	ln, err := plain.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := plain.ServeTLS(ln, &greeter{}, nil); err == nil || !strings.Contains(err.Error(), "needs Options.TLSConfig") {
		t.Errorf("ServeTLS without TLS: %v", err)
	}

	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}
	if err := plain.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case <-plain.Context().Done():
	default:
		t.Error("Context not done after Close")
	}
	if err := plain.Serve(ln, func(bool) listen.Server { return &greeter{} }, nil); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Serve after Close: %v", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listener given to Serve after Close is still open: %v", err)
	}
}
