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

// MemoryBudget bounds the bytes held at once by the calls that hold whole
// messages or their text in memory. The store's own (SetMemoryBudget)
// covers Append, Deliver and the text part of Search, across all accounts
// and connections; the bridge's outbox worker has another, so that a
// delivery to the sender's own account, which holds its message and then
// Delivers it, never waits for itself. A call takes its share
// before it reads or parses and gives it back when done; a call that needs
// more than the whole budget runs alone. Waiters are woken on every
// release and retry; there is no queue order, which is fine for the short
// holds these are.
type MemoryBudget struct {
	mu    sync.Mutex
	total int64
	used  int64
	wait  time.Duration
	freed chan struct{} // closed and replaced on every release
}

// NewMemoryBudget returns a budget of total bytes whose Acquire waits at
// most wait.
func NewMemoryBudget(total int64, wait time.Duration) *MemoryBudget {
	return &MemoryBudget{total: total, wait: wait, freed: make(chan struct{})}
}

// Acquire takes n bytes of the budget, waiting at most b.wait for them.
func (b *MemoryBudget) Acquire(ctx context.Context, n int64) (release func(), err error) {
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

func (b *MemoryBudget) release(n int64) {
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
	db.budget = NewMemoryBudget(bytes, wait)
}
