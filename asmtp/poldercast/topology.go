package poldercast

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// peer is a known profile with our local bookkeeping about it.
type peer struct {
	Profile
	// lastContact is when we last exchanged gossip with the peer directly,
	// in either direction; zero if never.
	lastContact time.Time
	// shared are our rings whose topic the peer subscribes to: the topics
	// that count for its proximity to us.
	shared     []*ring
	inCyclon   bool
	inVicinity bool
	mark       uint64 // generation stamp for set operations without maps
	idx        int    // position in Topology.peers
}

// exchange is one gossip exchange with a peer, open until the peer's reply
// is merged (we started it) or our answer is built (the peer started it),
// then kept until ExchangeTimeout so that the same peer is not answered
// twice.
type exchange struct {
	peer      ID
	opened    time.Time
	initiator bool
	done      bool
	// skipCyclon: the peer was the oldest Cyclon entry, removed from the
	// Cyclon view when the shuffle started, so its reply does not put it back.
	skipCyclon bool
	// target is the peer's profile when the exchange opened, kept in case
	// the profile leaves our views before GossipFor is called.
	target    Profile
	hasTarget bool
	// sent are the Cyclon entries we send; entries the peer sends replace
	// them in our Cyclon view once it is full. next is the first not yet
	// replaced.
	sent []Profile
	next int
}

// Topology is one node's PolderCast state: its own profile and
// subscriptions, the Rings, Vicinity and Cyclon views, and the open gossip
// exchanges. It does no I/O, reads no clock and uses only the random source
// it was given. It is not safe for concurrent use.
type Topology struct {
	cfg  Config
	rng  *rand.Rand
	self Profile
	salt uint64 // per-node tie-break between equally ranked peers

	rings   []*ring // our subscriptions, sorted by topic
	byTopic map[Topic]*ring

	byID  map[ID]*peer
	peers []*peer // the same set as byID, in a deterministic order

	cyclon   []*peer
	vicinity []*peer

	exchanges    []*exchange
	removed      map[ID]time.Time // removed peer → newest profile time seen
	removedOrder []ID             // FIFO of removed, for eviction

	// stale: profiles or priorities changed since the Vicinity was ranked
	// and the store pruned (see refresh).
	stale   bool
	markGen uint64
	scored  []scoredPeer // scratch
	choose  chooseScratch
}

type scoredPeer struct {
	p      *peer
	sum    int // sum of the target's interest levels over shared topics
	shared int // number of shared topics
}

// New returns the topology of node id reachable at addr, with no
// subscriptions and no peers. now stamps the first own profile.
func New(id ID, addr netip.AddrPort, cfg Config, rng *rand.Rand, now time.Time) (*Topology, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if rng == nil {
		return nil, errors.New("poldercast: nil random source")
	}
	t := &Topology{
		cfg:     cfg,
		rng:     rng,
		self:    Profile{ID: id, Addr: addr, Time: now.Truncate(time.Second)},
		salt:    rng.Uint64(),
		byTopic: make(map[Topic]*ring),
		byID:    make(map[ID]*peer),
		removed: make(map[ID]time.Time),
	}
	return t, nil
}

// ID returns our node id.
func (t *Topology) ID() ID { return t.self.ID }

// Config returns the configuration in force, defaults filled in.
func (t *Topology) Config() Config { return t.cfg }

// Self returns our own profile as last stamped: every subscribed topic with
// its ring priority as interest level. The node signs it into its Gossip; it
// changes on Tick, Subscribe and Unsubscribe, and only then needs re-signing
// (compare Time and Subscriptions).
func (t *Topology) Self() Profile { return t.self }

// SetAddr changes the address in our profile, for example after the node
// learnt its public address.
func (t *Topology) SetAddr(addr netip.AddrPort, now time.Time) {
	t.self.Addr = addr
	t.restamp(now)
}

// Subscribed reports whether we subscribe to tp.
func (t *Topology) Subscribed(tp Topic) bool { return t.byTopic[tp] != nil }

// Subscribe adds tp to our subscriptions, live: the ring is filled from the
// peers we already know and our profile is re-stamped.
func (t *Topology) Subscribe(tp Topic, now time.Time) error {
	return t.subscribe(tp, now, false)
}

