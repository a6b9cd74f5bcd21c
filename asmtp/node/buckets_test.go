package node

import (
	"bytes"
	"context"
	"crypto/rand"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/wait"
)

// The ring estimate of a bucket's members, from the four closest ids on
// each side, averaged over 20 members of rings of known size, is within
// 30 % of the size (one member's estimate varies by about a third).
func TestRingMembersEstimate(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(16, 4))
	for _, m := range []int{2, 9, 50, 1000, 20000} {
		ids := make([]keys.PublicKey, m)
		for i := range ids {
			for j := range ids[i] {
				ids[i][j] = byte(rng.Uint32())
			}
		}
		slices.SortFunc(ids, func(a, b keys.PublicKey) int { return bytes.Compare(a[:], b[:]) })
		var sum float64
		const members = 20
		for i := range members {
			self := (i * m / members) % m
			k := min(4, m-1)
			var succ, pred []keys.PublicKey
			for j := 1; j <= k; j++ {
				succ = append(succ, ids[(self+j)%m])
				pred = append(pred, ids[(self-j+m)%m])
			}
			est, ok := ringMembers(ids[self], succ, pred)
			if !ok {
				t.Fatalf("m=%d: no estimate", m)
			}
			sum += est
		}
		if avg := sum / members; avg < 0.7*float64(m) || avg > 1.3*float64(m) {
			t.Errorf("ring of %d: estimated %.0f members", m, avg)
		}
	}
	if _, ok := ringMembers(keys.PublicKey{1}, nil, nil); ok {
		t.Error("an empty ring gave an estimate")
	}
}

// The width moves one step at a time, only once the smoothed estimate has
// called for it for the whole hold, and not back and forth around a
// threshold (PROTOCOL.md §16.4).
func TestBucketWidthHysteresis(t *testing.T) {
	const window, hold = time.Minute, time.Hour
	t0 := time.Unix(1_800_000_000, 0)
	m := time.Minute
	steps := []struct {
		at   time.Duration
		n    float64
		bits int
	}{
		{0, 1000, 0},       // calls for 1 (1000/2 ≥ 48)
		{30 * m, 1000, 0},  // not for a whole hold yet
		{61 * m, 1000, 1},  // now: one step
		{62 * m, 1000, 1},  // calls for 2
		{123 * m, 1000, 2}, // a hold later
		{124 * m, 1000, 2}, // calls for 3 (1000/8 ≥ 48)
		{185 * m, 1000, 3}, //
		{186 * m, 1000, 3}, // calls for 4 (1000/16 ≥ 48)
		{247 * m, 1000, 4}, //
		{248 * m, 1000, 4}, // 1000/32 < 48 and 1000/16 ≥ 32: stays
		{250 * m, 400, 4},  // about 480/16 < 32: calls for 3
		{280 * m, 1000, 4}, // back above: the call ends
		{300 * m, 400, 4},  // calls for 3 again, afresh
		{350 * m, 400, 4},  // not a whole hold since
		{361 * m, 400, 3},  // one step down
		{362 * m, 10, 3},   // far below: calls for 2 only
		{423 * m, 10, 2},   // a hold per step
		{424 * m, 10, 2},   //
		{485 * m, 10, 1},   //
		{486 * m, 10, 1},   //
		{547 * m, 10, 0},   //
		{600 * m, 50, 0},   // below 64 nodes: one bucket
		{700 * m, 50, 0},   //
	}
	var w bucketWidth
	for _, st := range steps {
		w.observe(st.n, t0.Add(st.at), window, hold)
		if got := w.get(); got != st.bits {
			t.Fatalf("at %v (n=%.0f): width %d, want %d", st.at, st.n, got, st.bits)
		}
	}
}

// Three nodes whose accounts keep their passports and register their
// intro buckets estimate a network of about three nodes from the ring of
// the one bucket they share (width 0), keep the width, and a recorded
// width survives a restart.
func TestBucketWidthFromOwnBuckets(t *testing.T) {
	ctx := context.Background()
	nodes := startNetwork(t, 3, func(c *Config) { c.BucketWindow, c.BucketHold = time.Minute, time.Minute })
	for _, n := range nodes {
		s := n.session(t)
		p, _, err := passport.Create(rand.Reader, time.Now(), "acct", n.user, keys.PassphraseSeed("test"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.KeepPassport(ctx, p.Export()); err != nil {
			t.Fatal(err)
		}
		if err := s.Register(ctx, topic.IntroBucket(p.ID(), s.BucketBits())); err != nil {
			t.Fatal(err)
		}
	}
	a := nodes[0]
	wait.Until(t, 20*time.Second, "an estimate of the network", func() bool {
		a.buckets.mu.Lock()
		defer a.buckets.mu.Unlock()
		return a.buckets.avg > 0
	})
	a.buckets.mu.Lock()
	avg := a.buckets.avg
	a.buckets.mu.Unlock()
	if avg < 1.5 || avg > 6 || a.bucketBits() != 0 {
		t.Errorf("estimated %.1f nodes, width %d; want about 3, width 0", avg, a.bucketBits())
	}

	if err := a.store.SetBucketBits(ctx, 5); err != nil {
		t.Fatal(err)
	}
	a.stop(t)
	cfg := a.cfg
	cfg.ListenAddress = a.Addr().String()
	a2 := start(t, cfg, a.user)
	if got := a2.session(t).BucketBits(); got != 5 {
		t.Errorf("width after a restart %d, want the recorded 5", got)
	}
}
