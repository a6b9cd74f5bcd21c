package wait

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB that records a failure instead of ending the
// test, so the tests below can check when Until and Never fail.
type recorder struct {
	testing.TB
	failure string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failure = fmt.Sprintf(format, args...)
}

func TestPoll(t *testing.T) {
	var calls atomic.Int32
	if !Poll(time.Second, func() bool { return calls.Add(1) == 3 }) {
		t.Fatal("condition true on the third call: Poll reported false")
	}
	start := time.Now()
	if Poll(50*time.Millisecond, func() bool { return false }) {
		t.Fatal("condition never true: Poll reported true")
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Poll of a false condition returned after %v, want about 50ms", d)
	}
}

func TestUntilAndNever(t *testing.T) {
	yes := func() bool { return true }
	no := func() bool { return false }
	queued := func() string { return "3 queued" }
	tests := []struct {
		name        string
		call        func(tb testing.TB)
		wantFailure string
	}{
		{"until holds", func(tb testing.TB) { Until(tb, time.Second, "empty", yes) }, ""},
		{"until times out", func(tb testing.TB) { Until(tb, time.Millisecond, "empty", no, queued) },
			"not within 1ms: empty\n3 queued"},
		{"never holds", func(tb testing.TB) { Never(tb, 20*time.Millisecond, "lost", no) }, ""},
		{"never broken", func(tb testing.TB) { Never(tb, time.Second, "lost", yes) }, "within 1s: lost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			tt.call(r)
			if r.failure != tt.wantFailure {
				t.Fatalf("failure %q, want %q", r.failure, tt.wantFailure)
			}
		})
	}
}
