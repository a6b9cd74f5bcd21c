package smtpserver

import (
	"sync"
	"time"
)

// ThrottleOptions bound failed logins per source address, as the IMAP
// server does: after MaxFailures consecutive failures the address must wait
// Backoff, doubling with each further failure up to MaxBackoff; a success
// clears it. (imapserver's throttle is unexported; this is the same rule.)
type ThrottleOptions struct {
	MaxFailures int           // default 5
	Backoff     time.Duration // default 1s
	MaxBackoff  time.Duration // default 5m
	MaxSources  int           // addresses remembered; default 10000
}

type throttle struct {
	opts ThrottleOptions
	now  func() time.Time

	mu      sync.Mutex
	sources map[string]*failures
}

type failures struct {
	count int
	until time.Time // no attempts before this
	last  time.Time
}

func newThrottle(opts ThrottleOptions) *throttle {
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	if opts.MaxSources <= 0 {
		opts.MaxSources = 10000
	}
	return &throttle{opts: opts, now: time.Now, sources: make(map[string]*failures)}
}

// wait returns how long source must still wait before trying again.
func (t *throttle) wait(source string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.sources[source]
	if f == nil {
		return 0
	}
	return max(0, f.until.Sub(t.now()))
}

func (t *throttle) failed(source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	f := t.sources[source]
	if f == nil {
		if len(t.sources) >= t.opts.MaxSources {
			t.evictLocked()
		}
		f = &failures{}
		t.sources[source] = f
	}
	f.count++
	f.last = now
	if over := f.count - t.opts.MaxFailures; over >= 0 {
		backoff := t.opts.MaxBackoff
		if over < 30 {
			backoff = min(t.opts.MaxBackoff, t.opts.Backoff<<over)
		}
		f.until = now.Add(backoff)
	}
}

func (t *throttle) succeeded(source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sources, source)
}

// evictLocked forgets the source whose last failure is oldest.
func (t *throttle) evictLocked() {
	var oldest string
	var oldestAt time.Time
	for src, f := range t.sources {
		if oldest == "" || f.last.Before(oldestAt) {
			oldest, oldestAt = src, f.last
		}
	}
	delete(t.sources, oldest)
}
