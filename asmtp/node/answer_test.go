package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
	"github.com/asmtp/asmtp/internal/wait"
)

// ★ A catch-up window holding more than one page (QueryLimit) of messages
// is fetched whole: the answering node pages on to the end of the window
// and the asking node gets every message once, and then owes nothing.
// Before paged answers it got the first QueryLimit messages, and the
// window was paid all the same.
func TestCatchUpFetchesWholeWindow(t *testing.T) {
	const limit, missed = 10, 35
	nodes := startNetwork(t, 2, func(c *Config) { c.QueryLimit = limit; c.WriteTimeout = time.Second })
	ctx := context.Background()
	tp := topic.Topic{0x9a, 0x6e}
	a, c := nodes[0], nodes[1]
	sa, sc := a.session(t), c.session(t)
	for _, s := range []*Session{sa, sc} {
		if err := s.Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 15*time.Second, "rings", func() bool { return ringsConverged(nodes, nodes, tp) == nil })
	c.stop(t)
	for i := range missed {
		if err := sa.Publish(ctx, tp, fmt.Appendf(nil, "missed %02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := c.cfg
	cfg.ListenAddress = c.Addr().String()
	var sc2 *Session
	c2 := startWith(t, cfg, c.user, func(tn *testNode) { sc2 = tn.session(t) })
	got := receive(t, sc2, missed, 15*time.Second)
	seen := map[string]bool{}
	for _, d := range got {
		if seen[string(d.Content)] {
			t.Fatalf("delivered twice: %q", d.Content)
		}
		seen[string(d.Content)] = true
	}
	noMore(t, sc2, 500*time.Millisecond)
	wait.Until(t, 15*time.Second, "the catch-up to complete", func() bool { return owesNothing(c2) })
}

func owesNothing(tn *testNode) bool {
	tn.owed.mu.Lock()
	defer tn.owed.mu.Unlock()
	return len(tn.owed.m) == 0
}

// scriptedPeer is a bare wire link posing as a node that subscribes to a
// topic and answers the node's queries with answer(q).
type scriptedPeer struct {
	key     ed25519.PrivateKey
	wc      *wire.Conn
	done    chan struct{} // closed when the link ends
	mu      sync.Mutex
	queries []wire.QueryTopicMessages
}

// dialScriptedPeer links key to tn, announces a gossip subscribing to tp
// and answers every query with the messages answer returns.
func dialScriptedPeer(t *testing.T, tn *testNode, key ed25519.PrivateKey, tp topic.Topic, answer func(wire.QueryTopicMessages) []wire.Message) *scriptedPeer {
	t.Helper()
	p := &scriptedPeer{key: key, done: make(chan struct{})}
	raw, err := net.Dial("tcp", tn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if p.wc, err = wire.Dial(ctx, raw, key, tn.ID()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.wc.Close() })
	// The address is never dialled: the node reuses this link.
	g, err := gossip.New(key, gossip.FromTime(time.Now()), netip.MustParseAddrPort("127.0.0.1:1"),
		[]gossip.Subscription{{Topic: tp, Interest: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.wc.WriteMessage(ctx, wire.Gossip{Gossip: g}); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		for {
			m, err := p.wc.ReadMessage(context.Background())
			if err != nil {
				return
			}
			q, ok := m.(wire.QueryTopicMessages)
			if !ok || q.Topic != tp {
				continue
			}
			p.mu.Lock()
			p.queries = append(p.queries, q)
			p.mu.Unlock()
			for _, a := range answer(q) {
				if p.wc.WriteMessage(context.Background(), a) != nil {
					return
				}
			}
		}
	}()
	return p
}

func (p *scriptedPeer) asked() []wire.QueryTopicMessages {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]wire.QueryTopicMessages(nil), p.queries...)
}

// ★ When a catch-up counts as complete, by the markers the asked peer
// sends: Complete pays it; a peer that sends no marker (protocol v1)
// pays it once its link stayed open for settleTime, as before markers; an
// answer that began and never completed, or a refusal, does not (a refusal
// is asked again).
func TestCatchUpPaidByMarkers(t *testing.T) {
	msgs := func(q wire.QueryTopicMessages) []wire.Message {
		var out []wire.Message
		for i := range 3 {
			out = append(out, wire.Topic{Topic: q.Topic, Content: fmt.Appendf(nil, "answer %d", i)})
		}
		return out
	}
	mark := func(q wire.QueryTopicMessages, st wire.AnswerStatus) wire.Message {
		return wire.AnswerMarker{Query: q, Status: st}.Topic()
	}
	cases := []struct {
		name      string
		answer    func(wire.QueryTopicMessages) []wire.Message
		delivered int
		paid      bool
	}{
		{"complete", func(q wire.QueryTopicMessages) []wire.Message {
			return append(append([]wire.Message{mark(q, wire.AnswerBegins)}, msgs(q)...), mark(q, wire.AnswerComplete))
		}, 3, true},
		{"no markers (v1 peer)", msgs, 3, true},
		{"begins, never completes", func(q wire.QueryTopicMessages) []wire.Message {
			return append([]wire.Message{mark(q, wire.AnswerBegins)}, msgs(q)...)
		}, 3, false},
		{"refused", func(q wire.QueryTopicMessages) []wire.Message {
			return []wire.Message{mark(q, wire.AnswerRefused)}
		}, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, user := testConfig(t, t.TempDir())
			cfg.WriteTimeout = 300 * time.Millisecond // settleTime 600 ms
			n := start(t, cfg, user)
			tp := topic.Topic{0x3a, 0x4b}
			p := dialScriptedPeer(t, n, newKey(t), tp, c.answer)
			wait.Until(t, 5*time.Second, "the peer to be a known subscriber", func() bool {
				return n.overlay.subscribes(keys.Public(p.key), tp)
			})
			s := n.session(t)
			if err := s.Register(context.Background(), tp); err != nil {
				t.Fatal(err)
			}
			if c.delivered > 0 {
				receive(t, s, c.delivered, 5*time.Second)
			}
			if c.paid {
				wait.Until(t, 5*time.Second, "the catch-up to be paid", func() bool { return owesNothing(n) })
				return
			}
			wait.Until(t, 5*time.Second, "the query", func() bool { return len(p.asked()) > 0 })
			if c.delivered == 0 { // refused: asked again
				wait.Until(t, 5*time.Second, "the query again", func() bool { return len(p.asked()) > 1 })
			}
			wait.Never(t, 3*n.settleTime(), "the catch-up paid without a complete answer", func() bool { return owesNothing(n) })
		})
	}
}

// ★ A closed link is remembered for a relink catch-up (catchUpRelinked,
// TestRelinkedPeerCatchUp) only when it may have lost messages: not after
// this node closed it for the idle timeout, but after the peer hung up.
func TestLinkLossNotedOnlyWhenMessagesMayBeLost(t *testing.T) {
	cases := []struct {
		name   string
		hangUp bool // the peer closes the link itself
		lost   bool
	}{
		{"idle timeout", false, false},
		{"peer hung up", true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, user := testConfig(t, t.TempDir())
			cfg.IdleTimeout = 500 * time.Millisecond
			n := start(t, cfg, user)
			tp := topic.Topic{0x3a, 0x4c}
			key := newKey(t)
			id := keys.Public(key)
			p := dialScriptedPeer(t, n, key, tp, func(wire.QueryTopicMessages) []wire.Message { return nil })
			wait.Until(t, 5*time.Second, "the peer's gossip", func() bool { return n.overlay.subscribes(id, tp) })
			if c.hangUp {
				p.wc.Close()
			}
			<-p.done // the peer sends nothing more: the node idles the link out
			// Gone from the node's links: closeLink removes it and notes the
			// loss under the same lock, so the note is there by then (a
			// closed flag alone comes before the note).
			wait.Until(t, 5*time.Second, "the node to drop the link", func() bool {
				_, ok := n.linkIfAny(id)
				return !ok
			})
			if _, lost := n.lostSince(id); lost != c.lost {
				t.Fatalf("link noted as lost: %v, want %v", lost, c.lost)
			}
		})
	}
}

// lostSince returns when n's link to peer lost track, if it did.
func (n *Node) lostSince(peer keys.PublicKey) (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.lost[peer]
	return t, ok
}

// linkIfAny returns the node's link to peer, if it has one.
func (n *Node) linkIfAny(peer keys.PublicKey) (*link, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	l, ok := n.links[peer]
	return l, ok
}

// ★ A newly seen subscriber of a registered topic is asked for the last
// NewSubscriberWindow, not for the whole retention window (up to 30 days
// of the topic every time churn makes a subscriber new again).
func TestNewSubscriberWindow(t *testing.T) {
	cfg, user := testConfig(t, t.TempDir())
	n := start(t, cfg, user)
	tp := topic.Topic{0x3a, 0x4d}
	complete := func(q wire.QueryTopicMessages) []wire.Message {
		return []wire.Message{wire.AnswerMarker{Query: q, Status: wire.AnswerBegins}.Topic(), wire.AnswerMarker{Query: q, Status: wire.AnswerComplete}.Topic()}
	}
	// The registration's catch-up is answered by a first subscriber.
	first := dialScriptedPeer(t, n, newKey(t), tp, complete)
	wait.Until(t, 5*time.Second, "the first subscriber", func() bool { return n.overlay.subscribes(keys.Public(first.key), tp) })
	if err := n.session(t).Register(context.Background(), tp); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 5*time.Second, "the registration's catch-up", func() bool { return owesNothing(n) })

	began := time.Now()
	second := dialScriptedPeer(t, n, newKey(t), tp, complete)
	wait.Until(t, 5*time.Second, "a query to the new subscriber", func() bool { return len(second.asked()) > 0 })
	for _, q := range second.asked() {
		if since := gossip.ToTime(q.Since); since.Before(began.Add(-NewSubscriberWindow - time.Minute)) {
			t.Fatalf("the new subscriber was asked from %v, %v back", since, began.Sub(since).Round(time.Minute))
		}
	}
}
