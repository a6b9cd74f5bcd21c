package imapserver

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestTokenAuthenticator(t *testing.T) {
	a := NewTokenAuthenticator(map[string]string{"alice": "tok-a", "bob": "tok-b"})
	tests := []struct {
		user, pass, account string
		ok                  bool
	}{
		{"alice", "tok-a", "alice", true},
		{"bob", "tok-b", "bob", true},
		{"alice", "tok-b", "", false},
		{"alice", "tok-a ", "", false},
		{"alice", "", "", false},
		{"carol", "tok-a", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		account, err := a.Authenticate(context.Background(), tt.user, tt.pass, nil)
		if tt.ok != (err == nil) || account != tt.account || (err != nil && !errors.Is(err, ErrBadCredentials)) {
			t.Errorf("%q/%q: account %q, err %v", tt.user, tt.pass, account, err)
		}
	}
	// A token check costs microseconds, not a password hash's milliseconds.
	start := time.Now()
	for range 10000 {
		a.Authenticate(context.Background(), "alice", "wrong", nil)
	}
	if per := time.Since(start) / 10000; per > 100*time.Microsecond {
		t.Errorf("token check takes %v per login", per)
	}
}

// TestLoginThrottledOverIMAP: after MaxFailures bad logins from an address,
// even the right password is refused until the backoff ends.
func TestLoginThrottledOverIMAP(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.Throttle = ThrottleOptions{MaxFailures: 3, Backoff: time.Minute} })
	c := dialRaw(t, ts.addr)
	for range 3 {
		if _, st := c.cmd("LOGIN alice wrong"); !strings.Contains(st, "NO [AUTHENTICATIONFAILED]") {
			t.Fatalf("bad login: %s", st)
		}
	}
	_, st := c.cmd("LOGIN alice " + testToken)
	if !strings.Contains(st, "NO [UNAVAILABLE]") || !strings.Contains(st, "try again in") {
		t.Fatalf("login while throttled: %s", st)
	}
	// AUTHENTICATE PLAIN goes through the same check.
	_, st = c.cmd("AUTHENTICATE PLAIN AGFsaWNlAGNvcnJlY3QtaG9yc2UtYmF0dGVyeS1zdGFwbGU=")
	if !strings.Contains(st, "NO [UNAVAILABLE]") {
		t.Fatalf("AUTHENTICATE while throttled: %s", st)
	}
}

func TestAuthenticatePlain(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	// SASL-IR: the initial response on the command line.
	if _, st := c.cmd("AUTHENTICATE PLAIN AGFsaWNlAGNvcnJlY3QtaG9yc2UtYmF0dGVyeS1zdGFwbGU="); !strings.Contains(st, "OK") {
		t.Fatalf("AUTHENTICATE PLAIN: %s", st)
	}
}

func TestMaxConnections(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.MaxConnections = 2 })
	a := dialRaw(t, ts.addr)
	dialRaw(t, ts.addr)
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "* BYE Too many connections") {
		t.Fatalf("third connection greeted with %q", line)
	}
	a.cmd("LOGOUT")
	a.conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for { // the slot frees once the server has closed a's connection
		conn, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if strings.HasPrefix(line, "* OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed: %q", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIdleTimeout: a connection that sends nothing is closed.
func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
	c := dialRaw(t, ts.addr)
	c.login()
	start := time.Now()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.r.ReadString('\n'); err == nil {
		t.Fatal("server wrote instead of closing")
	}
	if waited := time.Since(start); waited < 250*time.Millisecond || waited > 5*time.Second {
		t.Fatalf("closed after %v, want about 300 ms", waited)
	}
}
