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
	sc := &t.choose
	nq := len(q.Subscriptions)
	sc.keys = sc.keys[:0]
	for _, sub := range q.Subscriptions {
		sc.keys = append(sc.keys, topicKey(sub.Topic))
	}
	sc.succ = append(sc.succ[:0], make([]closest, nq)...)
	sc.pred = append(sc.pred[:0], make([]closest, nq)...)
	scored := t.scored[:0]
	for _, pe := range t.peers {
		subs := pe.Subscriptions
		if pe.ID == q.ID || pe.mark == gen || len(subs) == 0 {
			continue
		}
		sp := scoredPeer{p: pe}
		var ds, dp distance
		// Merge the two sorted topic lists, comparing the first eight
		// bytes first: topics are hashes, so they nearly always decide.
		i, j := 0, 0
		kb := topicKey(subs[0].Topic)
		for i < nq {
			ka := sc.keys[i]
			c := 0
			switch {
			case ka < kb:
				c = -1
			case ka > kb:
				c = 1
			case q.Subscriptions[i].Topic != subs[j].Topic:
				c = compareTopics(q.Subscriptions[i].Topic, subs[j].Topic)
			}
			if c < 0 {
				i++
				continue
			}
			if c == 0 {
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
			}
			j++
			if j == len(subs) {
				break
			}
			kb = topicKey(subs[j].Topic)
		}
		if sp.shared > 0 {
			scored = append(scored, sp)
		}
	}
	// Ring picks may also rank here; 2n leaves enough after skipping them.
	scored = t.topScored(scored, 2*n)

	// Ring candidates, topics in decreasing priority for q.
	sc.order = sc.order[:0]
	for i := range nq {
		sc.order = append(sc.order, i)
	}
	// Topics we subscribe to first: for those our store holds our own ring
	// neighbours, the best candidates when q is near us; then by q's
	// priority, highest first.
	slices.SortStableFunc(sc.order, func(a, b int) int {
		ours := func(i int) int {
			if t.byTopic[q.Subscriptions[i].Topic] != nil {
				return 1
			}
			return 0
		}
		if oa, ob := ours(a), ours(b); oa != ob {
			return ob - oa
		}
		return int(q.Subscriptions[b].Interest) - int(q.Subscriptions[a].Interest)
	})
	ringList := sc.ring[:0]
	for _, i := range sc.order {
		if sc.succ[i].p != nil {
			ringList = append(ringList, sc.succ[i].p)
		}
		if sc.pred[i].p != nil {
			ringList = append(ringList, sc.pred[i].p)
		}
	}

	out := make([]*peer, 0, n)
	ri, vi := 0, 0
	for len(out) < n && (ri < len(ringList) || vi < len(scored)) {
		for ri < len(ringList) {
			pe := ringList[ri]
			ri++
			if pe.mark != gen {
				pe.mark = gen
				out = append(out, pe)
				break
			}
		}
		if len(out) >= n {
			break
		}
		for vi < len(scored) {
			pe := scored[vi].p
			vi++
			if pe.mark != gen {
				pe.mark = gen
				out = append(out, pe)
				break
			}
		}
	}
	// Scratch keeps its capacity but no pointers into peers that may go.
	clear(scored)
	t.scored = scored[:0]
	clear(ringList)
	sc.ring = ringList[:0]
	clear(sc.succ)
	clear(sc.pred)
	return out
}

// chooseScratch holds chooseFor's buffers between calls.
type chooseScratch struct {
	keys       []uint64
	succ, pred []closest
	order      []int
	ring       []*peer
}

type closest struct {
	p *peer
	d distance
}
