package node

import (
	"context"
	"math"
	"math/big"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// The intro-bucket width (PROTOCOL.md §16.4). A node estimates the number
// m of members of its own buckets from their rings: on a ring of m ids
// spread uniformly over the 2^256 circle, the k-th closest successor is
// about k·2^256/m away, so the ring neighbours it knows on both sides give
// m ≈ (k_succ + k_pred)·2^256 / (d_succ + d_pred), with each d the
// distance to the farthest one known on that side. The network holds
// about N = m·2^b nodes. The estimate is smoothed over BucketWindow and
// the width moves one step once the smoothed N has called for it for
// BucketHold: to b+1 when N/2^(b+1) ≥ 48, to b−1 when N/2^b < 32, so that
// a bucket keeps 32–95 members and estimates near a threshold do not make
// it flap. The width is stored, so a restart keeps it.
//
// The node's own buckets are the registered topics that are the intro
// bucket of a stored passport (its accounts' own, kept or put) at the
// current width or a neighbouring one: no API marks them. A ring view
// that has not found the true closest neighbours yet overestimates the
// distances, hence underestimates N: the width errs on the side of
// bigger buckets.

const (
	// BucketWindow is the time constant of the smoothed size estimate.
	BucketWindow = 24 * time.Hour
	// BucketHold is how long the estimate must call for another width
	// before the node moves to it.
	BucketHold = 24 * time.Hour
	// bucketWiden is the smoothed members per bucket at the next width
	// that makes the node widen (topic.MinBucketNodes·1.5).
	bucketWiden = 48
)

// bucketWidth is the width and the estimate behind it.
type bucketWidth struct {
	mu    sync.Mutex
	bits  int
	avg   float64   // smoothed N; 0 until the first estimate
	last  time.Time // of the last observation
	want  int       // the width the estimate calls for, when not bits
	since time.Time // since when it has (zero: it calls for bits)
}

func (w *bucketWidth) get() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bits
}

// observe smooths in an estimate n of the network size at now and
// reports whether the width changed.
func (w *bucketWidth) observe(n float64, now time.Time, window, hold time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.avg == 0 {
		w.avg = n
	} else {
		alpha := 1 - math.Exp(-now.Sub(w.last).Seconds()/window.Seconds())
		w.avg += alpha * (n - w.avg)
	}
	w.last = now
	want := w.bits
	switch {
	case w.bits < topic.MaxBucketBits && w.avg/math.Ldexp(1, w.bits+1) >= bucketWiden:
		want = w.bits + 1
	case w.bits > 0 && w.avg/math.Ldexp(1, w.bits) < topic.MinBucketNodes:
		want = w.bits - 1
	}
	switch {
	case want == w.bits:
		w.since = time.Time{}
	case w.since.IsZero() || want != w.want:
		w.want, w.since = want, now
	case now.Sub(w.since) >= hold:
		w.bits, w.since = want, time.Time{}
		return true
	}
	return false
}

// ringMembers estimates the members of a ring from our id and our ring
// neighbours on it, closest first on each side; false with none.
func ringMembers(self keys.PublicKey, succ, pred []keys.PublicKey) (float64, bool) {
	if len(succ) == 0 || len(pred) == 0 {
		return 0, false
	}
	mod := new(big.Int).Lsh(big.NewInt(1), 256)
	id := func(k keys.PublicKey) *big.Int { return new(big.Int).SetBytes(k[:]) }
	me := id(self)
	ds := new(big.Int).Sub(id(succ[len(succ)-1]), me)
	dp := new(big.Int).Sub(me, id(pred[len(pred)-1]))
	sum := new(big.Int).Add(ds.Mod(ds, mod), dp.Mod(dp, mod))
	if sum.Sign() == 0 {
		return 0, false
	}
	ratio, _ := new(big.Float).Quo(new(big.Float).SetInt(mod), new(big.Float).SetInt(sum)).Float64()
	return float64(len(succ)+len(pred)) * ratio, true
}

// ownBuckets returns the registered topics that are the intro bucket of a
// stored passport at width bits or a neighbouring one, with their widths.
func (n *Node) ownBuckets(ctx context.Context, bits int) map[topic.Topic]int {
	ids, err := n.store.AllPassportIDs(ctx)
	if err != nil {
		n.log.Error("bucket width: passports", "err", err)
		return nil
	}
	out := make(map[topic.Topic]int)
	for _, id := range ids {
		for b := max(0, bits-1); b <= min(topic.MaxBucketBits, bits+1); b++ {
			if t := topic.IntroBucket(id, b); n.registered(t) && !n.isInbox(t) {
				out[t] = b
			}
		}
	}
	return out
}

// updateBucketWidth estimates the network size from the rings of the
// node's own buckets, and records a new width.
func (n *Node) updateBucketWidth(ctx context.Context, now time.Time) {
	bits := n.buckets.get()
	var sum float64
	count := 0
	for t, b := range n.ownBuckets(ctx, bits) {
		succ, pred := n.overlay.ring(t)
		if m, ok := ringMembers(n.id, succ, pred); ok {
			sum += math.Ldexp(m, b)
			count++
		}
	}
	if count == 0 {
		return
	}
	if !n.buckets.observe(sum/float64(count), now, n.cfg.BucketWindow, n.cfg.BucketHold) {
		return
	}
	b := n.buckets.get()
	n.log.Info("intro-bucket width changed", "bits", b, "estimated nodes", int(sum/float64(count)))
	if err := n.store.SetBucketBits(ctx, b); err != nil {
		n.log.Error("bucket width", "err", err)
	}
}
