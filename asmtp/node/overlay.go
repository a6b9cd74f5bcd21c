package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/poldercast"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// overlay is the node's PolderCast topology behind a mutex, with the signed
// gossips its profiles came from: the topology deals in profiles, but peers
// need the signed bytes to verify what we pass on.
type overlay struct {
	mu     sync.Mutex
	key    ed25519.PrivateKey
	flags  uint16 // info flags of our gossip (gossip.FlagNamingV2)
	topo   *poldercast.Topology
	own    gossip.Gossip                    // our profile, signed
	signed map[keys.PublicKey]gossip.Gossip // for the profiles in topo
}

func newOverlay(cfg Config, addr netip.AddrPort, now time.Time) (*overlay, error) {
	var seed [16]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("overlay seed: %w", err)
	}
	rng := mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	pc := poldercast.DefaultConfig()
	pc.Fanout = cfg.Fanout
	pc.MaxClockSkew = cfg.MaxClockSkew
	// An exchange is answered within a round trip; it must close well
	// before the next round so that the peer's next request is answered.
	pc.ExchangeTimeout = min(pc.ExchangeTimeout, cfg.GossipInterval/2)
	topo, err := poldercast.New(poldercast.ID(keys.Public(cfg.Key)), addr, pc, rng, now)
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	o := &overlay{key: cfg.Key, topo: topo, signed: make(map[keys.PublicKey]gossip.Gossip)}
	if !cfg.NamingV1 {
		o.flags = gossip.FlagNamingV2
	}
	if err := o.resign(); err != nil {
		return nil, err
	}
	return o, nil
}

// resign signs our profile again if the topology changed it. Callers hold mu.
func (o *overlay) resign() error {
	self := o.topo.Self()
	t := gossip.FromTime(self.Time)
	if o.own.Time == t && sameSubscriptions(o.own.Subscriptions, self.Subscriptions) && o.own.Addr == self.Addr {
		return nil
	}
	subs := make([]gossip.Subscription, len(self.Subscriptions))
	for i, s := range self.Subscriptions {
		subs[i] = gossip.Subscription{Topic: topic.Topic(s.Topic), Interest: s.Interest}
	}
	g, err := gossip.NewFlagged(o.key, o.flags, t, self.Addr, subs)
	if err != nil {
		return fmt.Errorf("sign own gossip: %w", err)
	}
	o.own = g
	return nil
}

func sameSubscriptions(a []gossip.Subscription, b []poldercast.Subscription) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Topic != topic.Topic(b[i].Topic) || a[i].Interest != b[i].Interest {
			return false
		}
	}
	return true
}

func profileOf(g gossip.Gossip) poldercast.Profile {
	p := poldercast.Profile{ID: poldercast.ID(g.ID), Addr: g.Addr, Time: gossip.ToTime(g.Time)}
	if len(g.Subscriptions) > 0 {
		p.Subscriptions = make([]poldercast.Subscription, len(g.Subscriptions))
		for i, s := range g.Subscriptions {
			p.Subscriptions[i] = poldercast.Subscription{Topic: poldercast.Topic(s.Topic), Interest: s.Interest}
		}
	}
	return p
}

// recordSignature records g's signature if the topology now holds g's
// profile, and bounds the record to about the topology's size. Callers
// hold mu.
func (o *overlay) recordSignature(g gossip.Gossip) {
	if p, ok := o.topo.Profile(poldercast.ID(g.ID)); ok && gossip.FromTime(p.Time) == g.Time {
		o.signed[g.ID] = g
	}
	if len(o.signed) > 2*o.topo.Len()+poldercast.MaxBatch {
		o.pruneSigned()
	}
}

func (o *overlay) pruneSigned() {
	for id := range o.signed {
		if _, ok := o.topo.Profile(poldercast.ID(id)); !ok {
			delete(o.signed, id)
		}
	}
}

// add merges a gossip learnt outside an exchange (configuration, store).
func (o *overlay) add(g gossip.Gossip, now time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.topo.Add(profileOf(g), now); err != nil {
		return err
	}
	o.recordSignature(g)
	return nil
}

// receive merges a gossip that peer from pushed to us and reports whether
// we should answer with our own round.
func (o *overlay) receive(from keys.PublicKey, g gossip.Gossip, now time.Time) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	answer, err := o.topo.Receive(poldercast.ID(from), []poldercast.Profile{profileOf(g)}, now)
	o.recordSignature(g)
	return answer, err
}

// tick runs a gossip cycle and returns the peers to gossip with.
func (o *overlay) tick(now time.Time) ([]keys.PublicKey, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ids := o.topo.Tick(now)
	o.pruneSigned()
	out := make([]keys.PublicKey, len(ids))
	for i, id := range ids {
		out[i] = keys.PublicKey(id)
	}
	return out, o.resign()
}

