package poldercast

import (
	"slices"
	"unsafe"
)

// Forward returns the peers to send an event of topic tp to, on its first
// receipt from peer from (our own id, or the zero ID, when the event is
// published locally). The node drops duplicates before calling it. It is
// the paper's rule with fanout F:
//
//   - from our closest successor: our closest predecessor plus F−1 random
//     shortcuts; from our closest predecessor: the reverse;
//   - from anywhere else, or published locally: both closest ring
//     neighbours plus F−2 random shortcuts.
//
// Shortcuts are Vicinity neighbours subscribed to tp; when the Vicinity has
// too few, other known subscribers (our second ring neighbours, Cyclon
// entries) fill in. from is never in the result. For a topic we do not
// subscribe to it returns nil: non-subscribers never relay (use Handoff to
// publish such a topic).
func (t *Topology) Forward(tp Topic, from ID) []ID {
	r := t.byTopic[tp]
	if r == nil {
		return nil
	}
	t.refresh()
	local := from == t.self.ID || from == ID{}
	succ, pred := r.first()
	out := make([]ID, 0, t.cfg.Fanout)
	add := func(pe *peer) {
		if pe != nil && pe.ID != from && !slices.Contains(out, pe.ID) {
			out = append(out, pe.ID)
		}
	}
	shortcuts := t.cfg.Fanout - 2
	switch {
	case !local && succ != nil && succ.ID == from:
		add(pred)
		shortcuts = t.cfg.Fanout - 1
	case !local && pred != nil && pred.ID == from:
		add(succ)
		shortcuts = t.cfg.Fanout - 1
	default:
		add(succ)
		add(pred)
	}
	if shortcuts <= 0 {
		return out
	}
	usable := func(pe *peer) bool {
		return pe.ID != from && !slices.Contains(out, pe.ID) && slices.Contains(pe.shared, r)
	}
	var pool []*peer
	for _, pe := range t.vicinity {
		if usable(pe) {
			pool = append(pool, pe)
		}
	}
	shortcuts -= t.pickRandom(pool, shortcuts, &out)
	if shortcuts <= 0 {
		return out
	}
	pool = pool[:0]
	for _, side := range [][]ringSlot{r.succ, r.pred} {
		for _, s := range side {
			if usable(s.p) && !slices.Contains(pool, s.p) {
				pool = append(pool, s.p)
			}
		}
	}
	for _, pe := range t.cyclon {
		if usable(pe) && !slices.Contains(pool, pe) {
			pool = append(pool, pe)
		}
	}
	t.pickRandom(pool, shortcuts, &out)
	return out
}

// pickRandom appends up to n random peers of pool to out and returns how
// many it appended. It reorders pool.
func (t *Topology) pickRandom(pool []*peer, n int, out *[]ID) int {
	n = min(n, len(pool))
	for i := range n {
		j := i + t.rng.IntN(len(pool)-i)
		pool[i], pool[j] = pool[j], pool[i]
		*out = append(*out, pool[i].ID)
	}
	return n
}

// Handoff returns up to HandoffSize known subscribers of tp, freshest
// profile first, for publishing an event of a topic we do not subscribe
// to: the node sends the event to them and each, receiving it from a
// non-neighbour, forwards it both ways around the ring. The publisher is
// the source of the event, not a relay, so the overlay stays relay-free.
// An empty result means we know no subscriber: the node should Subscribe
// to tp (the rings then find its subscribers within a few cycles) and keep
// the event queued, or give up.
func (t *Topology) Handoff(tp Topic) []ID {
	t.refresh()
	var subs []*peer
	for _, pe := range t.peers {
		if pe.Subscribes(tp) {
			subs = append(subs, pe)
		}
	}
	slices.SortStableFunc(subs, func(a, b *peer) int { return b.Time.Compare(a.Time) })
	out := make([]ID, 0, t.cfg.HandoffSize)
	for _, pe := range subs[:min(len(subs), t.cfg.HandoffSize)] {
		out = append(out, pe.ID)
	}
	return out
}

// Footprint estimates the bytes this topology holds. Every profile is
// counted with its own copy of its subscriptions, as a node that decodes
// gossips holds them (the simulator shares them between nodes, so its heap
// is smaller), and every map entry with a fixed overhead. It is an
// estimate for capacity planning, deterministic for a given state.
func (t *Topology) Footprint() int {
	const mapEntryOverhead = 16 // hash map slot metadata per entry, rounded
	t.refresh()
	var (
		peerSize = int(unsafe.Sizeof(peer{}))
		subSize  = int(unsafe.Sizeof(Subscription{}))
		ptrSize  = int(unsafe.Sizeof(&peer{}))
		idSize   = int(unsafe.Sizeof(ID{}))
		slotSize = int(unsafe.Sizeof(ringSlot{}))
		profSize = int(unsafe.Sizeof(Profile{}))
		timeSize = int(unsafe.Sizeof(t.self.Time))
	)
	n := int(unsafe.Sizeof(*t))
	n += len(t.self.Subscriptions) * subSize
	for _, pe := range t.peers {
		n += peerSize + len(pe.Subscriptions)*subSize
	}
	n += cap(t.peers) * ptrSize
	n += len(t.byID) * (idSize + ptrSize + mapEntryOverhead)
	for _, r := range t.rings {
		n += int(unsafe.Sizeof(*r)) + (cap(r.succ)+cap(r.pred))*slotSize
	}
	n += cap(t.rings)*ptrSize + len(t.byTopic)*(idSize+ptrSize+mapEntryOverhead)
	n += (cap(t.cyclon) + cap(t.vicinity)) * ptrSize
	for _, ex := range t.exchanges {
		n += int(unsafe.Sizeof(*ex)) + cap(ex.sent)*profSize
	}
	n += cap(t.exchanges) * ptrSize
	n += len(t.removed)*(idSize+timeSize+mapEntryOverhead) + cap(t.removedOrder)*idSize
	n += cap(t.scored) * int(unsafe.Sizeof(scoredPeer{}))
	return n
}
