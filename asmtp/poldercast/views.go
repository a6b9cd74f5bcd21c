package poldercast

import (
	"slices"
	"time"
)

// Exchanges.

// exchangeWith returns the live exchange with peer, forgetting it if it is
// older than ExchangeTimeout.
func (t *Topology) exchangeWith(peer ID, now time.Time) *exchange {
	for i, ex := range t.exchanges {
		if ex.peer != peer {
			continue
		}
		if now.Sub(ex.opened) > t.cfg.ExchangeTimeout {
			t.exchanges = slices.Delete(t.exchanges, i, i+1)
			return nil
		}
		return ex
	}
	return nil
}

// openExchange starts an exchange with peer, replacing any earlier one, and
// draws the Cyclon entries to send it.
func (t *Topology) openExchange(peer ID, now time.Time, initiator bool) *exchange {
	t.exchanges = slices.DeleteFunc(t.exchanges, func(ex *exchange) bool { return ex.peer == peer })
	if len(t.exchanges) >= MaxExchanges {
		t.exchanges = slices.Delete(t.exchanges, 0, 1)
	}
	ex := &exchange{
		peer:      peer,
		opened:    now,
		initiator: initiator,
		sent:      t.cyclonSample(t.cfg.GossipSize-1, peer),
	}
	if pe := t.byID[peer]; pe != nil {
		ex.target, ex.hasTarget = pe.Profile, true
	}
	t.exchanges = append(t.exchanges, ex)
	return ex
}

func (t *Topology) expireExchanges(now time.Time) {
	t.exchanges = slices.DeleteFunc(t.exchanges, func(ex *exchange) bool {
		return now.Sub(ex.opened) > t.cfg.ExchangeTimeout
	})
}

// Cyclon.

// cyclonSample returns n random Cyclon entries other than exclude.
func (t *Topology) cyclonSample(n int, exclude ID) []Profile {
	pool := make([]*peer, 0, len(t.cyclon))
	for _, pe := range t.cyclon {
		if pe.ID != exclude {
			pool = append(pool, pe)
		}
	}
	n = min(n, len(pool))
	out := make([]Profile, n)
	for i := range n {
		j := i + t.rng.IntN(len(pool)-i)
		pool[i], pool[j] = pool[j], pool[i]
		out[i] = pool[i].Profile
	}
	return out
}

// cyclonMerge is the Cyclon merge for one received entry: skip entries we
// hold and the peer we just shuffled out, fill an empty slot, else replace
// one of the entries we sent in this exchange.
func (t *Topology) cyclonMerge(pe *peer, ex *exchange) {
	if pe.inCyclon || (ex.skipCyclon && pe.ID == ex.peer) {
		return
	}
	if len(t.cyclon) < t.cfg.CyclonSize {
		t.cyclonAdd(pe)
		return
	}
	for ex.next < len(ex.sent) {
		old := t.byID[ex.sent[ex.next].ID]
		ex.next++
		if old != nil && old.inCyclon {
			t.cyclonRemove(old)
			t.cyclonAdd(pe)
			return
		}
	}
}

func (t *Topology) cyclonAdd(pe *peer) {
	pe.inCyclon = true
	t.cyclon = append(t.cyclon, pe)
}

func (t *Topology) cyclonRemove(pe *peer) {
	pe.inCyclon = false
	t.cyclon = slices.DeleteFunc(t.cyclon, func(x *peer) bool { return x == pe })
}

// oldestCyclon returns the Cyclon entry with the oldest profile: the
// profile time is the descriptor's age, set to zero by its owner when it
// re-signs.
func (t *Topology) oldestCyclon() *peer {
	var best *peer
	for _, pe := range t.cyclon {
		if best == nil || pe.Time.Before(best.Time) {
			best = pe
		}
	}
	return best
}

// Vicinity and Rings neighbour selection.

// staler reports whether a is more in need of an exchange than b: peers we
// never exchanged with first (they do not know us yet), oldest profile
// first; then the one whose last sign of life — its profile time or our
// last exchange — is oldest.
func staler(a, b *peer) bool {
	if a.lastContact.IsZero() != b.lastContact.IsZero() {
		return a.lastContact.IsZero()
	}
	return lastSeen(a).Before(lastSeen(b))
}

func lastSeen(pe *peer) time.Time {
	if pe.lastContact.After(pe.Time) {
		return pe.lastContact
	}
	return pe.Time
}