// SubscribeInbox subscribes to tp as Subscribe does, for a topic whose
// ring stays empty by design: a naming-v2 inbox, which only its owner's
// node subscribes to (PROTOCOL.md §16.3). Settled leaves it out, so that
// its daily renaming does not make the node tick fast for JoinWindow.
// Subscribing to a topic already subscribed keeps how it was subscribed.
func (t *Topology) SubscribeInbox(tp Topic, now time.Time) error {
	return t.subscribe(tp, now, true)
}

func (t *Topology) subscribe(tp Topic, now time.Time, inbox bool) error {
	if t.byTopic[tp] != nil {
		return nil
	}
	if len(t.rings) >= MaxSubscriptions {
		return fmt.Errorf("poldercast: subscribe %s: %w", tp, ErrTooManySubscriptions)
	}
	r := newRing(tp, t.cfg.RingSize/2)
	r.since, r.inbox = now, inbox
	for _, pe := range t.peers {
		if pe.Subscribes(tp) {
			pe.shared = append(pe.shared, r)
		}
	}
	r.rebuild(t.self.ID, t.peers, t.cfg.RingSize/2)
	i, _ := slices.BinarySearchFunc(t.rings, tp, func(r *ring, tp Topic) int { return compareTopics(r.topic, tp) })
	t.rings = slices.Insert(t.rings, i, r)
	t.byTopic[tp] = r
	t.stale = true
	t.restamp(now)
	return nil
}

// Unsubscribe removes tp from our subscriptions, live.
func (t *Topology) Unsubscribe(tp Topic, now time.Time) {
	r := t.byTopic[tp]
	if r == nil {
		return
	}
	delete(t.byTopic, tp)
	t.rings = slices.DeleteFunc(t.rings, func(x *ring) bool { return x == r })
	for _, pe := range t.peers {
		pe.shared = slices.DeleteFunc(pe.shared, func(x *ring) bool { return x == r })
	}
	t.stale = true
	t.restamp(now)
}

// restamp rebuilds our own profile. Its time never goes backwards and has
// the one-second resolution of the Gossip time field. A change within the
// second of the current stamp takes the next second: a peer already
// holding the profile of that second would take one with the same time as
// nothing new and keep the old subscriptions until a later stamp (a user
// registering a topic right after the node starts was invisible to its
// peers for a gossip round). The stamp leads the clock by at most
// maxStampLead; past that, changes share a stamp until the clock catches
// up, as they all did before.
func (t *Topology) restamp(now time.Time) {
	stamp := now.Truncate(time.Second)
	if stamp.Before(t.self.Time) {
		stamp = t.self.Time
	}
	subs := t.self.Subscriptions
	changed := len(subs) != len(t.rings)
	for i := 0; !changed && i < len(subs); i++ {
		r := t.rings[i]
		changed = subs[i].Topic != r.topic || subs[i].Interest != interestLevel(r.missing(t.cfg.RingSize), t.cfg.RingSize)
	}
	if changed && !t.self.Time.IsZero() && !stamp.After(t.self.Time) && stamp.Sub(now) < t.maxStampLead() {
		stamp = t.self.Time.Add(time.Second)
	}
	if changed {
		// A new slice each time: earlier profiles handed out stay intact.
		subs = make([]Subscription, len(t.rings))
		for i, r := range t.rings {
			subs[i] = Subscription{Topic: r.topic, Interest: interestLevel(r.missing(t.cfg.RingSize), t.cfg.RingSize)}
		}
	}
	t.self = Profile{ID: t.self.ID, Addr: t.self.Addr, Time: stamp, Subscriptions: subs}
}

// maxStampLead bounds how far ahead of the clock restamp may date our
// profile: well inside the skew peers accept.
func (t *Topology) maxStampLead() time.Duration { return min(time.Minute, t.cfg.MaxClockSkew/4) }

// Add merges one profile learnt outside a gossip exchange: a known gossip
// from the configuration, or one persisted before a restart. (Gossips
// pushed by a peer go through Receive.) A newer profile replaces an older
// one of the same id; older or equal ones are ignored without error. It
// returns an error for a profile dated more than MaxClockSkew ahead of now
// or malformed.
func (t *Topology) Add(p Profile, now time.Time) error {
	pe, err := t.learn(p, now)
	if err != nil {
		return fmt.Errorf("poldercast: add: %w", err)
	}
	if pe != nil && !pe.inCyclon && len(t.cyclon) < t.cfg.CyclonSize {
		t.cyclonAdd(pe)
	}
	return nil
}

