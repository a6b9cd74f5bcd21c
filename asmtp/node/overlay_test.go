package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/poldercast"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/wait"
)

// ★ Fifty nodes on real TCP, a third of them subscribed to a topic; some
// subscribers and some non-subscribers publish. Every subscriber gets every
// message exactly once (its own excepted: a session is not echoed its own
// publications, but its node stores them), and the overlay is relay-free:
//
//   - a non-subscriber never receives a Topic message (Stats.Received and
//     Stats.Unsolicited stay 0) and never relays one (Stats.Relayed 0);
//   - the only Topic messages a non-subscriber sends are its own users'
//     publications, handed to known subscribers (Stats.HandedOff).
func TestFiftyNodesExactlyOnceRelayFree(t *testing.T) {
	if testing.Short() || raceDetector {
		t.Skip("50-node network: not in -short or -race runs")
	}
	const size, subscribers, perPublisher = 50, 17, 3
	// Every gossip sent or received costs an Ed25519 verification: 50 nodes
	// sharing 2 cores need a slower round than the other tests.
	nodes := startNetwork(t, size, func(c *Config) {
		c.GossipInterval = time.Second
		c.PersistInterval = 5 * time.Second
	})
	ctx := context.Background()
	tp := topic.Topic{0x50, 50}

	rng := rand.New(rand.NewPCG(50, 50))
	order := rng.Perm(size)
	subs := make([]*testNode, subscribers)
	sessions := map[*testNode]*Session{}
	for i := range subs {
		subs[i] = nodes[order[i]]
		s := subs[i].session(t)
		if err := s.Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
		sessions[subs[i]] = s
	}
	start := time.Now()
	wait.Until(t, 60*time.Second, "ring convergence", func() bool { return ringsConverged(nodes, subs, tp) == nil })
	t.Logf("rings converged in %v", time.Since(start).Round(time.Millisecond))

	// Three subscribers and three non-subscribers publish.
	publishers := []*testNode{subs[0], subs[1], subs[2], nodes[order[subscribers]], nodes[order[subscribers+1]], nodes[order[subscribers+2]]}
	published := map[string]*testNode{}
	for _, p := range publishers {
		s := sessions[p]
		if s == nil {
			s = p.session(t)
		}
		for i := range perPublisher {
			content := fmt.Sprintf("%s #%d", p.ID(), i)
			if err := s.Publish(ctx, tp, []byte(content)); err != nil {
				t.Fatalf("publish by %s: %v", p.ID(), err)
			}
			published[content] = p
		}
	}

	// The rings have converged, but the links along them may not be up
	// yet, and on a starved CPU (fifty nodes verifying each other's
	// gossip on a shared machine) a message can wait, in the queue of the
	// link it was forwarded on, for that link's dial (HandshakeTimeout),
	// then, if the dial lost the simultaneous-dial race, for the peer's
	// own dial (HandshakeTimeout again), and for a stuck write to close
	// the link and reroute its queue (WriteTimeout). What must hold is
	// that every subscriber gets every message exactly once within that;
	// on a quiet machine it takes milliseconds (logged below).
	cfg := nodes[0].cfg
	bound := 2*cfg.HandshakeTimeout + cfg.WriteTimeout
	publishedAt := time.Now()
	deadline := publishedAt.Add(bound)
	var latency time.Duration
	for _, sub := range subs {
		s := sessions[sub]
		want := 0
		for _, p := range published {
			if p != sub {
				want++
			}
		}
		got := receive(t, s, want, time.Until(deadline))
		latency = max(latency, time.Since(publishedAt))
		seen := map[string]bool{}
		for _, d := range got {
			c := string(d.Content)
			if published[c] == nil || published[c] == sub || seen[c] {
				t.Fatalf("subscriber %s: unexpected or repeated delivery %q", sub.ID(), c)
			}
			seen[c] = true
		}
		stored, err := s.Query(ctx, tp, 0)
		if err != nil || len(stored) != len(published) {
			t.Fatalf("subscriber %s stores %d messages (%v), want %d", sub.ID(), len(stored), err, len(published))
		}
	}
	for _, sub := range subs {
		noMore(t, sessions[sub], 0)
	}
	time.Sleep(300 * time.Millisecond) // let stray duplicates land before counting

	var received, duplicates uint64
	for _, n := range nodes {
		st := n.Stats()
		if slices.Contains(subs, n) {
			received += st.Received
			duplicates += st.Duplicates
			if st.HandedOff != 0 {
				t.Errorf("subscriber %s handed off %d messages", n.ID(), st.HandedOff)
			}
			continue
		}
		wantHandoffs := st.HandedOff > 0 == slices.Contains(publishers, n)
		if st.Received != 0 || st.Unsolicited != 0 || st.Relayed != 0 || !wantHandoffs {
			t.Errorf("non-subscriber %s (publisher %v): %+v", n.ID(), slices.Contains(publishers, n), st)
		}
	}
	t.Logf("every subscriber had every message %v after the last publication (bound %v)", latency.Round(time.Millisecond), bound)
	msgs := uint64(len(published))
	t.Logf("%d messages to %d subscribers: %.1f receipts and %.1f duplicates per subscriber per message (fanout %d)",
		msgs, subscribers, float64(received)/float64(msgs*subscribers), float64(duplicates)/float64(msgs*subscribers), DefaultFanout)
}

