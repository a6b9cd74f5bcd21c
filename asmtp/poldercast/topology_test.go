package poldercast_test

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/poldercast"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func id(b byte) poldercast.ID {
	var x poldercast.ID
	x[0] = b
	x[31] = 1 // never the zero id
	return x
}

func topic(b byte) poldercast.Topic {
	var tp poldercast.Topic
	tp[0] = b
	return tp
}

func profile(b byte, at time.Time, topics ...poldercast.Topic) poldercast.Profile {
	p := poldercast.Profile{ID: id(b), Addr: netip.MustParseAddrPort("192.0.2.1:9800"), Time: at}
	for _, tp := range topics {
		p.Subscriptions = append(p.Subscriptions, poldercast.Subscription{Topic: tp, Interest: 1})
	}
	return p
}

func newTopology(t testing.TB, self byte, cfg poldercast.Config, topics ...poldercast.Topic) *poldercast.Topology {
	t.Helper()
	top, err := poldercast.New(id(self), netip.MustParseAddrPort("192.0.2.2:9800"), cfg, rand.New(rand.NewPCG(1, uint64(self))), t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range topics {
		if err := top.Subscribe(tp, t0); err != nil {
			t.Fatal(err)
		}
	}
	return top
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  poldercast.Config
	}{
		{"odd ring", poldercast.Config{RingSize: 3}},
		{"fanout 1", poldercast.Config{Fanout: 1}},
		{"gossip too long", poldercast.Config{GossipSize: poldercast.MaxBatch}},
		{"negative ttl", poldercast.Config{ProfileTTL: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := poldercast.New(id(1), netip.AddrPort{}, tt.cfg, rand.New(rand.NewPCG(1, 1)), t0); err == nil {
				t.Error("New succeeded, want an error")
			}
		})
	}
}

// TestFreshness: newer replaces, older and equal are ignored, the future
// beyond the skew is rejected, expired profiles are ignored, and a removed
// peer comes back only with a newer profile.
func TestFreshness(t *testing.T) {
	tA := topic(0xa0)
	cfg := poldercast.Config{MaxClockSkew: time.Minute, ProfileTTL: time.Hour}
	tests := []struct {
		name     string
		steps    []poldercast.Profile
		remove   int // remove the peer after this many steps, -1 never
		last     poldercast.Profile
		wantErr  error
		wantTime time.Time // zero: the peer must be unknown
	}{
		{"first profile kept", nil, -1, profile(2, t0, tA), nil, t0},
		{"newer replaces", []poldercast.Profile{profile(2, t0, tA)}, -1, profile(2, t0.Add(time.Second), tA), nil, t0.Add(time.Second)},
		{"older ignored", []poldercast.Profile{profile(2, t0, tA)}, -1, profile(2, t0.Add(-time.Second), tA), nil, t0},
		{"within skew accepted", nil, -1, profile(2, t0.Add(time.Minute), tA), nil, t0.Add(time.Minute)},
		{"beyond skew rejected", nil, -1, profile(2, t0.Add(time.Minute+time.Second), tA), poldercast.ErrFuture, time.Time{}},
		{"expired ignored", nil, -1, profile(2, t0.Add(-time.Hour-time.Second), tA), nil, time.Time{}},
		{"removed stays out with same profile", []poldercast.Profile{profile(2, t0, tA)}, 1, profile(2, t0, tA), nil, time.Time{}},
		{"removed returns when newer", []poldercast.Profile{profile(2, t0, tA)}, 1, profile(2, t0.Add(time.Second), tA), nil, t0.Add(time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := newTopology(t, 1, cfg, tA)
			for i, p := range tt.steps {
				if err := top.Add(p, t0); err != nil {
					t.Fatal(err)
				}
				if i+1 == tt.remove {
					top.Remove(p.ID)
				}
			}
			err := top.Add(tt.last, t0)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Add err = %v, want %v", err, tt.wantErr)
			}
			got, ok := top.Profile(tt.last.ID)
			if tt.wantTime.IsZero() {
				if ok {
					t.Fatalf("peer known with time %v, want unknown", got.Time)
				}
				return
			}
			if !ok || !got.Time.Equal(tt.wantTime) {
				t.Fatalf("peer known=%v time %v, want %v", ok, got.Time, tt.wantTime)
			}
		})
	}
}

