package listen_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/imapserver"
	"github.com/asmtp/asmtp/bridge/listen"
)

// greeter is a protocol server in miniature: it greets each connection and
// closes it when the client does.
type greeter struct {
	mu    sync.Mutex
	conns []net.Conn
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

// The limit holds across all the group's listeners, the refusal is in the
// protocol's words, and a closed connection gives its slot back.
func TestGroupLimitsConnectionsAcrossListeners(t *testing.T) {
	g := newGroup(t, nil, 2)
	one, two := serve(t, g, false), serve(t, g, false)
	a, ac := greeting(t, plainDial(one))
	b, _ := greeting(t, plainDial(two))
	if a != "hello\r\n" || b != "hello\r\n" {
		t.Fatalf("greetings %q, %q", a, b)
	}
	if c, _ := greeting(t, plainDial(two)); c != "BUSY\r\n" {
		t.Fatalf("third connection got %q, want the refusal", c)
	}
	ac.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		line, _ := greeting(t, plainDial(one))
		if line == "hello\r\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the closed connection's slot was not given back: %q", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ServeTLS speaks TLS from the first byte, and over the limit closes the
// connection without writing clear text into the handshake.
func TestGroupServeTLS(t *testing.T) {
	cert, _, err := imapserver.LoadOrCreateCertificate(t.TempDir())
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
	if line, _ := greeting(t, dial); line != "hello\r\n" {
		t.Fatalf("greeting over TLS %q", line)
	}
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(raw); len(b) != 0 || err != nil {
		t.Errorf("connection over the limit read %q, %v; want a silent close", b, err)
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
