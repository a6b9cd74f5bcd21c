package node

import (
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
)

func TestQuarantine(t *testing.T) {
	const d = 10 * time.Minute
	t0 := time.Unix(1_700_000_000, 0)
	id := keys.PublicKey{1}
	type step struct {
		at          time.Duration
		op          string // "strike", "quarantine" or "check"
		wantBlocked bool
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"strikes below the limit", []step{
			{0, "strike", false}, {time.Second, "strike", false}, {2 * time.Second, "check", false},
		}},
		{"MaxStrikes quarantine, lifted after the duration", []step{
			{0, "strike", false}, {time.Second, "strike", false}, {2 * time.Second, "strike", true},
			{d, "check", true}, {d + 3*time.Second, "check", false},
		}},
		{"strikes age out of the window", []step{
			{0, "strike", false}, {time.Second, "strike", false}, {d + 2*time.Second, "strike", false},
		}},
		{"a violation quarantines at once", []step{
			{0, "quarantine", true}, {d - time.Second, "check", true}, {d, "check", false},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := newQuarantine(d)
			for i, s := range c.steps {
				now := t0.Add(s.at)
				switch s.op {
				case "strike":
					q.strike(id, now)
				case "quarantine":
					q.quarantine(id, now)
				}
				if got := q.blocked(id, now); got != s.wantBlocked {
					t.Fatalf("step %d (%s at %v): blocked %v, want %v", i, s.op, s.at, got, s.wantBlocked)
				}
			}
		})
	}
}

func TestQuarantineIsBounded(t *testing.T) {
	q := newQuarantine(time.Minute)
	now := time.Unix(1_700_000_000, 0)
	key := func(i int) keys.PublicKey { return keys.PublicKey{byte(i), byte(i >> 8)} }
	last := MaxPeerRecords + 9
	for i := 0; i <= last; i++ {
		q.quarantine(key(i), now.Add(time.Duration(i)*time.Millisecond))
	}
	if len(q.records) != MaxPeerRecords {
		t.Fatalf("%d records, want %d", len(q.records), MaxPeerRecords)
	}
	if q.blocked(key(0), now) || !q.blocked(key(last), now) {
		t.Fatal("evicted a record other than the one expiring first")
	}
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := newTokenBucket(2, 3, t0) // 2 per second, burst 3
	steps := []struct {
		at   time.Duration
		want bool
	}{
		// The burst, then nothing.
		{0, true}, {0, true}, {0, true}, {0, false},
		// 0.8 token, then 1.0.
		{400 * time.Millisecond, false}, {500 * time.Millisecond, true},
		// Long idle: capped at the burst.
		{10 * time.Second, true}, {10 * time.Second, true}, {10 * time.Second, true}, {10 * time.Second, false},
	}
	for i, s := range steps {
		if got, _ := b.take(t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d at %v: %v, want %v", i, s.at, got, s.want)
		}
	}
}
