package mailstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrBusy is returned when the store's memory budget stays spent for
// longer than it lets a call wait: a temporary condition, which the IMAP
// server answers with NO [UNAVAILABLE].
var ErrBusy = errors.New("mailstore: memory budget spent by other requests, try again later")

// Defaults of the memory budget (see DB.SetMemoryBudget).
const (
	DefaultMemoryBudget = 64 << 20
	DefaultBudgetWait   = time.Minute
)

// memoryBudget bounds the bytes held at once by the calls that hold whole
// messages or their text in memory (Append, Deliver, the text part of
// Search), across all accounts and connections. A call takes its share
// before it reads or parses and gives it back when done; a call that needs
// more than the whole budget runs alone. Waiters are woken on every
// release and retry; there is no queue order, which is fine for the short
// holds these are.
type memoryBudget struct {
	mu    sync.Mutex
	total int64
	used  int64
	wait  time.Duration
	freed chan struct{} // closed and replaced on every release
}

func newMemoryBudget(total int64, wait time.Duration) *memoryBudget {
	return &memoryBudget{total: total, wait: wait, freed: make(chan struct{})}
}

// acquire takes n bytes of the budget, waiting at most b.wait for them.
func (b *memoryBudget) acquire(ctx context.Context, n int64) (release func(), err error) {
	var expired <-chan time.Time
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.total {
			b.used += n
			b.mu.Unlock()
			return func() { b.release(n) }, nil
		}
		freed := b.freed
		b.mu.Unlock()
		if expired == nil {
			t := time.NewTimer(b.wait)
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-freed:
		case <-expired:
			return nil, fmt.Errorf("%w (%d bytes wanted, %d of %d in use)", ErrBusy, n, b.used, b.total)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (b *memoryBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
}

// SetMemoryBudget sets how many bytes of messages and message text the
// store holds in memory at once, and how long a call waits for its share
// before it fails with ErrBusy. Call it before the store is used.
func (db *DB) SetMemoryBudget(bytes int64, wait time.Duration) {
	db.budget = newMemoryBudget(bytes, wait)
}