func TestOwnTopicNeverDropped(t *testing.T) {
	tA, tB := topic(0xa0), topic(0xb0)
	top := newTopology(t, 0x50, poldercast.Config{}, tA, tB)
	checkLevel := func(tp poldercast.Topic, want uint8) {
		t.Helper()
		self := top.Self()
		got, ok := self.Interest(tp)
		if !ok || got != want {
			t.Errorf("own interest in %x = %d (listed %v), want %d", tp[:1], got, ok, want)
		}
	}
	checkLevel(tA, 252) // empty ring: 4 missing neighbours
	for _, b := range []byte{0x10, 0x30, 0x70, 0x90} {
		if err := top.Add(profile(b, t0, tA), t0); err != nil {
			t.Fatal(err)
		}
	}
	top.Tick(t0.Add(time.Second))
	checkLevel(tA, 1)   // full ring: still listed
	checkLevel(tB, 252) // untouched
	if err := top.Add(profile(0x60, t0, tB), t0); err != nil {
		t.Fatal(err)
	}
	top.Tick(t0.Add(2 * time.Second))
	checkLevel(tB, 126) // one peer fills both sides

	top.Unsubscribe(tA, t0.Add(3*time.Second))
	unsubscribed := top.Self().Time
	if self := top.Self(); self.Subscribes(tA) || !self.Subscribes(tB) {
		t.Errorf("after Unsubscribe: subscriptions %v", self.Subscriptions)
	}
	if succ, _ := top.Ring(tA); succ != nil {
		t.Errorf("ring of unsubscribed topic = %v", succ)
	}
	if err := top.Subscribe(tA, t0.Add(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Live re-subscription rebuilds the ring from the peers still known
	// (all in the Cyclon view).
	succ, pred := top.Ring(tA)
	if want := []poldercast.ID{id(0x70), id(0x90)}; !slices.Equal(succ, want) {
		t.Errorf("succ after resubscribe = %v, want %v", succ, want)
	}
	if want := []poldercast.ID{id(0x30), id(0x10)}; !slices.Equal(pred, want) {
		t.Errorf("pred after resubscribe = %v, want %v", pred, want)
	}
	if got := top.Self().Time; got.Before(t0.Add(4*time.Second)) || !got.After(unsubscribed) {
		t.Errorf("own profile time %v, want re-stamped at %v or later, after %v", got, t0.Add(4*time.Second), unsubscribed)
	}
}

func TestForward(t *testing.T) {
	tA, tB := topic(0xa0), topic(0xb0)
	// Ring of tA around us (0x50): succ 0x60, 0x70; pred 0x40, 0x30.
	// Vicinity subscribers of tA that are no ring neighbours: 0x10, 0x90.
	tests := []struct {
		name      string
		fanout    int
		topic     poldercast.Topic
		from      poldercast.ID
		must      []poldercast.ID // ring neighbours that must be in the result
		mustNot   []poldercast.ID
		wantCount int
	}{
		{"local: both ring neighbours + F-2", 3, tA, id(0x50), []poldercast.ID{id(0x60), id(0x40)}, nil, 3},
		{"zero id means local", 3, tA, poldercast.ID{}, []poldercast.ID{id(0x60), id(0x40)}, nil, 3},
		{"from successor: predecessor + F-1", 3, tA, id(0x60), []poldercast.ID{id(0x40)}, []poldercast.ID{id(0x60)}, 3},
		{"from predecessor: successor + F-1", 3, tA, id(0x40), []poldercast.ID{id(0x60)}, []poldercast.ID{id(0x40)}, 3},
		{"from a shortcut: both + F-2, not back", 3, tA, id(0x10), []poldercast.ID{id(0x60), id(0x40)}, []poldercast.ID{id(0x10)}, 3},
		{"fanout 2 is ring only", 2, tA, id(0x50), []poldercast.ID{id(0x60), id(0x40)}, nil, 2},
		{"fanout 2 from successor", 2, tA, id(0x60), []poldercast.ID{id(0x40)}, nil, 2},
		{"fanout 5", 5, tA, id(0x50), []poldercast.ID{id(0x60), id(0x40)}, nil, 5},
		{"not subscribed: nothing (relay-free)", 3, tB, id(0x10), nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := newTopology(t, 0x50, poldercast.Config{Fanout: tt.fanout}, tA)
			for _, b := range []byte{0x60, 0x70, 0x40, 0x30, 0x10, 0x90} {
				if err := top.Add(profile(b, t0, tA), t0); err != nil {
					t.Fatal(err)
				}
			}
			if err := top.Add(profile(0xc0, t0, tB), t0); err != nil {
				t.Fatal(err)
			}
			got := top.Forward(tt.topic, tt.from)
			if len(got) != tt.wantCount {
				t.Fatalf("Forward = %d peers %v, want %d", len(got), got, tt.wantCount)
			}
			for _, x := range tt.must {
				if !slices.Contains(got, x) {
					t.Errorf("Forward misses ring neighbour %x", x[:1])
				}
			}
			for _, x := range append(tt.mustNot, id(0xc0), tt.from) {
				if slices.Contains(got, x) {
					t.Errorf("Forward includes %x", x[:1])
				}
			}
			if len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Errorf("Forward has duplicates: %v", got)
			}
		})
	}
}

