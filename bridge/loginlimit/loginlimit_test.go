package loginlimit

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	th := New(Options{MaxFailures: 3, Backoff: time.Second, MaxBackoff: 8 * time.Second, MaxSources: 2})
	th.now = func() time.Time { return now }
	steps := []struct {
		do   string // "fail", "ok" or "wait"
		src  string
		want time.Duration
	}{
		{"fail", "a", 0}, {"fail", "a", 0}, {"wait", "a", 0},
		{"fail", "a", time.Second}, // third failure: 1 s
		{"fail", "a", 2 * time.Second},
		{"fail", "a", 4 * time.Second},
		{"fail", "a", 8 * time.Second},
		{"fail", "a", 8 * time.Second}, // capped
		{"wait", "b", 0},               // other sources unaffected
		{"ok", "a", 0},                 // success clears
		{"fail", "a", 0},
	}
	for i, s := range steps {
		switch s.do {
		case "fail":
			th.Failed(s.src)
		case "ok":
			th.Succeeded(s.src)
		}
		if got := th.Wait(s.src); got != s.want {
			t.Fatalf("step %d (%s %s): wait %v, want %v", i, s.do, s.src, got, s.want)
		}
	}
	for i := range 10 { // bounded memory
		th.Failed(fmt.Sprint("spray", i))
	}
	if n := len(th.sources); n > 2 {
		t.Errorf("throttle remembers %d sources, limit 2", n)
	}
}