// gossipFor returns the Gossip messages of one exchange with peer, ours first.
func (o *overlay) gossipFor(peer keys.PublicKey, now time.Time) []wire.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	ps := o.topo.GossipFor(poldercast.ID(peer), now)
	out := make([]wire.Message, 0, len(ps))
	for _, p := range ps {
		id := keys.PublicKey(p.ID)
		if id == keys.PublicKey(o.topo.ID()) {
			out = append(out, wire.Gossip{Gossip: o.own})
			continue
		}
		// The newest signed gossip we hold: the topology may hand out a
		// profile snapshot taken when the exchange opened, since replaced.
		if g, ok := o.signed[id]; ok && g.Time >= gossip.FromTime(p.Time) {
			out = append(out, wire.Gossip{Gossip: g})
		}
	}
	return out
}

func (o *overlay) subscribe(t topic.Topic, now time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.topo.Subscribe(poldercast.Topic(t), now); err != nil {
		return err
	}
	return o.resign()
}

// subscribeInbox subscribes to an inbox topic, left out of the settled
// test (poldercast.Topology.SubscribeInbox).
func (o *overlay) subscribeInbox(t topic.Topic, now time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.topo.SubscribeInbox(poldercast.Topic(t), now); err != nil {
		return err
	}
	return o.resign()
}

func (o *overlay) unsubscribe(t topic.Topic, now time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.topo.Unsubscribe(poldercast.Topic(t), now)
	return o.resign()
}

// settled reports whether we have exchanged with every closest ring
// neighbour we know (see poldercast.Topology.Settled).
func (o *overlay) settled(now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.topo.Settled(now)
}

func (o *overlay) subscribed(t topic.Topic) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.topo.Subscribed(poldercast.Topic(t))
}

// forward applies the dissemination rule; from is the zero key for a local
// publication.
func (o *overlay) forward(t topic.Topic, from keys.PublicKey) []keys.PublicKey {
	o.mu.Lock()
	defer o.mu.Unlock()
	return toKeys(o.topo.Forward(poldercast.Topic(t), poldercast.ID(from)))
}

// handoff returns known subscribers of a topic we do not subscribe to.
func (o *overlay) handoff(t topic.Topic) []keys.PublicKey {
	o.mu.Lock()
	defer o.mu.Unlock()
	return toKeys(o.topo.Handoff(poldercast.Topic(t)))
}

// subscribers returns up to n known subscribers of t, ring neighbours
// first (closest on each side, alternating), then others.
func (o *overlay) subscribers(t topic.Topic, n int) []keys.PublicKey {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []keys.PublicKey
	add := func(id poldercast.ID) {
		k := keys.PublicKey(id)
		for _, x := range out {
			if x == k {
				return
			}
		}
		if len(out) < n {
			out = append(out, k)
		}
	}
	succ, pred := o.topo.Ring(poldercast.Topic(t))
	for i := 0; i < max(len(succ), len(pred)); i++ {
		if i < len(succ) {
			add(succ[i])
		}
		if i < len(pred) {
			add(pred[i])
		}
	}
	for _, id := range o.topo.Handoff(poldercast.Topic(t)) {
		add(id)
	}
	return out
}

// ring returns our closest ring neighbours for t (for tests and logs).
func (o *overlay) ring(t topic.Topic) (succ, pred []keys.PublicKey) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s, p := o.topo.Ring(poldercast.Topic(t))
	return toKeys(s), toKeys(p)
}

func (o *overlay) remove(id keys.PublicKey) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.topo.Remove(poldercast.ID(id))
	delete(o.signed, id)
}

// subscribes reports whether our views hold id as a subscriber of t.
func (o *overlay) subscribes(id keys.PublicKey, t topic.Topic) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.topo.Profile(poldercast.ID(id))
	return ok && p.Subscribes(poldercast.Topic(t))
}

// addr returns the advertised address of a peer in our views.
func (o *overlay) addr(id keys.PublicKey) (netip.AddrPort, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.topo.Profile(poldercast.ID(id))
	return p.Addr, ok
}

func (o *overlay) ownGossip() gossip.Gossip {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.own
}

// snapshot returns the signed gossips of the profiles in our views.
func (o *overlay) snapshot() []gossip.Gossip {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]gossip.Gossip, 0, len(o.signed))
	for _, p := range o.topo.Peers() {
		if g, ok := o.signed[keys.PublicKey(p.ID)]; ok {
			out = append(out, g)
		}
	}
	return out
}

func toKeys(ids []poldercast.ID) []keys.PublicKey {
	out := make([]keys.PublicKey, len(ids))
	for i, id := range ids {
		out[i] = keys.PublicKey(id)
	}
	return out
}

// MaxFastRounds bounds the consecutive gossip rounds run at a tenth of the
// period while the topology is not settled (a closest ring neighbour not
// yet contacted: just after start-up or a new registration).
const MaxFastRounds = 10

