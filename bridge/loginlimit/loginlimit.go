// Package loginlimit makes the bridge's password checks safe to offer to
// anyone who can connect: IMAP LOGIN and AUTHENTICATE and SMTP AUTH all go
// through one Limiter.
//
// A password check is expensive on purpose (Argon2id: about 19 MiB and
// tens of milliseconds), so the Limiter runs at most Options.MaxChecks of
// them at once; other attempts wait their turn, and since each waits on its
// own connection's goroutine, their number is bounded by the servers'
// connection limits, not by the memory a check needs.
//
// Guessing is slowed the way Dovecot's auth penalty slows it: by delay, not
// by lock-out. Each attempt counts as a failure of its target account and
// of its source (an IP address; an IPv6 /64; all of loopback is one source,
// since any 127.x.y.z can be bound there) before its check starts, and only
// a success takes back its own count, never the failures of other attempts:
// a login to one's own account does not clear the guesses at another.
// After FreeFailures, the checks for an account, and from a source, are
// spaced further and further apart (Penalty, doubling up to MaxPenalty, 1 s,
// for an account and MaxSourcePenalty, 250 ms, for a source), so an account
// gets at most about one guess a second however many connections, sources
// and interleaved good logins an attacker uses. The
// owner's right password is checked in its turn, after at most MaxWait:
// it is delayed, never locked out. An attempt whose turn would come later
// than MaxWait (only a flood of concurrent attempts makes the queue that
// long) is refused with a BusyError at once, without being checked.
package loginlimit

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"
)

// Options configure a Limiter; zero fields take the defaults.
type Options struct {
	MaxChecks    int           // password checks at once; default GOMAXPROCS, at least 2
	FreeFailures int           // failures per account or source before the penalty; default 5
	Penalty      time.Duration // first spacing after FreeFailures; default 250 ms
	MaxPenalty   time.Duration // spacing cap for an account; default 1 s
	// MaxSourcePenalty is the spacing cap for a source; default 250 ms.
	// It is lower than an account's because a source may be many users
	// (all of loopback is one): it only has to stop one source from
	// spraying guesses over many accounts quickly.
	MaxSourcePenalty time.Duration
	MaxWait          time.Duration // longest wait for a turn; default 4 s
	Forget           time.Duration // failures are forgotten this long after the last; default 15 min
	MaxKeys          int           // accounts and sources remembered; default 10000
}

// BusyError refuses an attempt without checking it: the account's or the
// source's queue of checks is longer than Options.MaxWait.
type BusyError struct {
	RetryIn time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("too many login attempts; try again in %d s", int(e.RetryIn.Seconds())+1)
}

// Limiter schedules password checks. It is safe for concurrent use.
type Limiter struct {
	opts   Options
	now    func() time.Time
	checks chan struct{} // one token per check running

	mu   sync.Mutex
	keys map[string]*record
}

// record is the failure history of one account or source.
type record struct {
	failures int
	next     time.Time // no check for this key starts before this
	last     time.Time // the last attempt
}

// New returns a Limiter with opts, defaults filled in.
func New(opts Options) *Limiter {
	if opts.MaxChecks <= 0 {
		opts.MaxChecks = max(2, runtime.GOMAXPROCS(0))
	}
	if opts.FreeFailures <= 0 {
		opts.FreeFailures = 5
	}
	if opts.Penalty <= 0 {
		opts.Penalty = 250 * time.Millisecond
	}
	if opts.MaxPenalty <= 0 {
		opts.MaxPenalty = time.Second
	}
	if opts.MaxSourcePenalty <= 0 {
		opts.MaxSourcePenalty = 250 * time.Millisecond
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 4 * time.Second
	}
	if opts.Forget <= 0 {
		opts.Forget = 15 * time.Minute
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 10000
	}
	return &Limiter{opts: opts, now: time.Now, checks: make(chan struct{}, opts.MaxChecks), keys: make(map[string]*record)}
}

// Source is the throttled unit of a client address: its IP address, the
// /64 of an IPv6 address (one host's usual share), and "loopback" for all
// of 127.0.0.0/8 and ::1.
func Source(remote net.Addr) string {
	if remote == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		host = remote.String()
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return host
	case ip.IsLoopback():
		return "loopback"
	case ip.To4() != nil:
		return ip.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// Check runs verify, the password check of an attempt at account from
// source, in its turn, and returns its result. Refused attempts return a
// *BusyError; an attempt whose ctx ends while it waits returns ctx's error
// and keeps its failure.
func (l *Limiter) Check(ctx context.Context, source, account string, verify func() (bool, error)) (bool, error) {
	start, err := l.reserve(source, account)
	if err != nil {
		return false, err
	}
	if wait := start.Sub(l.now()); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false, fmt.Errorf("login: waiting for its turn: %w", ctx.Err())
		}
	}
	select {
	case l.checks <- struct{}{}:
	case <-ctx.Done():
		return false, fmt.Errorf("login: waiting for a password check: %w", ctx.Err())
	}
	ok, err := verify()
	<-l.checks
	if ok || err != nil {
		l.refund(source, account)
	}
	return ok, err
}

// reserve records the attempt as a failure of source and account and
// books its turn: the later of their next free times, each then pushed on
// by its penalty.
func (l *Limiter) reserve(source, account string) (time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	src, acct := l.recordLocked("s\x00"+source, now), l.recordLocked("a\x00"+account, now)
	start := now
	for _, r := range []*record{src, acct} {
		if r.next.After(start) {
			start = r.next
		}
	}
	if wait := start.Sub(now); wait > l.opts.MaxWait {
		return time.Time{}, &BusyError{RetryIn: wait - l.opts.MaxWait}
	}
	for r, limit := range map[*record]time.Duration{src: l.opts.MaxSourcePenalty, acct: l.opts.MaxPenalty} {
		r.failures++
		r.last = now
		r.next = start.Add(l.penalty(r.failures, limit))
	}
	return start, nil
}

// penalty is the spacing after a key's failures-th failure, at most limit.
func (l *Limiter) penalty(failures int, limit time.Duration) time.Duration {
	over := failures - l.opts.FreeFailures - 1
	switch {
	case over < 0:
		return 0
	case over >= 30:
		return limit
	}
	return min(limit, l.opts.Penalty<<over)
}

// refund takes back the failure an attempt recorded, when it succeeded or
// could not be checked: only its own, never earlier ones.
func (l *Limiter) refund(source, account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range []string{"s\x00" + source, "a\x00" + account} {
		if r := l.keys[k]; r != nil && r.failures > 0 {
			r.failures--
		}
	}
}

// recordLocked returns key's record, forgetting an old one and making room
// for a new one.
func (l *Limiter) recordLocked(key string, now time.Time) *record {
	r := l.keys[key]
	if r != nil && l.stale(r, now) {
		*r = record{}
	}
	if r == nil {
		if len(l.keys) >= l.opts.MaxKeys {
			l.evictLocked(now)
		}
		r = &record{}
		l.keys[key] = r
	}
	return r
}

func (l *Limiter) stale(r *record, now time.Time) bool {
	return now.Sub(r.last) > l.opts.Forget && !r.next.After(now)
}

// evictLocked forgets stale keys, or, if none are, the one whose last
// attempt is oldest.
func (l *Limiter) evictLocked(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for k, r := range l.keys {
		if l.stale(r, now) {
			delete(l.keys, k)
			continue
		}
		if oldest == "" || r.last.Before(oldestAt) {
			oldest, oldestAt = k, r.last
		}
	}
	if len(l.keys) >= l.opts.MaxKeys {
		delete(l.keys, oldest)
	}
}