// Receive merges the profiles that peer from sent us in one exchange (the
// Gossip messages it pushed back to back). It reports whether this was a
// request that the node should answer by sending GossipFor(from): false
// for the reply to an exchange we started, and for a peer answered less
// than ExchangeTimeout ago. Receiving the profiles one call at a time also
// works: only the first call answers. The error joins the rejected profiles'
// errors (future, malformed); stale profiles are ignored silently. At most
// MaxBatch profiles are merged.
func (t *Topology) Receive(from ID, ps []Profile, now time.Time) (answer bool, err error) {
	if len(ps) > MaxBatch {
		ps = ps[:MaxBatch]
	}
	ex := t.exchangeWith(from, now)
	if ex == nil {
		ex = t.openExchange(from, now, false)
		answer = true
	}
	var errs []error
	for _, p := range ps {
		pe, err := t.learn(p, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if pe != nil {
			t.cyclonMerge(pe, ex)
		}
	}
	if ex.initiator {
		ex.done = true
	}
	if pe := t.byID[from]; pe != nil {
		pe.lastContact = now
		ex.target, ex.hasTarget = pe.Profile, true
	}
	if len(errs) > 0 {
		return answer, fmt.Errorf("poldercast: gossip from %s: %w", from.short(), errors.Join(errs...))
	}
	return answer, nil
}

// Remove forgets a peer: the node calls it when a connection or handshake
// to the peer fails. The peer's current profile, still circulating in other
// nodes' views, is not taken back; a newer one (the node is alive and
// re-signed) is.
func (t *Topology) Remove(id ID) {
	pe := t.byID[id]
	if pe == nil {
		return
	}
	t.remember(id, pe.Time)
	t.removePeer(pe)
}

func (t *Topology) remember(id ID, at time.Time) {
	if _, ok := t.removed[id]; !ok {
		if len(t.removedOrder) >= MaxRemoved {
			delete(t.removed, t.removedOrder[0])
			t.removedOrder = slices.Delete(t.removedOrder, 0, 1)
		}
		t.removedOrder = append(t.removedOrder, id)
	}
	t.removed[id] = at
}

// removePeer drops pe from every view and from the store; rings it was on
// are rebuilt from the remaining subscribers.
func (t *Topology) removePeer(pe *peer) {
	if pe.inCyclon {
		t.cyclonRemove(pe)
	}
	if pe.inVicinity {
		t.vicinity = slices.DeleteFunc(t.vicinity, func(x *peer) bool { return x == pe })
		pe.inVicinity = false
	}
	t.deletePeer(pe)
	t.stale = true
	for _, r := range pe.shared {
		if r.drop(pe) {
			r.rebuild(t.self.ID, t.peers, t.cfg.RingSize/2)
		}
	}
}

// Tick runs one gossip cycle at now and returns the peers to start an
// exchange with (GossipFor each, send, and Receive the replies): the oldest
// Cyclon entry (removed from the Cyclon view as the shuffle starts), the
// stalest Vicinity neighbour and the stalest ring neighbour, without
// duplicates. It also re-stamps our profile, expires profiles older than
// ProfileTTL and exchanges older than ExchangeTimeout. An empty result means
// we know nobody: the node should Add its known gossips again.
func (t *Topology) Tick(now time.Time) []ID {
	t.expireExchanges(now)
	t.expireProfiles(now)
	t.refresh()
	t.restamp(now)
	var out []ID
	start := func(pe *peer, skipCyclon bool) {
		if pe == nil || slices.Contains(out, pe.ID) {
			return
		}
		out = append(out, pe.ID)
		ex := t.openExchange(pe.ID, now, true)
		ex.skipCyclon = skipCyclon
		pe.lastContact = now
	}
	if pe := t.oldestCyclon(); pe != nil {
		t.cyclonRemove(pe)
		start(pe, true)
	}
	start(stalest(t.vicinity), false)
	start(t.stalestRingNeighbour(), false)
	// Introductions: closest ring neighbours we never exchanged with do
	// not know us yet, and until they do they do not forward to us.
	for _, r := range t.rings {
		if len(out) >= 3+t.cfg.Introductions {
			break
		}
		succ, pred := r.first()
		for _, pe := range []*peer{succ, pred} {
			if pe != nil && pe.lastContact.IsZero() && len(out) < 3+t.cfg.Introductions {
				start(pe, false)
			}
		}
	}
	return out
}

// Settled reports whether we have exchanged gossip with every closest ring
// neighbour we know, and have found at least one neighbour on every ring
// subscribed less than JoinWindow ago. Until then the node should Tick
// faster than its normal period (for example every few seconds): a
// joining node then finds its place on every ring within a few fast
// cycles instead of being missing from the rings, and missing events, for
// several gossip periods; and two first subscribers of a new topic meet
// sooner. JoinWindow bounds the fast ticking for a topic nobody else
// subscribes to. Inbox topics (SubscribeInbox) do not count.
func (t *Topology) Settled(now time.Time) bool {
	for _, r := range t.rings {
		if r.inbox {
			continue
		}
		succ, pred := r.first()
		if succ == nil && now.Sub(r.since) < t.cfg.JoinWindow {
			return false
		}
		if (succ != nil && succ.lastContact.IsZero()) || (pred != nil && pred.lastContact.IsZero()) {
			return false
		}
	}
	return true
}

// GossipFor returns the profiles to send to peer in one exchange, our own
// first: ours, GossipSize−1 random Cyclon entries (the shuffle), then up to
// GossipSize profiles chosen for the peer from all our views: its closest
// known ring neighbours for the topics it subscribes to, most needed topics
// first, interleaved with the peers of highest proximity from its point of
// view. Call it for each peer returned by Tick and when Receive says to
// answer. At most 2·GossipSize profiles.
func (t *Topology) GossipFor(peer ID, now time.Time) []Profile {
	out := make([]Profile, 0, 2*t.cfg.GossipSize)
	out = append(out, t.self)
	gen := t.nextMark()
	var sample []Profile
	ex := t.exchangeWith(peer, now)
	if ex != nil {
		sample = ex.sent
		if !ex.initiator {
			ex.done = true
		}
	} else {
		sample = t.cyclonSample(t.cfg.GossipSize-1, peer)
	}
	for _, p := range sample {
		if p.ID == peer {
			continue
		}
		if pe := t.byID[p.ID]; pe != nil {
			pe.mark = gen
		}
		out = append(out, p)
	}
	target, ok := Profile{}, false
	if pe := t.byID[peer]; pe != nil {
		target, ok = pe.Profile, true
		pe.mark = gen
	} else if ex != nil && ex.hasTarget {
		target, ok = ex.target, true
	}
	if ok {
		for _, pe := range t.chooseFor(target, t.cfg.GossipSize, gen) {
			out = append(out, pe.Profile)
		}
	}
	return out
}

// Peers returns the profiles in our views, in a deterministic order: what a
// node persists and may keep connections to.
func (t *Topology) Peers() []Profile {
	t.refresh()
	out := make([]Profile, len(t.peers))
	for i, pe := range t.peers {
		out[i] = pe.Profile
	}
	return out
}

// Vicinity returns the Vicinity view, closest first.
func (t *Topology) Vicinity() []ID {
	t.refresh()
	out := make([]ID, len(t.vicinity))
	for i, pe := range t.vicinity {
		out[i] = pe.ID
	}
	return out
}

// Cyclon returns the Cyclon view.
func (t *Topology) Cyclon() []ID {
	out := make([]ID, len(t.cyclon))
	for i, pe := range t.cyclon {
		out[i] = pe.ID
	}
	return out
}

// Profile returns the profile we hold for id.
func (t *Topology) Profile(id ID) (Profile, bool) {
	if pe := t.byID[id]; pe != nil {
		return pe.Profile, true
	}
	return Profile{}, false
}

// Len returns the number of profiles in our views.
func (t *Topology) Len() int {
	t.refresh()
	return len(t.peers)
}

// Ring returns our ring neighbours for tp, closest first on each side.
func (t *Topology) Ring(tp Topic) (succ, pred []ID) {
	r := t.byTopic[tp]
	if r == nil {
		return nil, nil
	}
	for _, s := range r.succ {
		succ = append(succ, s.p.ID)
	}
	for _, s := range r.pred {
		pred = append(pred, s.p.ID)
	}
	return succ, pred
}

// learn stores p if it is new or newer than what we hold, and offers it to
// our rings. It returns the stored peer, or nil when p is ignored: our own,
// expired, from a removed peer and not newer, or no room.
func (t *Topology) learn(p Profile, now time.Time) (*peer, error) {
	if p.ID == t.self.ID {
		return nil, nil
	}
	if ahead := p.Time.Sub(now); ahead > t.cfg.MaxClockSkew {
		return nil, fmt.Errorf("%w: %s is %v ahead", ErrFuture, p.ID.short(), ahead)
	}
	if now.Sub(p.Time) > t.cfg.ProfileTTL {
		return nil, nil
	}
	subs, err := normalizeSubscriptions(p.Subscriptions)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", p.ID.short(), err)
	}
	p.Subscriptions = subs
	if at, ok := t.removed[p.ID]; ok {
		if !p.Time.After(at) {
			return nil, nil
		}
		delete(t.removed, p.ID)
		t.removedOrder = slices.DeleteFunc(t.removedOrder, func(id ID) bool { return id == p.ID })
	}
	if pe := t.byID[p.ID]; pe != nil {
		if p.Time.After(pe.Time) {
			t.update(pe, p)
		}
		return pe, nil
	}
	if len(t.peers) >= t.softCap() {
		t.refresh()
	}
	if len(t.peers) >= t.cfg.maxPeers() {
		return nil, nil
	}
	pe := &peer{Profile: p, idx: len(t.peers)}
	t.peers = append(t.peers, pe)
	t.byID[p.ID] = pe
	t.stale = true
	pe.shared = t.sharedRings(pe.Subscriptions)
	for _, r := range pe.shared {
		r.offer(t.self.ID, pe, t.cfg.RingSize/2)
	}
	return pe, nil
}