// Gossip freshness: a far-future gossip is rejected, an older one than
// known is ignored, a newer one replaces it.
func TestGossipFreshness(t *testing.T) {
	cfg, _ := testConfig(t, t.TempDir())
	cfg.setDefaults()
	now := time.Now()
	o, err := newOverlay(cfg, netip.MustParseAddrPort("127.0.0.1:1"), now)
	if err != nil {
		t.Fatal(err)
	}
	peer := newKey(t)
	addr := netip.MustParseAddrPort("127.0.0.1:2")
	at := func(d time.Duration, subs ...gossip.Subscription) gossip.Gossip {
		g, err := gossip.New(peer, gossip.FromTime(now.Add(d)), addr, subs)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	sub := gossip.Subscription{Topic: topic.Topic{7}, Interest: 1}
	steps := []struct {
		name    string
		g       gossip.Gossip
		wantErr bool
		want    uint32 // time of the profile held afterwards
	}{
		{"first", at(-time.Minute), false, gossip.FromTime(now.Add(-time.Minute))},
		{"far future", at(time.Hour), true, gossip.FromTime(now.Add(-time.Minute))},
		{"older than known", at(-2*time.Minute, sub), false, gossip.FromTime(now.Add(-time.Minute))},
		{"newer", at(0, sub), false, gossip.FromTime(now)},
	}
	for _, s := range steps {
		_, err := o.receive(keys.Public(peer), s.g, now)
		if (err != nil) != s.wantErr {
			t.Fatalf("%s: error %v, want error %v", s.name, err, s.wantErr)
		}
		p, ok := o.topo.Profile(poldercast.ID(keys.Public(peer)))
		if !ok || gossip.FromTime(p.Time) != s.want {
			t.Fatalf("%s: held profile time %v (%v), want %d", s.name, gossip.FromTime(p.Time), ok, s.want)
		}
	}
	if len(o.handoff(sub.Topic)) != 1 {
		t.Fatal("the newer gossip's subscription is not known")
	}
}

// Registering a topic re-signs the node's gossip at once with the topic.
func TestOwnGossipResignedOnRegister(t *testing.T) {
	cfg, user := testConfig(t, t.TempDir())
	n := start(t, cfg, user)
	tp := topic.Topic{0x42}
	before := n.Gossip()
	if err := n.session(t).Register(context.Background(), tp); err != nil {
		t.Fatal(err)
	}
	after := n.Gossip()
	if err := after.Verify(); err != nil {
		t.Fatal(err)
	}
	if after.Time < before.Time || !slices.ContainsFunc(after.Subscriptions, func(s gossip.Subscription) bool { return s.Topic == tp }) {
		t.Fatalf("gossip after Register: time %d (before %d), subscriptions %v", after.Time, before.Time, after.Subscriptions)
	}
}
