package poldercast

import (
	"slices"
	"time"
)

// ring is our view of the ring of one subscribed topic: the closest known
// subscribers after us (succ) and before us (pred) on the id circle, closest
// first. On a small ring the same peer may be on both sides: with one other
// subscriber it is both our successor and our predecessor.
type ring struct {
	topic Topic
	since time.Time // when we subscribed
	inbox bool      // SubscribeInbox: empty by design, not in Settled
	succ  []ringSlot
	pred  []ringSlot
}

type ringSlot struct {
	p *peer
	d distance // clockwise distance from us (succ) or to us (pred)
}

func newRing(tp Topic, half int) *ring {
	return &ring{
		topic: tp,
		succ:  make([]ringSlot, 0, half),
		pred:  make([]ringSlot, 0, half),
	}
}

// missing is the paper's priority of the topic: ring view size minus the
// current ring degree.
func (r *ring) missing(size int) int {
	return size - len(r.succ) - len(r.pred)
}

func (r *ring) has(p *peer) bool {
	for _, s := range r.succ {
		if s.p == p {
			return true
		}
	}
	for _, s := range r.pred {
		if s.p == p {
			return true
		}
	}
	return false
}

// offer places p on each side where it is among the half closest. It keeps
// the closest ids, never the farthest (upstream bug 1), and measures
// distances around the circle so the ring wraps from the largest id to the
// smallest.
func (r *ring) offer(self ID, p *peer, half int) {
	if r.has(p) {
		return
	}
	r.succ = insertSlot(r.succ, ringSlot{p: p, d: clockwise(self, p.ID)}, half)
	r.pred = insertSlot(r.pred, ringSlot{p: p, d: clockwise(p.ID, self)}, half)
}

// insertSlot inserts x into s, kept sorted by distance and at most max long.
func insertSlot(s []ringSlot, x ringSlot, max int) []ringSlot {
	i := 0
	for i < len(s) && !x.d.less(s[i].d) {
		i++
	}
	if i >= max {
		return s
	}
	if len(s) < max {
		s = append(s, ringSlot{})
	}
	copy(s[i+1:], s[i:len(s)-1])
	s[i] = x
	return s
}

// drop removes p from both sides and reports whether it was there. The
// caller rebuilds the ring so a farther known subscriber takes the slot.
func (r *ring) drop(p *peer) bool {
	found := false
	r.succ, found = dropSlot(r.succ, p, found)
	r.pred, found = dropSlot(r.pred, p, found)
	return found
}

func dropSlot(s []ringSlot, p *peer, found bool) ([]ringSlot, bool) {
	for i := range s {
		if s[i].p == p {
			copy(s[i:], s[i+1:])
			s[len(s)-1] = ringSlot{}
			return s[:len(s)-1], true
		}
	}
	return s, found
}

// rebuild recomputes the ring from every known subscriber of the topic.
func (r *ring) rebuild(self ID, peers []*peer, half int) {
	clear(r.succ)
	clear(r.pred)
	r.succ = r.succ[:0]
	r.pred = r.pred[:0]
	for _, p := range peers {
		if slices.Contains(p.shared, r) {
			r.succ = insertSlot(r.succ, ringSlot{p: p, d: clockwise(self, p.ID)}, half)
			r.pred = insertSlot(r.pred, ringSlot{p: p, d: clockwise(p.ID, self)}, half)
		}
	}
}

// first returns the closest successor and predecessor, nil when unknown.
func (r *ring) first() (succ, pred *peer) {
	if len(r.succ) > 0 {
		succ = r.succ[0].p
	}
	if len(r.pred) > 0 {
		pred = r.pred[0].p
	}
	return succ, pred
}

// interestLevel encodes a ring's missing neighbours as the advertised
// interest level, on upstream's scale (missing · 255/RingSize: 63, 126, 189,
// 252 for RingSize 4) but never 0: a full ring still advertises level 1 so
// that the topic stays in the profile and upstream nodes, which read 0 as
// "no interest", still see the subscription (upstream bug 3).
func interestLevel(missing, ringSize int) uint8 {
	level := missing * (255 / ringSize)
	if level < 1 {
		return 1
	}
	return uint8(level)
}