// update replaces pe's profile with the newer p and fixes the rings whose
// topic p added or dropped.
func (t *Topology) update(pe *peer, p Profile) {
	old := pe.shared
	pe.Profile = p
	pe.shared = t.sharedRings(p.Subscriptions)
	t.stale = true
	half := t.cfg.RingSize / 2
	for _, r := range old {
		if !slices.Contains(pe.shared, r) && r.drop(pe) {
			r.rebuild(t.self.ID, t.peers, half)
		}
	}
	for _, r := range pe.shared {
		if !slices.Contains(old, r) {
			r.offer(t.self.ID, pe, half)
		}
	}
}

// sharedRings returns our rings whose topic is in subs.
func (t *Topology) sharedRings(subs []Subscription) []*ring {
	var out []*ring
	i, j := 0, 0
	for i < len(t.rings) && j < len(subs) {
		switch c := compareTopics(t.rings[i].topic, subs[j].Topic); {
		case c < 0:
			i++
		case c > 0:
			j++
		default:
			out = append(out, t.rings[i])
			i++
			j++
		}
	}
	return out
}

func (t *Topology) deletePeer(pe *peer) {
	last := t.peers[len(t.peers)-1]
	t.peers[pe.idx] = last
	last.idx = pe.idx
	t.peers[len(t.peers)-1] = nil
	t.peers = t.peers[:len(t.peers)-1]
	delete(t.byID, pe.ID)
}

