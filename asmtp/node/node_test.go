package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/wait"
)

func TestPublishReachesSubscribers(t *testing.T) {
	nodes := startNetwork(t, 4, nil)
	ctx := context.Background()
	tp := topic.Topic{0xaa, 1}
	subs := nodes[1:]
	sessions := make([]*Session, len(subs))
	for i, n := range subs {
		sessions[i] = n.session(t)
		if err := sessions[i].Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 15*time.Second, "rings", func() bool { return ringsConverged(nodes, subs, tp) == nil })

	// A subscriber publishes: the others get it, the publisher does not
	// get its own message back.
	if err := sessions[0].Publish(ctx, tp, []byte("from a subscriber")); err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions[1:] {
		d := receive(t, s, 1, 5*time.Second)
		if string(d[0].Content) != "from a subscriber" {
			t.Fatalf("got %q", d[0].Content)
		}
	}
	// A non-subscriber publishes: it hands the message off.
	pub := nodes[0].session(t)
	if err := pub.Publish(ctx, tp, []byte("handed off")); err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		d := receive(t, s, 1, 5*time.Second)
		if string(d[0].Content) != "handed off" {
			t.Fatalf("got %q", d[0].Content)
		}
	}
	for _, s := range sessions {
		noMore(t, s, 300*time.Millisecond)
	}
	if st := nodes[0].Stats(); st.HandedOff == 0 || st.Relayed != 0 || st.Unsolicited != 0 {
		t.Errorf("non-subscriber stats: %+v", st)
	}
	got, err := sessions[2].Query(ctx, tp, 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("query: %d messages, %v", len(got), err)
	}
}

