package node

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
	"github.com/asmtp/asmtp/internal/wait"
)

// relayConn is a TCP proxy for one connection to target: it accepts it,
// signals accepted, waits for release, then pipes both ways; hungUp is
// closed when target closes its side.
type relayConn struct {
	ln       net.Listener
	accepted chan struct{}
	release  chan struct{}
	hungUp   chan struct{}
}

func newRelayConn(t *testing.T, target string, held bool) *relayConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relayConn{ln: ln, accepted: make(chan struct{}), release: make(chan struct{}), hungUp: make(chan struct{})}
	if !held {
		close(r.release)
	}
	t.Cleanup(func() { ln.Close() })
	go r.serve(t, target)
	return r
}

func (r *relayConn) serve(t *testing.T, target string) {
	c, err := r.ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	close(r.accepted)
	<-r.release
	up, err := net.Dial("tcp", target)
	if err != nil {
		t.Errorf("proxy dial %s: %v", target, err)
		return
	}
	defer up.Close()
	go io.Copy(up, c)
	io.Copy(c, up)
	close(r.hungUp)
}

// ★ The simultaneous-dial race: the node with the smaller id refuses the
// larger's handshake while its own dial is pending, and its connection
// reaches the larger only afterwards. The larger must adopt it and send
// what it had queued for that peer; it used to close its link at the
// refusal, hand the queue to other peers (none here) and drop the peer
// from its overlay, so the peer never got the message. Under load this
// race is common: it is what lost deliveries in the fifty-node test.
func TestDialRaceKeepsQueuedMessages(t *testing.T) {
	cfgA, userA := testConfig(t, t.TempDir())
	cfgB, userB := testConfig(t, t.TempDir())
	small, large := start(t, cfgA, userA), start(t, cfgB, userB)
	if bytes.Compare(small.id[:], large.id[:]) > 0 {
		small, large = large, small
	}
	ctx := context.Background()
	tp := topic.Topic{0xd1}
	s := small.session(t)
	if err := s.Register(ctx, tp); err != nil {
		t.Fatal(err)
	}

	// The smaller node's dial to the larger is held in a proxy.
	held := newRelayConn(t, large.Addr().String(), true)
	small.noteDialHint(PeerAddr{ID: large.id, Addr: held.ln.Addr().String()})
	if _, err := small.linkTo(large.id); err != nil {
		t.Fatal(err)
	}
	<-held.accepted

	// The larger dials the smaller with a message queued: refused.
	refusal := newRelayConn(t, small.Addr().String(), false)
	large.noteDialHint(PeerAddr{ID: small.id, Addr: refusal.ln.Addr().String()})
	l, err := large.linkTo(small.id)
	if err != nil {
		t.Fatal(err)
	}
	if !l.enqueue(ctx, wire.Topic{Topic: tp, Content: []byte("queued in the race")}, 0) {
		t.Fatal("enqueue failed")
	}
	<-refusal.hungUp
	// Without the fix the larger closes its link right after the
	// refusal; give it that moment before the smaller's dial goes on.
	wait.Poll(time.Second, l.isClosed)
	close(held.release)

	wait.Until(t, 10*time.Second, "the smaller node stores the queued message", func() bool {
		ms, err := s.Query(ctx, tp, 0)
		return err == nil && len(ms) == 1
	})
}