func TestForwardTwoMemberTopic(t *testing.T) {
	tA := topic(0xa0)
	top := newTopology(t, 0x50, poldercast.Config{}, tA)
	if err := top.Add(profile(0x60, t0, tA), t0); err != nil {
		t.Fatal(err)
	}
	if got := top.Forward(tA, id(0x50)); !slices.Equal(got, []poldercast.ID{id(0x60)}) {
		t.Errorf("local publish = %v, want the other member once", got)
	}
	if got := top.Forward(tA, id(0x60)); len(got) != 0 {
		t.Errorf("from the only other member = %v, want nothing", got)
	}
}

func TestHandoff(t *testing.T) {
	tA, tB := topic(0xa0), topic(0xb0)
	top := newTopology(t, 0x50, poldercast.Config{HandoffSize: 2}, tB)
	for i, b := range []byte{0x10, 0x20, 0x30} {
		if err := top.Add(profile(b, t0.Add(time.Duration(i)*time.Second), tA), t0); err != nil {
			t.Fatal(err)
		}
	}
	if got := top.Forward(tA, top.ID()); got != nil {
		t.Errorf("Forward on a topic we do not subscribe = %v, want nil", got)
	}
	want := []poldercast.ID{id(0x30), id(0x20)} // freshest first
	if got := top.Handoff(tA); !slices.Equal(got, want) {
		t.Errorf("Handoff = %v, want %v", got, want)
	}
	if got := top.Handoff(topic(0xee)); len(got) != 0 {
		t.Errorf("Handoff of an unknown topic = %v, want none", got)
	}
}

// TestVicinityRecomputed: proximity follows our current priorities, not
// the ones at insertion (upstream bug 7).
func TestVicinityRecomputed(t *testing.T) {
	tA, tB := topic(0xa0), topic(0xb0)
	top := newTopology(t, 0x50, poldercast.Config{VicinitySize: 1}, tA, tB)
	// p shares tA, which has an empty ring: p is the closest peer.
	p := profile(0x10, t0, tA)
	if err := top.Add(p, t0); err != nil {
		t.Fatal(err)
	}
	if got := top.Vicinity(); !slices.Equal(got, []poldercast.ID{p.ID}) {
		t.Fatalf("Vicinity = %v, want [p]", got)
	}
	// Closer subscribers fill ring tA: its priority drops to the minimum.
	for _, b := range []byte{0x30, 0x40, 0x60, 0x70} {
		if err := top.Add(profile(b, t0, tA), t0); err != nil {
			t.Fatal(err)
		}
	}
	// q shares tB, whose ring is empty: q is now closer than p or any tA
	// subscriber. Frozen proximities would keep p (rated on an empty ring).
	q := profile(0x90, t0, tB)
	if err := top.Add(q, t0); err != nil {
		t.Fatal(err)
	}
	if got := top.Vicinity(); !slices.Equal(got, []poldercast.ID{q.ID}) {
		t.Errorf("Vicinity = %v, want [q]", got)
	}
	top.Tick(t0.Add(time.Second))
	self := top.Self()
	if lvl, _ := self.Interest(tA); lvl != 1 {
		t.Errorf("own level of the full ring = %d, want 1", lvl)
	}
}

