package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// The device's link to its node: the same Noise IK link peers use, on
// which the device is one of the node's users.
//
// The protocol has no replies and no errors. Two facts of the node's user
// link make it usable anyway: the node handles a user's messages one after
// the other and queues its answers in that order, and it answers a user's
// GetPassport for the user's own passport (stored by the PutPassport just
// before) with a PutPassport. So a GetPassport of our own passport is a
// barrier: when its answer arrives, every answer to what we sent before it
// (the Topic messages of a QueryTopicMessages) has arrived too. The first
// barrier after PutPassport is also the test that the node takes us as a
// user: a node answers a non-user's PutPassport with nothing (a strike).

// errNotUser means the node did not serve the device as one of its users.
var errNotUser = errors.New("the node does not take this device as one of its users")

// nodeLink is a connected link with its reading goroutine.
type nodeLink struct {
	conn *wire.Conn
	addr string
	own  passport.Hash // the passport whose echo is the barrier
	idle time.Duration // how long an exchange may go without a frame

	write sync.Mutex // one writer at a time

	mu       sync.Mutex
	barriers []chan struct{} // in flight, oldest first
	watched  map[[32]byte]bool
	activity chan struct{} // a frame arrived (capacity 1)
	closed   chan struct{}
	err      error         // why the link closed
	done     chan struct{} // closed when the reading goroutine returns
}

// dialNode connects to the node at addr whose id is node, as device.
func dialNode(ctx context.Context, addr string, node keys.PublicKey, device ed25519.PrivateKey, timeout time.Duration) (*wire.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to node at %s: %w", addr, err)
	}
	conn, err := wire.Dial(ctx, raw, device, node)
	if errors.Is(err, wire.ErrWrongRemote) {
		return nil, fmt.Errorf("connect to node at %s: the handshake expected node id %s (--remote-id), and the node there did not answer as that id: "+
			"check --remote-id against the node's id (asmtpd-cli public-id). If it is right, the node refused this device for now, "+
			"as it does for a while with a device that is not in its users and kept trying (%w)", addr, node, wire.ErrWrongRemote)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to node at %s: %w", addr, err)
	}
	return conn, nil
}

// startLink starts reading conn: Topic messages go to handle, in order,
// on the reading goroutine; PutPassport answers release barriers.
func startLink(ctx context.Context, conn *wire.Conn, addr string, own passport.Hash, idle time.Duration, handle func(context.Context, *nodeLink, wire.Topic)) *nodeLink {
	l := &nodeLink{
		conn:     conn,
		addr:     addr,
		own:      own,
		idle:     idle,
		watched:  make(map[[32]byte]bool),
		activity: make(chan struct{}, 1),
		closed:   make(chan struct{}),
		done:     make(chan struct{}),
	}
	go l.read(ctx, handle)
	return l
}

func (l *nodeLink) read(ctx context.Context, handle func(context.Context, *nodeLink, wire.Topic)) {
	defer close(l.done)
	for {
		m, err := l.conn.ReadMessage(ctx)
		if err != nil {
			l.fail(err)
			return
		}
		select {
		case l.activity <- struct{}{}:
		default:
		}
		switch m := m.(type) {
		case wire.Topic:
			l.mu.Lock()
			h := contentHash(m)
			if _, ok := l.watched[h]; ok {
				l.watched[h] = true
			}
			l.mu.Unlock()
			handle(ctx, l, m)
		case wire.PutPassport:
			if m.ID == l.own {
				l.releaseBarrier()
			}
		}
	}
}

func (l *nodeLink) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closed:
	default:
		l.err = err
		close(l.closed)
	}
}

func (l *nodeLink) releaseBarrier() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.barriers) > 0 {
		close(l.barriers[0])
		l.barriers = l.barriers[1:]
	}
}

// alive reports whether the link is still open.
func (l *nodeLink) alive() bool {
	select {
	case <-l.closed:
		return false
	default:
		return true
	}
}

// errLinkClosed is why a link we closed ourselves is closed.
var errLinkClosed = errors.New("link closed by asmtp-cli")

// close closes the link and waits for the reading goroutine to return.
func (l *nodeLink) close() {
	l.fail(errLinkClosed)
	l.conn.Close()
	<-l.done
}

// send writes one message.
func (l *nodeLink) send(ctx context.Context, m wire.Message) error {
	l.write.Lock()
	defer l.write.Unlock()
	ctx, cancel := context.WithTimeout(ctx, l.idle)
	defer cancel()
	if err := l.conn.WriteMessage(ctx, m); err != nil {
		return fmt.Errorf("send %v to the node at %s: %w", m.Type(), l.addr, err)
	}
	return nil
}

// errBarrierTimeout means the node went quiet before answering a barrier.
var errBarrierTimeout = errors.New("the node stopped answering")

// barrier returns once the node has answered everything sent before it;
// it fails if the link closes or no frame arrives for the idle timeout,
// which closes the link.
func (l *nodeLink) barrier(ctx context.Context) error {
	done := make(chan struct{})
	l.mu.Lock()
	l.barriers = append(l.barriers, done)
	l.mu.Unlock()
	if err := l.send(ctx, wire.GetPassport{ID: l.own}); err != nil {
		return err
	}
	t := time.NewTimer(l.idle)
	defer t.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-l.activity:
			t.Reset(l.idle)
		case <-t.C:
			// Answers may still come and would release later barriers
			// early: the link is done for.
			err := fmt.Errorf("node at %s: %w (nothing for %v)", l.addr, errBarrierTimeout, l.idle)
			l.fail(err)
			l.conn.Close()
			return err
		case <-l.closed:
			return fmt.Errorf("node at %s closed the link: %w", l.addr, l.err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// watch starts noting whether these contents come back from the node.
func (l *nodeLink) watch(hashes [][32]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range hashes {
		l.watched[h] = false
	}
}

// unwatch stops watching and returns how many of the contents came back.
func (l *nodeLink) unwatch(hashes [][32]byte) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, h := range hashes {
		if l.watched[h] {
			n++
		}
		delete(l.watched, h)
	}
	return n
}

// probeUser uploads the own passport and waits for the barrier: a node
// that does not take the device as a user never answers it.
//
// The passport is kept without its topic (KeepPassport, §16.8): in
// naming v2 no node advertises a passport topic. A node that does not
// know the operation drops it and subscribes the topic, as in v1.
func (l *nodeLink) probeUser(ctx context.Context, device keys.PublicKey, own *passport.Passport) error {
	if err := l.userOp(ctx, wire.UserOp{Code: wire.OpKeepPassport, Passport: own.ID()}); err != nil {
		return err
	}
	if err := l.send(ctx, wire.PutPassport{ID: own.ID(), Blocks: own.Export()}); err != nil {
		return err
	}
	err := l.barrier(ctx)
	var how string
	switch {
	case err == nil || ctx.Err() != nil:
		return err
	case errors.Is(err, errBarrierTimeout):
		how = fmt.Sprintf("it did not answer the passport upload within %v", l.idle)
	default:
		how = "it closed the link after the passport upload"
	}
	return fmt.Errorf("%w: %s. Add this device key to `users` in the node's configuration and restart asmtpd:\n  %s", errNotUser, how, device)
}