// refresh brings the views up to date after changes: it re-ranks the
// Vicinity and drops the profiles in no view. Received profiles therefore
// stay candidates until the next Tick (or until the store grows past
// softCap), like the paper's "merge everything, then keep the best".
func (t *Topology) refresh() {
	if !t.stale {
		return
	}
	t.rankVicinity()
	t.prune()
	t.stale = false
}

// softCap is the store size at which received profiles are pruned before
// the next Tick: every view full plus one batch.
func (t *Topology) softCap() int {
	return t.cfg.CyclonSize + t.cfg.VicinitySize + t.cfg.RingSize*len(t.rings) + MaxBatch
}

// prune drops the profiles that are in no view any more: the paper keeps
// only the module views, so memory stays bounded by their sizes.
func (t *Topology) prune() {
	gen := t.nextMark()
	for _, r := range t.rings {
		for _, s := range r.succ {
			s.p.mark = gen
		}
		for _, s := range r.pred {
			s.p.mark = gen
		}
	}
	for i := len(t.peers) - 1; i >= 0; i-- {
		pe := t.peers[i]
		if pe.mark != gen && !pe.inCyclon && !pe.inVicinity {
			t.deletePeer(pe)
		}
	}
}

func (t *Topology) expireProfiles(now time.Time) {
	for i := len(t.peers) - 1; i >= 0; i-- {
		// removePeer moves the last peer, already checked, into slot i.
		if pe := t.peers[i]; now.Sub(pe.Time) > t.cfg.ProfileTTL {
			t.removePeer(pe)
		}
	}
}

func (t *Topology) nextMark() uint64 {
	t.markGen++
	return t.markGen
}

func (t *Topology) tie(pe *peer) uint64 {
	return binary.BigEndian.Uint64(pe.ID[:8]) ^ t.salt
}