// ★ Kill C (a subscriber node), publish 5 messages, restart C on the same
// database: all 5 arrive, exactly once, and what C had before does not
// arrive again.
func TestRestartedSubscriberCatchesUpExactlyOnce(t *testing.T) {
	nodes := startNetwork(t, 4, nil)
	ctx := context.Background()
	tp := topic.Topic{0xcc, 5}
	a, b, c := nodes[1], nodes[2], nodes[3]
	subs := []*testNode{a, b, c}
	sa, sb, sc := a.session(t), b.session(t), c.session(t)
	for _, s := range []*Session{sa, sb, sc} {
		if err := s.Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 15*time.Second, "rings", func() bool { return ringsConverged(subs, subs, tp) == nil })
	if err := sa.Publish(ctx, tp, []byte("before")); err != nil {
		t.Fatal(err)
	}
	receive(t, sb, 1, 5*time.Second)
	receive(t, sc, 1, 5*time.Second)

	c.stop(t)
	for i := range 5 {
		if err := sa.Publish(ctx, tp, fmt.Appendf(nil, "missed %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	receive(t, sb, 5, 5*time.Second)

	cfg := c.cfg
	cfg.ListenAddress = c.Addr().String()
	var sc2 *Session
	startWith(t, cfg, c.user, func(tn *testNode) { sc2 = tn.session(t) })
	got := receive(t, sc2, 5, 10*time.Second)
	noMore(t, sc2, time.Second)
	seen := map[string]bool{}
	for _, d := range got {
		if seen[string(d.Content)] || string(d.Content) == "before" {
			t.Fatalf("delivered twice or again: %q", d.Content)
		}
		seen[string(d.Content)] = true
	}
	stored, err := sc2.Query(ctx, tp, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 6 {
		t.Fatalf("restarted node stores %d messages, want 6", len(stored))
	}
}

// A restarted node finds its place in the overlay again from its database
// alone: its only bootstrap peer is down, and it comes back on another
// port, so the others cannot find it before it finds them.
func TestRestartWithoutBootstrap(t *testing.T) {
	nodes := startNetwork(t, 5, nil)
	ctx := context.Background()
	tp := topic.Topic{0xdd, 1}
	subs := nodes[1:]
	sessions := make([]*Session, len(subs))
	for i, n := range subs {
		sessions[i] = n.session(t)
		if err := sessions[i].Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 15*time.Second, "rings", func() bool { return ringsConverged(subs, subs, tp) == nil })

	x := subs[0]
	x.stop(t)
	nodes[0].stop(t) // the bootstrap peer
	cfg := x.cfg
	var sx *Session
	x2 := startWith(t, cfg, x.user, func(tn *testNode) { sx = tn.session(t) })
	running := append([]*testNode{x2}, subs[1:]...)
	wait.Until(t, 15*time.Second, "rings after restart", func() bool { return ringsConverged(running, running, tp) == nil })

	if err := sessions[2].Publish(ctx, tp, []byte("welcome back")); err != nil {
		t.Fatal(err)
	}
	if d := receive(t, sx, 1, 5*time.Second); string(d[0].Content) != "welcome back" {
		t.Fatalf("got %q", d[0].Content)
	}
}

// A user registering a topic late gets its history from the subscribers
// that kept it.
func TestLateRegistrationFetchesHistory(t *testing.T) {
	nodes := startNetwork(t, 3, nil)
	ctx := context.Background()
	tp := topic.Topic{0x1a}
	early := []*testNode{nodes[0], nodes[1]}
	var pub *Session
	for _, n := range early {
		s := n.session(t)
		if err := s.Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
		pub = s
	}
	wait.Until(t, 10*time.Second, "rings", func() bool { return ringsConverged(early, early, tp) == nil })
	for i := range 3 {
		if err := pub.Publish(ctx, tp, fmt.Appendf(nil, "old %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	late := nodes[2].session(t)
	if err := late.Register(ctx, tp); err != nil {
		t.Fatal(err)
	}
	got := receive(t, late, 3, 10*time.Second)
	noMore(t, late, 500*time.Millisecond)
	seen := map[string]bool{}
	for _, d := range got {
		seen[string(d.Content)] = true
	}
	for i := range 3 {
		if !seen[fmt.Sprintf("old %d", i)] {
			t.Fatalf("history %v lacks old %d", seen, i)
		}
	}
}

// A node that is never run releases its database and listener on Close,
// and one that ran refuses to run again.
func TestCloseWithoutRun(t *testing.T) {
	cfg, user := testConfig(t, t.TempDir())
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Run(context.Background()); err == nil {
		t.Fatal("a closed node ran")
	}
	tn := start(t, cfg, user) // the same database opens again
	tn.stop(t)
	if err := tn.Run(context.Background()); err == nil {
		t.Fatal("a node ran twice")
	}
}

// A message a peer stored but never sent before its link closed (it was
// still queued when the peer died) reaches the subscriber once the peer's
// link is back: the subscriber catches up from the relinked peer, though
// the overlay never lost sight of it.
func TestRelinkedPeerCatchUp(t *testing.T) {
	nodes := startNetwork(t, 2, func(c *Config) { c.GossipInterval = time.Second })
	ctx := context.Background()
	tp := topic.Topic{0x4e, 7}
	c, a := nodes[0], nodes[1]
	sc, sa := c.session(t), a.session(t)
	for _, s := range []*Session{sc, sa} {
		if err := s.Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 15*time.Second, "rings", func() bool { return ringsConverged(nodes, nodes, tp) == nil })
	if err := sa.Publish(ctx, tp, []byte("sent")); err != nil {
		t.Fatal(err)
	}
	receive(t, sc, 1, 5*time.Second)
	// Let the catch-ups of the registrations run first (one round each),
	// so that they cannot be what fetches the lost message.
	time.Sleep(3 * c.cfg.GossipInterval)

	a.stop(t)
	st, err := store.Open(ctx, a.cfg.StoragePath)
	if err != nil {
		t.Fatal(err)
	}
	lost := []byte("stored, never sent")
	if _, _, err := st.AddMessage(ctx, store.Durable, tp, messageHash(tp, lost), lost, time.Now()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	cfg := a.cfg
	cfg.ListenAddress = a.Addr().String()
	start(t, cfg, a.user)

	d := receive(t, sc, 1, 10*time.Second)
	if string(d[0].Content) != string(lost) {
		t.Fatalf("got %q, want %q", d[0].Content, lost)
	}
	noMore(t, sc, 2*time.Second)
}
