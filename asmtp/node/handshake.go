package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// handshakeSlots counts the inbound connections still handshaking, in
// total and per source network. Once half the slots are taken, a source
// holding perSource of them gets no more, so that one host cannot take
// every slot (WireGuard limits handshakes per source only under load in
// the same way); below that, nodes behind one address (a test network on
// loopback, a NAT) connect freely.
type handshakeSlots struct {
	total, perSource int

	mu      sync.Mutex
	pending int
	bySrc   map[netip.Prefix]int
}

func newHandshakeSlots(total, perSource int) *handshakeSlots {
	return &handshakeSlots{total: total, perSource: perSource, bySrc: make(map[netip.Prefix]int)}
}

// take reserves a slot for a connection from src, or reports that the
// total or src's share is full.
func (h *handshakeSlots) take(src netip.Prefix) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending >= h.total || (h.pending >= h.total/2 && h.bySrc[src] >= h.perSource) {
		return false
	}
	h.pending++
	h.bySrc[src]++
	return true
}

func (h *handshakeSlots) release(src netip.Prefix) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pending--
	if h.bySrc[src]--; h.bySrc[src] <= 0 {
		delete(h.bySrc, src)
	}
}

// sourceOf is the network a connection comes from: the IPv4 address, or
// the IPv6 /64 (one host usually holds a whole /64).
func sourceOf(a net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits) // bits fit the address family
	return p
}

// waitFirstByte waits up to d (or until ctx ends) for c's first byte and
// returns a connection that reads it again: a connection that stays
// silent is dropped long before the handshake timeout.
func waitFirstByte(ctx context.Context, c net.Conn, d time.Duration) (net.Conn, error) {
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return c, fmt.Errorf("first byte: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	var b [1]byte
	_, err := c.Read(b[:])
	if !stop() || err != nil {
		return c, fmt.Errorf("first byte within %v: %w", d, errors.Join(err, ctx.Err()))
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return c, fmt.Errorf("first byte: %w", err)
	}
	return &prefixedConn{Conn: c, first: b[:]}, nil
}

// prefixedConn is a connection whose first byte was already read.
type prefixedConn struct {
	net.Conn
	first []byte
}

func (c *prefixedConn) Read(p []byte) (int, error) {
	if len(c.first) > 0 && len(p) > 0 {
		n := copy(p, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