// gossipLoop runs the periodic gossip exchange: each round gossips with
// the peers the topology picks, or with bootstrap peers when it knows
// nobody. Rounds are jittered by ±25%: nodes started together would
// otherwise tick in phase and keep opening exchanges with each other at
// the same moment, each taking the other's request for its answer.
func (n *Node) gossipLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	fast := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.gossipRound(ctx, time.Now())
		period := n.cfg.GossipInterval
		switch {
		case n.overlay.settled(time.Now()):
			fast = 0
		case fast < MaxFastRounds:
			fast++
			period /= 10
		}
		jitter := time.Duration(mrand.Int64N(int64(period)/2+1)) - period/4
		t.Reset(period + jitter)
	}
}

func (n *Node) gossipRound(ctx context.Context, now time.Time) {
	peers, err := n.overlay.tick(now)
	if err != nil {
		n.log.Error("gossip round", "err", err)
	}
	want := 0
	switch {
	case len(peers) == 0:
		want = BootstrapFanout
	case n.rounds.Add(1)%BootstrapEvery == 0:
		want = len(peers) + 1
	}
	for _, i := range mrand.Perm(len(n.bootstrap)) {
		if len(peers) >= want {
			break
		}
		if id := n.bootstrap[i].ID; id != n.id && !n.strikes.blocked(id, now) && !slices.Contains(peers, id) {
			peers = append(peers, id)
		}
	}
	for _, id := range peers {
		n.sendGossip(ctx, id, now)
	}
	n.retryPending(ctx, now)
}

// sendGossip sends peer one exchange's gossips. Gossip is best effort: a
// full queue drops it.
func (n *Node) sendGossip(ctx context.Context, peer keys.PublicKey, now time.Time) {
	l, err := n.linkTo(peer)
	if err != nil {
		n.log.Debug("no link for gossip", "peer", peer, "err", err)
		return
	}
	for _, m := range n.overlay.gossipFor(peer, now) {
		if !l.enqueue(ctx, m, 0) {
			return
		}
	}
}

// onGossip handles a Gossip message from a node link.
func (n *Node) onGossip(ctx context.Context, l *link, g gossip.Gossip) {
	now := time.Now()
	relinked := false
	n.notePeerNaming(g.ID, g.NamingV2(), g.Time)
	if g.ID == l.remote {
		l.setAdvertised(g)
		relinked, l.greeted = !l.greeted, true
		n.pushHeld(ctx, l, g)
	}
	var fresh []topic.Topic // registered topics g newly shows a subscriber of
	for _, s := range g.Subscriptions {
		if g.ID != n.id && n.registered(s.Topic) && !n.overlay.subscribes(g.ID, s.Topic) {
			fresh = append(fresh, s.Topic)
		}
	}
	answer, err := n.overlay.receive(l.remote, g, now)
	if err != nil {
		// A stale or future-dated profile is not the sender's fault: it
		// may pass on gossips it was given.
		n.log.Debug("gossip not merged", "peer", l.remote, "about", g.ID, "err", err)
	}
	// A subscriber we did not know may hold messages that were published
	// while neither side knew the other (its forwarding found nobody):
	// fetch them from it (newSubscriberSince). Duplicates die in the
	// relay's dedupe.
	for _, t := range fresh {
		if n.overlay.subscribes(g.ID, t) {
			n.scheduleCatchUp(catchUp{topic: t, since: n.newSubscriberSince(now), peer: g.ID})
		}
	}
	if relinked {
		n.catchUpRelinked(g)
	}
	if answer {
		n.sendGossip(ctx, l.remote, now)
	}
}

// addressOf returns where to dial peer: its advertised address, else the
// address a user gave (PublishTo, CatchUp), else the bootstrap entry.
func (n *Node) addressOf(peer keys.PublicKey) (string, error) {
	if a, ok := n.overlay.addr(peer); ok {
		return a.String(), nil
	}
	if a, ok := n.dialHint(peer); ok {
		return a, nil
	}
	for _, p := range n.bootstrap {
		if p.ID == peer {
			return p.Address, nil
		}
	}
	return "", fmt.Errorf("no address known for %s", peer)
}

// subscribe subscribes the overlay to t; our gossip is re-signed at once
// and reaches peers with the next exchanges.
func (n *Node) subscribe(t topic.Topic) {
	if err := n.overlay.subscribe(t, time.Now()); err != nil {
		n.log.Error("subscribe", "topic", t, "err", err)
	}
}

// unsubscribeUnused unsubscribes from t unless a user registration or a
// stored passport still needs it.
func (n *Node) unsubscribeUnused(t topic.Topic) {
	if n.registered(t) {
		return
	}
	if id, ok := t.Passport(); ok && n.passports.known(id) {
		return
	}
	if err := n.overlay.unsubscribe(t, time.Now()); err != nil {
		n.log.Error("unsubscribe", "topic", t, "err", err)
	}
}
