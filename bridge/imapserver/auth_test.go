package imapserver

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/loginlimit"
	"github.com/asmtp/asmtp/internal/wait"
)

// TestLoginRefusedWhenBusy: an attempt the Authenticator's limiter refused
// unchecked is answered NO [UNAVAILABLE] with when to try again, for LOGIN
// and AUTHENTICATE alike.
func TestLoginRefusedWhenBusy(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.Authenticator = busyAuthenticator{} })
	c := dialRaw(t, ts.addr)
	if _, st := c.cmd("LOGIN alice " + testToken); !strings.Contains(st, "NO [UNAVAILABLE]") || !strings.Contains(st, "try again in 3 s") {
		t.Fatalf("refused login: %s", st)
	}
	if _, st := c.cmd("AUTHENTICATE PLAIN AGFsaWNlAGNvcnJlY3QtaG9yc2UtYmF0dGVyeS1zdGFwbGU="); !strings.Contains(st, "NO [UNAVAILABLE]") {
		t.Fatalf("refused AUTHENTICATE: %s", st)
	}
}

// busyAuthenticator refuses every attempt as a loginlimit.Limiter with a
// long queue does.
type busyAuthenticator struct{}

func (busyAuthenticator) Authenticate(context.Context, string, string, net.Addr) (string, error) {
	return "", &loginlimit.BusyError{RetryIn: 2 * time.Second}
}

func TestAuthenticatePlain(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	// SASL-IR: the initial response on the command line.
	if _, st := c.cmd("AUTHENTICATE PLAIN AGFsaWNlAGNvcnJlY3QtaG9yc2UtYmF0dGVyeS1zdGFwbGU="); !strings.Contains(st, "OK") {
		t.Fatalf("AUTHENTICATE PLAIN: %s", st)
	}
}

// TestMaxConnections: connections that have not logged in make room for
// new ones by closing the oldest with BYE; logins beyond MaxConnections are
// refused until a logged-in connection closes.
func TestMaxConnections(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.MaxConnections = 2 })
	a, b := dialRaw(t, ts.addr), dialRaw(t, ts.addr)
	if _, st := a.cmd("LOGIN alice " + testToken); !strings.HasPrefix(st, "t1 OK") {
		t.Fatalf("first login: %s", st)
	}
	// Two more may wait to log in; a third closes b, the oldest.
	c, d := dialRaw(t, ts.addr), dialRaw(t, ts.addr)
	b.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, _ := b.r.ReadString('\n'); !strings.HasPrefix(line, "* BYE Too many connections") {
		t.Fatalf("oldest connection got %q, want BYE", line)
	}
	if _, st := c.cmd("LOGIN alice " + testToken); !strings.HasPrefix(st, "t1 OK") {
		t.Fatalf("second login: %s", st)
	}
	if _, st := d.cmd("LOGIN alice " + testToken); !strings.Contains(st, "NO [UNAVAILABLE] Too many connections") {
		t.Fatalf("third login: %s", st)
	}
	a.cmd("LOGOUT")
	a.conn.Close()
	var st string
	wait.Until(t, 5*time.Second, "the slot freed once the server closed a's connection", func() bool {
		_, st = d.cmd("LOGIN alice " + testToken)
		return strings.Contains(st, " OK ")
	}, func() string { return st })
}

// TestPreAuthTimeout: a connection that does not log in is closed after
// PreAuthTimeout, although go-imap asks for minutes; one that logs in is
// not.
func TestPreAuthTimeout(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.PreAuthTimeout = 500 * time.Millisecond })
	idle, user := dialRaw(t, ts.addr), dialRaw(t, ts.addr)
	if _, st := user.cmd("LOGIN alice " + testToken); !strings.HasPrefix(st, "t1 OK") {
		t.Fatalf("login: %s", st)
	}
	start := time.Now()
	idle.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if rest, err := io.ReadAll(idle.r); err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("connection without login: read %q, %v after %v; want closed by the server", rest, err, time.Since(start))
	}
	if _, st := user.cmd("NOOP"); !strings.HasPrefix(st, "t2 OK") {
		t.Fatalf("logged-in connection after PreAuthTimeout: %s", st)
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