func stalest(view []*peer) *peer {
	var best *peer
	for _, pe := range view {
		if best == nil || staler(pe, best) {
			best = pe
		}
	}
	return best
}

func (t *Topology) stalestRingNeighbour() *peer {
	var best *peer
	for _, r := range t.rings {
		for _, s := range r.succ {
			if best == nil || staler(s.p, best) {
				best = s.p
			}
		}
		for _, s := range r.pred {
			if best == nil || staler(s.p, best) {
				best = s.p
			}
		}
	}
	return best
}

// Vicinity.

// rankVicinity recomputes the Vicinity view: the VicinitySize known peers
// closest to us, by the sum of our current priorities over the topics we
// share, ties by the number of shared topics. Priorities change as rings
// fill, so the ranking is recomputed on every change rather than frozen at
// insertion (upstream bug 7). Peers sharing no topic are left to Cyclon.
func (t *Topology) rankVicinity() {
	for _, pe := range t.vicinity {
		pe.inVicinity = false
	}
	t.vicinity = t.vicinity[:0]
	scored := t.scored[:0]
	for _, pe := range t.peers {
		if len(pe.shared) == 0 {
			continue
		}
		sp := scoredPeer{p: pe, shared: len(pe.shared)}
		for _, r := range pe.shared {
			sp.sum += int(interestLevel(r.missing(t.cfg.RingSize), t.cfg.RingSize))
		}
		scored = append(scored, sp)
	}
	for _, sp := range t.topScored(scored, t.cfg.VicinitySize) {
		sp.p.inVicinity = true
		t.vicinity = append(t.vicinity, sp.p)
	}
	clear(scored)
	t.scored = scored[:0]
}

// better orders by proximity, best first, then by a per-node salted id so
// that equally close peers are not the same for every node.
func (t *Topology) better(a, b scoredPeer) bool {
	switch {
	case a.sum != b.sum:
		return a.sum > b.sum
	case a.shared != b.shared:
		return a.shared > b.shared
	}
	return t.tie(a.p) < t.tie(b.p)
}

// topScored moves the n best of s, best first, to its front and returns
// them: a partial insertion sort, linear in len(s) for small n.
func (t *Topology) topScored(s []scoredPeer, n int) []scoredPeer {
	k := 0
	for i := range s {
		x := s[i]
		if k == n && !t.better(x, s[k-1]) {
			continue
		}
		if k < n {
			k++
		}
		j := k - 1
		for j > 0 && t.better(x, s[j-1]) {
			s[j] = s[j-1]
			j--
		}
		s[j] = x
	}
	return s[:k]
}

// Choosing what to send a peer.

// chooseFor returns up to n known peers most useful to q, skipping q and
// peers marked gen (already chosen), and marks them. Two lists are
// interleaved, one from each side of the paper's exchange:
//   - Rings: for each topic q subscribes to, the known subscribers closest
//     to q's id on either side; topics we share with q first, then those
//     with q's highest priority;
//   - Vicinity: the peers with the highest proximity from q's point of view
//     (the sum of q's interest levels over shared topics).
func (t *Topology) chooseFor(q Profile, n int, gen uint64) []*peer {
	// Ring picks may also rank among the scored; 2n leaves enough after
	// skipping them.
	scored := t.topScored(t.scoreFor(q, gen), 2*n)
	ringList := t.ringCandidates(q)
	out := interleave(ringList, scored, n, gen)
	// Scratch keeps its capacity but no pointers into peers that may go.
	clear(scored)
	t.scored = scored[:0]
	clear(ringList)
	t.choose.ring = ringList[:0]
	clear(t.choose.succ)
	clear(t.choose.pred)
	return out
}