// TestBoundedViews: whatever is received, the store stays within the view
// caps plus one batch, and Cyclon within its size.
func TestBoundedViews(t *testing.T) {
	tA := topic(0xa0)
	cfg := poldercast.Config{CyclonSize: 5, VicinitySize: 5, RingSize: 2, GossipSize: 4}
	top := newTopology(t, 0x80, cfg, tA)
	now := t0
	for round := range 50 {
		now = now.Add(time.Second)
		var batch []poldercast.Profile
		for i := range 40 {
			b := byte(round*40 + i)
			if b == 0x80 {
				continue
			}
			p := profile(b, now)
			p.ID[1] = byte(round) // distinct ids across rounds
			if i%2 == 0 {
				p.Subscriptions = []poldercast.Subscription{{Topic: tA, Interest: 1}}
			}
			batch = append(batch, p)
		}
		if _, err := top.Receive(batch[0].ID, batch, now); err != nil {
			t.Fatal(err)
		}
		top.Tick(now)
	}
	if n := top.Len(); n > cfg.CyclonSize+cfg.VicinitySize+cfg.RingSize {
		t.Errorf("Len = %d, want at most %d", n, cfg.CyclonSize+cfg.VicinitySize+cfg.RingSize)
	}
	if got := len(top.GossipFor(id(0x01), now)); got > 2*cfg.GossipSize {
		t.Errorf("GossipFor sent %d profiles, want at most %d", got, 2*cfg.GossipSize)
	}
}

// TestExchange: a request is answered once, a reply is not answered, and
// the Cyclon shuffle removes the oldest entry when it starts.
func TestExchange(t *testing.T) {
	tA := topic(0xa0)
	a := newTopology(t, 0x10, poldercast.Config{}, tA)
	b := newTopology(t, 0x90, poldercast.Config{}, tA)
	if err := a.Add(b.Self(), t0); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Second)
	peers := a.Tick(now)
	if !slices.Equal(peers, []poldercast.ID{b.ID()}) {
		t.Fatalf("Tick = %v, want [b]", peers)
	}
	answer, err := b.Receive(a.ID(), a.GossipFor(b.ID(), now), now)
	if err != nil || !answer {
		t.Fatalf("request: answer=%v err=%v, want true, nil", answer, err)
	}
	again, _ := b.Receive(a.ID(), a.GossipFor(b.ID(), now), now)
	if again {
		t.Error("a second push within ExchangeTimeout was answered")
	}
	answer, err = a.Receive(b.ID(), b.GossipFor(a.ID(), now), now)
	if err != nil || answer {
		t.Fatalf("reply: answer=%v err=%v, want false, nil", answer, err)
	}
	// a and b are on each other's ring for tA.
	if succ, _ := a.Ring(tA); !slices.Contains(succ, b.ID()) {
		t.Errorf("a's ring %v lacks b", succ)
	}
	if succ, _ := b.Ring(tA); !slices.Contains(succ, a.ID()) {
		t.Errorf("b's ring %v lacks a", succ)
	}
	later := now.Add(time.Minute)
	if answer, _ := b.Receive(a.ID(), a.GossipFor(b.ID(), later), later); !answer {
		t.Error("a request after ExchangeTimeout was not answered")
	}
}

func TestSubscriptionLimit(t *testing.T) {
	top := newTopology(t, 1, poldercast.Config{})
	for i := range poldercast.MaxSubscriptions {
		var tp poldercast.Topic
		tp[0], tp[1] = byte(i>>8), byte(i)
		if err := top.Subscribe(tp, t0); err != nil {
			t.Fatalf("Subscribe %d: %v", i, err)
		}
	}
	if err := top.Subscribe(topic(0xff), t0); !errors.Is(err, poldercast.ErrTooManySubscriptions) {
		t.Errorf("Subscribe beyond the limit: %v, want ErrTooManySubscriptions", err)
	}
}

