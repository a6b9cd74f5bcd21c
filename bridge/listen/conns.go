package listen

import (
	"container/list"
	"errors"
	"net"
	"sync"
	"time"
)

// ErrTooManyConnections refuses a login: the group's logged-in connections
// are at GroupOptions.MaxConnections.
var ErrTooManyConnections = errors.New("too many logged-in connections")

// connTable counts a group's connections in two pools, so that strangers
// cannot lock real clients out: logged-in connections, up to maxAuth, and
// connections that have not logged in, up to maxUnauth, where a new
// connection makes room by closing the oldest. An idle stranger's
// connection thus lives until maxUnauth newer ones arrive or the pre-login
// deadline passes, whichever is first, and a client that connects and
// logs in at once always gets through.
type connTable struct {
	maxAuth, maxUnauth int
	preAuth            time.Duration

	mu     sync.Mutex
	auth   int
	unauth list.List // of *slotConn, oldest first
}

// slotConn is an accepted connection in a connTable. Until it logs in,
// reads end at its pre-login deadline, whatever the server asks for.
type slotConn struct {
	net.Conn
	table    *connTable
	refusal  []byte    // written when evicted, if any
	deadline time.Time // pre-login read deadline

	// guarded by table.mu
	wanted   time.Time     // the read deadline the server last asked for
	elem     *list.Element // in table.unauth until logged in or gone
	loggedIn bool
	gone     bool // closed or evicted: counted in no pool
}

// admit counts c as a new connection that has not logged in, and returns
// the connection it evicts to make room, if any.
func (t *connTable) admit(c *slotConn) (evicted *slotConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.unauth.Len() >= t.maxUnauth {
		evicted = t.unauth.Remove(t.unauth.Front()).(*slotConn)
		evicted.elem, evicted.gone = nil, true
	}
	c.elem = t.unauth.PushBack(c)
	return evicted
}

// login moves c to the logged-in pool, if there is room.
func (t *connTable) login(c *slotConn) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case c.loggedIn:
		return nil
	case c.gone:
		return net.ErrClosed
	case t.auth >= t.maxAuth:
		return ErrTooManyConnections
	}
	t.unauth.Remove(c.elem)
	c.elem, c.loggedIn = nil, true
	t.auth++
	// The server's own deadline, no longer cut short.
	return c.Conn.SetReadDeadline(c.wanted)
}

// release takes c out of its pool, once.
func (t *connTable) release(c *slotConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.gone {
		return
	}
	c.gone = true
	if c.loggedIn {
		t.auth--
	} else {
		t.unauth.Remove(c.elem)
		c.elem = nil
	}
}

// readDeadline records want, the read deadline the server asks c for, and
// returns the one c gets: want, but no later than the pre-login deadline
// until c logs in.
func (t *connTable) readDeadline(c *slotConn, want time.Time) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.wanted = want
	if !c.loggedIn && (want.IsZero() || want.After(c.deadline)) {
		return c.deadline
	}
	return want
}

// evict tells an evicted connection why, if it speaks plain text, and
// closes it. It runs on its own goroutine, so that a client that does not
// read cannot hold up the accept loop.
func (c *slotConn) evict() {
	if len(c.refusal) > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		c.Conn.Write(c.refusal)
	}
	c.Conn.Close()
}

func (c *slotConn) Close() error {
	c.table.release(c)
	return c.Conn.Close()
}

func (c *slotConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.table.readDeadline(c, t))
}

func (c *slotConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// slotOf finds the slotConn under the wrappers of c (TLS, and any wrapper
// with a NetConn method).
func slotOf(c net.Conn) (*slotConn, bool) {
	for {
		switch v := c.(type) {
		case *slotConn:
			return v, true
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil, false
		}
	}
}