// scoreFor scores every known peer sharing a topic with q from q's point of
// view, and records in the scratch the closest known subscribers on either
// side of q for each of q's topics. It is the hot loop of gossip: it walks
// the whole store on every exchange. Profiling a 2,000-node simulation puts
// most of its time in loading each peer and its subscriptions (cache
// misses), not in the merge: the store is a few hundred peers and most share
// a popular topic with q, so an index by topic would touch nearly as many
// peers and cost memory on every learn and prune.
func (t *Topology) scoreFor(q Profile, gen uint64) []scoredPeer {
	sc := &t.choose
	nq := len(q.Subscriptions)
	sc.keys = sc.keys[:0]
	for _, sub := range q.Subscriptions {
		sc.keys = append(sc.keys, topicKey(sub.Topic))
	}
	sc.succ = append(sc.succ[:0], make([]closest, nq)...)
	sc.pred = append(sc.pred[:0], make([]closest, nq)...)
	scored := t.scored[:0]
	if nq == 0 {
		return scored
	}
	for _, pe := range t.peers {
		if len(pe.Subscriptions) == 0 || pe.mark == gen || pe.ID == q.ID {
			continue
		}
		if sp := t.scoreShared(q, pe); sp.shared > 0 {
			scored = append(scored, sp)
		}
	}
	return scored
}

// scoreShared merges q's topics with pe's, comparing the first eight bytes
// first (topics are hashes, so they nearly always decide), summing q's interest levels
// over the shared topics and offering pe as q's closest subscriber on each.
func (t *Topology) scoreShared(q Profile, pe *peer) scoredPeer {
	sc := &t.choose
	sp := scoredPeer{p: pe}
	var ds, dp distance
	subs := pe.Subscriptions
	i, j := 0, 0
	for i < len(sc.keys) && j < len(subs) {
		ka, kb := sc.keys[i], topicKey(subs[j].Topic)
		switch {
		case ka < kb:
			i++
			continue
		case ka > kb:
			j++
			continue
		}
		if c := compareTopics(q.Subscriptions[i].Topic, subs[j].Topic); c != 0 {
			// Same first eight bytes, different topics: advance the smaller.
			if c < 0 {
				i++
			} else {
				j++
			}
			continue
		}
		if sp.shared == 0 {
			ds, dp = clockwise(q.ID, pe.ID), clockwise(pe.ID, q.ID)
		}
		sp.sum += int(q.Subscriptions[i].Interest)
		sp.shared++
		if sc.succ[i].p == nil || ds.less(sc.succ[i].d) {
			sc.succ[i] = closest{pe, ds}
		}
		if sc.pred[i].p == nil || dp.less(sc.pred[i].d) {
			sc.pred[i] = closest{pe, dp}
		}
		i++
		j++
	}
	return sp
}

// ringCandidates lists the closest subscribers scoreFor found for each of
// q's topics. Topics we subscribe to come first: for those our store holds
// our own ring neighbours, the best candidates when q is near us; then by
// q's priority, highest first.
func (t *Topology) ringCandidates(q Profile) []*peer {
	sc := &t.choose
	sc.order = sc.order[:0]
	for i, sub := range q.Subscriptions {
		rank := int(sub.Interest)
		if t.byTopic[sub.Topic] != nil {
			rank += 256
		}
		sc.order = append(sc.order, orderedTopic{i, rank})
	}
	slices.SortStableFunc(sc.order, func(a, b orderedTopic) int { return b.rank - a.rank })
	ringList := sc.ring[:0]
	for _, o := range sc.order {
		if p := sc.succ[o.i].p; p != nil {
			ringList = append(ringList, p)
		}
		if p := sc.pred[o.i].p; p != nil {
			ringList = append(ringList, p)
		}
	}
	return ringList
}

// interleave takes up to n peers not marked gen, alternately from the ring
// list and the scored list, and marks them.
func interleave(ringList []*peer, scored []scoredPeer, n int, gen uint64) []*peer {
	out := make([]*peer, 0, n)
	take := func(pe *peer) bool {
		if pe.mark == gen {
			return false
		}
		pe.mark = gen
		out = append(out, pe)
		return true
	}
	ri, vi := 0, 0
	for len(out) < n && (ri < len(ringList) || vi < len(scored)) {
		for ri < len(ringList) && !take(ringList[ri]) {
			ri++
		}
		if ri < len(ringList) {
			ri++
		}
		if len(out) >= n {
			break
		}
		for vi < len(scored) && !take(scored[vi].p) {
			vi++
		}
		if vi < len(scored) {
			vi++
		}
	}
	return out
}

// orderedTopic is one of q's topics (its index) with its rank for ringCandidates.
type orderedTopic struct{ i, rank int }

// chooseScratch holds chooseFor's buffers between calls.
type chooseScratch struct {
	keys       []uint64
	succ, pred []closest
	order      []orderedTopic
	ring       []*peer
}

type closest struct {
	p *peer
	d distance
}