// TestSettled: a fresh empty ring keeps the node unsettled for JoinWindow;
// a closest ring neighbour never contacted keeps it unsettled until Tick
// introduces us to it.
func TestSettled(t *testing.T) {
	tA := topic(0xa0)
	cfg := poldercast.Config{JoinWindow: time.Minute}
	tests := []struct {
		name  string
		peers []byte
		tick  bool
		at    time.Duration
		want  bool
	}{
		{"empty ring within the window", nil, false, 30 * time.Second, false},
		{"empty ring after the window", nil, false, 2 * time.Minute, true},
		{"neighbour never contacted", []byte{0x60}, false, 2 * time.Minute, false},
		{"neighbour introduced by Tick", []byte{0x60, 0x40}, true, 2 * time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := newTopology(t, 0x50, cfg, tA)
			for _, b := range tt.peers {
				if err := top.Add(profile(b, t0, tA), t0); err != nil {
					t.Fatal(err)
				}
			}
			now := t0.Add(tt.at)
			if tt.tick {
				peers := top.Tick(now)
				for _, b := range tt.peers {
					if !slices.Contains(peers, id(b)) {
						t.Errorf("Tick = %v, want closest neighbour %x introduced", peers, b)
					}
				}
			}
			if got := top.Settled(now); got != tt.want {
				t.Errorf("Settled = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSettledLeavesInboxesOut: an inbox ring (SubscribeInbox) stays empty
// by design and does not keep the node unsettled, even within JoinWindow;
// the same topic subscribed the ordinary way does (PROTOCOL.md §16.3).
func TestSettledLeavesInboxesOut(t *testing.T) {
	tA, inbox := topic(0xa0), topic(0xb0)
	cfg := poldercast.Config{JoinWindow: time.Minute}
	for _, tt := range []struct {
		name  string
		inbox bool
		want  bool
	}{
		{"inbox", true, true},
		{"ordinary topic", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			top := newTopology(t, 0x50, cfg, tA)
			if err := top.Add(profile(0x60, t0, tA), t0); err != nil {
				t.Fatal(err)
			}
			top.Tick(t0.Add(2 * time.Minute)) // introduced to the tA neighbour
			now := t0.Add(2 * time.Minute)
			if !top.Settled(now) {
				t.Fatal("not settled before the inbox")
			}
			subscribe := top.Subscribe
			if tt.inbox {
				subscribe = top.SubscribeInbox
			}
			if err := subscribe(inbox, now); err != nil {
				t.Fatal(err)
			}
			if !top.Subscribed(inbox) {
				t.Fatal("not subscribed")
			}
			if got := top.Settled(now.Add(time.Second)); got != tt.want {
				t.Errorf("Settled within JoinWindow of the new ring = %v, want %v", got, tt.want)
			}
		})
	}
}

// A subscription made within the second of the profile a peer already
// holds must reach that peer as newer: the gossip time has one-second
// resolution and an equal time is ignored.
func TestSubscribeWithinTheSecondIsNewer(t *testing.T) {
	tA, tB := topic(0xa0), topic(0xb0)
	b := newTopology(t, 0x60, poldercast.Config{}, tA)
	c := newTopology(t, 0x70, poldercast.Config{}, tB, tA) // two changes at t0
	if !c.Self().Time.After(t0) || c.Self().Time.Sub(t0) > 2*time.Second {
		t.Fatalf("two subscriptions in one second stamped %v, want just after %v", c.Self().Time, t0)
	}
	before := c.Self()
	if err := b.Add(before, t0); err != nil {
		t.Fatal(err)
	}
	const topicC = 0xc0
	if err := b.Subscribe(topic(topicC), t0); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(topic(topicC), t0.Add(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if !c.Self().Time.After(before.Time) {
		t.Fatalf("restamped at %v, not after the %v a peer holds", c.Self().Time, before.Time)
	}
	if err := b.Add(c.Self(), t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if succ, _ := b.Ring(topic(topicC)); !slices.Contains(succ, id(0x70)) {
		t.Errorf("the peer's ring of the new topic is %v, want the subscriber in it", succ)
	}
	// The lead over the clock is bounded: a burst of changes within one
	// second stamps at most a minute ahead.
	for i := range 200 {
		if err := c.Subscribe(topic(byte(i)), t0.Add(500*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if lead := c.Self().Time.Sub(t0); lead > time.Minute {
		t.Errorf("stamp leads the clock by %v", lead)
	}
}
