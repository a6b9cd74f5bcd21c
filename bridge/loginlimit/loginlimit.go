// Package loginlimit slows down password guessing against the bridge's
// IMAP and SMTP servers: after a few failed logins from one address, that
// address must wait, longer after each further failure, until it succeeds.
package loginlimit

import (
	"net"
	"sync"
	"time"
)

// Options bound failed logins per source address: after MaxFailures
// consecutive failures the address must wait Backoff, doubling with each
// further failure up to MaxBackoff; a success clears it.
type Options struct {
	MaxFailures int           // default 5
	Backoff     time.Duration // default 1s
	MaxBackoff  time.Duration // default 5m
	MaxSources  int           // addresses remembered; default 10000
}

// Limiter counts failed logins per source. It is safe for concurrent use.
type Limiter struct {
	opts Options
	now  func() time.Time

	mu      sync.Mutex
	sources map[string]*failures
}

type failures struct {
	count int
	until time.Time // no attempts before this
	last  time.Time
}

// New returns a Limiter; zero fields of opts take their defaults.
func New(opts Options) *Limiter {
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
	return &Limiter{opts: opts, now: time.Now, sources: make(map[string]*failures)}
}

// Source is the throttled unit of a client: its IP address.
func Source(remote net.Addr) string {
	if remote == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		return remote.String()
	}
	return host
}

// Wait returns how long source must still wait before trying again.
func (t *Limiter) Wait(source string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.sources[source]
	if f == nil {
		return 0
	}
	return max(0, f.until.Sub(t.now()))
}

// Failed records a failed login from source.
func (t *Limiter) Failed(source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	f := t.sources[source]
	if f == nil {
		if len(t.sources) >= t.opts.MaxSources {
			t.evictLocked(now)
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

// Succeeded forgets source's failures.
func (t *Limiter) Succeeded(source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sources, source)
}

// evictLocked forgets sources whose last failure is older than MaxBackoff,
// or, if none are, the one that failed longest ago.
func (t *Limiter) evictLocked(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for src, f := range t.sources {
		if now.Sub(f.last) > t.opts.MaxBackoff && now.After(f.until) {
			delete(t.sources, src)
			continue
		}
		if oldest == "" || f.last.Before(oldestAt) {
			oldest, oldestAt = src, f.last
		}
	}
	if len(t.sources) >= t.opts.MaxSources {
		delete(t.sources, oldest)
	}
}
