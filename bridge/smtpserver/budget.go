package smtpserver

import (
	"container/list"
	"context"
	"sync"
)

// memoryBudget bounds the bytes of messages held in memory at once across
// all sessions: a message is read from its spool file only once its size
// is granted, first come first served, and the grant is returned when
// Queue.Submit is done with it.
type memoryBudget struct {
	mu      sync.Mutex
	free    int64
	waiters list.List // of *budgetWaiter, in arrival order
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed when granted
}

func newMemoryBudget(n int64) *memoryBudget { return &memoryBudget{free: n} }

// acquire waits until n bytes are granted, or ctx ends.
func (b *memoryBudget) acquire(ctx context.Context, n int64) error {
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.free >= n {
		b.free -= n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	elem := b.waiters.PushBack(w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted while ctx ended: give it back
		b.free += n
	default:
		b.waiters.Remove(elem)
	}
	b.grantLocked()
	return ctx.Err()
}

// release returns n bytes.
func (b *memoryBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
	b.grantLocked()
}

// grantLocked grants waiters in order while the first one fits.
func (b *memoryBudget) grantLocked() {
	for e := b.waiters.Front(); e != nil; e = b.waiters.Front() {
		w := e.Value.(*budgetWaiter)
		if w.n > b.free {
			return
		}
		b.free -= w.n
		b.waiters.Remove(e)
		close(w.ready)
	}
}

// available is the budget not granted.
func (b *memoryBudget) available() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.free
}
