package poldercast_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/poldercast"
)

// network is a small in-memory overlay for tests: synchronous exchanges,
// no loss, no churn.
type network struct {
	nodes  []*poldercast.Topology
	byID   map[poldercast.ID]*poldercast.Topology
	topics map[poldercast.Topic][]poldercast.ID // topic → subscribers
	rng    *rand.Rand
}

// newNetwork builds n nodes, each subscribed to perNode of numTopics topics,
// each knowing 3 random earlier nodes.
func newNetwork(t testing.TB, n, numTopics, perNode int, seed uint64) *network {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0))
	nw := &network{
		byID:   make(map[poldercast.ID]*poldercast.Topology),
		topics: make(map[poldercast.Topic][]poldercast.ID),
		rng:    rng,
	}
	catalogue := make([]poldercast.Topic, numTopics)
	for i := range catalogue {
		catalogue[i][0], catalogue[i][1] = byte(rng.Uint32()), byte(i)
	}
	for i := range n {
		var id poldercast.ID
		for j := range id {
			id[j] = byte(rng.Uint32())
		}
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 9800)
		top, err := poldercast.New(id, addr, poldercast.Config{}, rand.New(rand.NewPCG(seed, uint64(i)+1)), t0)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range rng.Perm(numTopics)[:perNode] {
			if err := top.Subscribe(catalogue[k], t0); err != nil {
				t.Fatal(err)
			}
			nw.topics[catalogue[k]] = append(nw.topics[catalogue[k]], id)
		}
		for range min(3, len(nw.nodes)) {
			if err := top.Add(nw.nodes[rng.IntN(len(nw.nodes))].Self(), t0); err != nil {
				t.Fatal(err)
			}
		}
		nw.nodes = append(nw.nodes, top)
		nw.byID[id] = top
	}
	return nw
}

// round ticks every node once, in a random order.
func (nw *network) round(now time.Time) {
	for _, i := range nw.rng.Perm(len(nw.nodes)) {
		a := nw.nodes[i]
		for _, peer := range a.Tick(now) {
			b := nw.byID[peer]
			if answer, _ := b.Receive(a.ID(), a.GossipFor(peer, now), now); answer {
				a.Receive(peer, b.GossipFor(a.ID(), now), now)
			}
		}
	}
}

// wrongRings counts (node, topic) pairs whose closest successor or
// predecessor is not the true one.
func (nw *network) wrongRings() int {
	wrong := 0
	for tp, members := range nw.topics {
		if len(members) < 2 {
			continue
		}
		m := slices.Clone(members)
		slices.SortFunc(m, func(a, b poldercast.ID) int { return bytes.Compare(a[:], b[:]) })
		for i, id := range m {
			succ, pred := nw.byID[id].Ring(tp)
			if len(succ) == 0 || len(pred) == 0 || succ[0] != m[(i+1)%len(m)] || pred[0] != m[(i+len(m)-1)%len(m)] {
				wrong++
			}
		}
	}
	return wrong
}

// state is a fingerprint of every node's rings, to compare runs.
func (nw *network) state() string {
	var b bytes.Buffer
	for _, n := range nw.nodes {
		self := n.Self()
		for _, s := range self.Subscriptions {
			succ, pred := n.Ring(s.Topic)
			fmt.Fprintf(&b, "%x %x %v %v|", self.ID[:2], s.Topic[:2], succ, pred)
		}
	}
	return b.String()
}

// TestConvergence: from 3 random known peers each, every ring of a
// 120-node overlay becomes exact, and the run is deterministic.
func TestConvergence(t *testing.T) {
	const maxRounds = 40
	run := func() (int, string) {
		nw := newNetwork(t, 120, 30, 4, 7)
		for r := range maxRounds {
			nw.round(t0.Add(time.Duration(r+1) * 30 * time.Second))
			if nw.wrongRings() == 0 {
				return r + 1, nw.state()
			}
		}
		t.Fatalf("rings not exact after %d rounds: %d wrong", maxRounds, nw.wrongRings())
		return 0, ""
	}
	rounds, state := run()
	t.Logf("converged in %d rounds", rounds)
	rounds2, state2 := run()
	if rounds2 != rounds || state2 != state {
		t.Errorf("second run differs: %d rounds vs %d, same state %v", rounds2, rounds, state2 == state)
	}
}

// TestDissemination: in the converged overlay every subscriber receives
// every event with Forward, each sends at most F copies, and no
// non-subscriber receives anything.
func TestDissemination(t *testing.T) {
	nw := newNetwork(t, 120, 30, 4, 11)
	for r := range 40 {
		nw.round(t0.Add(time.Duration(r+1) * 30 * time.Second))
	}
	if w := nw.wrongRings(); w != 0 {
		t.Fatalf("%d wrong rings after 40 rounds", w)
	}
	fanout := nw.nodes[0].Config().Fanout
	for tp, members := range nw.topics {
		pub := nw.byID[members[0]]
		got := map[poldercast.ID]bool{pub.ID(): true}
		type hop struct {
			at   *poldercast.Topology
			from poldercast.ID
		}
		queue := []hop{{pub, pub.ID()}}
		for len(queue) > 0 {
			h := queue[0]
			queue = queue[1:]
			targets := h.at.Forward(tp, h.from)
			if len(targets) > fanout {
				t.Fatalf("Forward returned %d > F peers", len(targets))
			}
			for _, id := range targets {
				if !slices.Contains(members, id) {
					t.Fatalf("topic %x: sent to non-subscriber %x", tp[:2], id[:2])
				}
				if !got[id] {
					got[id] = true
					queue = append(queue, hop{nw.byID[id], h.at.ID()})
				}
			}
		}
		if len(got) != len(members) {
			t.Errorf("topic %x: %d of %d subscribers reached", tp[:2], len(got), len(members))
		}
	}
}

// BenchmarkCycle measures one topology cycle of one node in a converged
// 200-node overlay: Tick, and for each returned peer GossipFor, the peer's
// Receive and GossipFor, and our Receive.
func BenchmarkCycle(b *testing.B) {
	nw := newNetwork(b, 200, 50, 10, 3)
	now := t0
	for range 30 {
		now = now.Add(30 * time.Second)
		nw.round(now)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := nw.nodes[i%len(nw.nodes)]
		i++
		if i%len(nw.nodes) == 0 {
			now = now.Add(30 * time.Second)
		}
		at := now.Add(time.Duration(i%len(nw.nodes)) * 100 * time.Millisecond)
		for _, peer := range a.Tick(at) {
			p := nw.byID[peer]
			if answer, _ := p.Receive(a.ID(), a.GossipFor(peer, at), at); answer {
				a.Receive(peer, p.GossipFor(a.ID(), at), at)
			}
		}
	}
}
