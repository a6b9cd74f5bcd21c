package loginlimit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asmtp/asmtp/internal/wait"
)

// clock is a Limiter's time, stopped.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) get() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func newTestLimiter(opts Options) (*Limiter, *clock) {
	l := New(opts)
	c := &clock{now: time.Unix(1000, 0)}
	l.now = c.get
	return l, c
}

// TestSchedule books attempts on a stopped clock: FreeFailures start at
// once, then each starts a growing penalty after the previous one, and an
// attempt beyond MaxWait is refused unchecked.
func TestSchedule(t *testing.T) {
	l, c := newTestLimiter(Options{FreeFailures: 2, Penalty: 100 * time.Millisecond, MaxPenalty: 400 * time.Millisecond, MaxWait: time.Second})
	var starts []time.Duration
	for {
		start, err := l.reserve("src", "bob")
		var busy *BusyError
		if errors.As(err, &busy) {
			break
		}
		starts = append(starts, start.Sub(c.get()))
	}
	want := []time.Duration{0, 0, 0, 100, 300, 700} // ms; the next would start at 1100 ms
	if len(starts) != len(want) {
		t.Fatalf("starts %v, want %v ms", starts, want)
	}
	for i := range want {
		if starts[i] != want[i]*time.Millisecond {
			t.Fatalf("starts %v, want %v ms", starts, want)
		}
	}
}

// TestSuccessRefundsOnlyItself: a good login to another account from the
// same source, or to the same account, takes back its own count only, so
// interleaving good logins does not reset the guessing penalty.
func TestSuccessRefundsOnlyItself(t *testing.T) {
	l, _ := newTestLimiter(Options{FreeFailures: 3})
	ctx := context.Background()
	wrong := func() (bool, error) { return false, nil }
	right := func() (bool, error) { return true, nil }
	for range 3 {
		l.Check(ctx, "src", "bob", wrong)
		l.Check(ctx, "src", "alice", right)
	}
	if f := l.keys["s\x00src"].failures; f != 3 {
		t.Errorf("source failures %d after 3 wrong and 3 good logins, want 3", f)
	}
	if f := l.keys["a\x00bob"].failures; f != 3 {
		t.Errorf("bob's failures %d, want 3", f)
	}
	l.Check(ctx, "elsewhere", "bob", right)
	if f := l.keys["a\x00bob"].failures; f != 3 {
		t.Errorf("bob's failures %d after his own good login, want still 3", f)
	}
}

// TestConcurrentChecksBounded: however many attempts wait, at most
// MaxChecks password checks run at once.
func TestConcurrentChecksBounded(t *testing.T) {
	l := New(Options{MaxChecks: 2, FreeFailures: 1000})
	var running, peak atomic.Int32
	release := make(chan struct{})
	verify := func() (bool, error) {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		running.Add(-1)
		return false, nil
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { l.Check(context.Background(), fmt.Sprint("src", i), "bob", verify) })
	}
	wait.Until(t, 10*time.Second, "both slots taken", func() bool { return len(l.checks) >= 2 })
	close(release)
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrent checks %d, want 2", p)
	}
}

func TestSource(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"127.0.0.1:1", "loopback"},
		{"127.3.4.5:2", "loopback"},
		{"[::1]:3", "loopback"},
		{"192.0.2.7:4", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:5", "2001:db8:1:2::/64"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := Source(addr); got != c.want {
			t.Errorf("Source(%s) = %q, want %q", c.addr, got, c.want)
		}
	}
}

func TestBoundedMemory(t *testing.T) {
	l, _ := newTestLimiter(Options{MaxKeys: 4})
	for i := range 20 {
		l.reserve(fmt.Sprint("src", i), fmt.Sprint("user", i))
	}
	if n := len(l.keys); n > 4 {
		t.Errorf("limiter remembers %d keys, limit 4", n)
	}
}
