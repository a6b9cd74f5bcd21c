package imapserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
	"sync"
	"time"
)

// Authenticator checks a client's credentials and names the mailstore
// account they open. It is called for LOGIN and AUTHENTICATE PLAIN; remote is
// the client's address. It should return ErrBadCredentials for wrong
// credentials and another error only for failures of its own.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string, remote net.Addr) (account string, err error)
}

// ErrBadCredentials is what an Authenticator returns for a wrong username or
// password.
var ErrBadCredentials = errors.New("imapserver: bad credentials")

// TokenAuthenticator accepts each username with its random token (a bridge
// password) and opens the account of the same name. Comparison is constant
// time over SHA-256 digests, so neither the token nor its length leaks; a
// random token needs no slow hash.
type TokenAuthenticator struct {
	tokens map[string][sha256.Size]byte
}

// NewTokenAuthenticator takes username → token.
func NewTokenAuthenticator(tokens map[string]string) *TokenAuthenticator {
	a := &TokenAuthenticator{tokens: make(map[string][sha256.Size]byte, len(tokens))}
	for user, token := range tokens {
		a.tokens[user] = sha256.Sum256([]byte(token))
	}
	return a
}

// Authenticate implements Authenticator.
func (a *TokenAuthenticator) Authenticate(_ context.Context, username, password string, _ net.Addr) (string, error) {
	want, known := a.tokens[username]
	got := sha256.Sum256([]byte(password))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !known {
		return "", ErrBadCredentials
	}
	return username, nil
}

// ThrottleOptions bound failed logins per source address: after MaxFailures
// consecutive failures the address must wait Backoff, doubling with each
// further failure up to MaxBackoff; a success clears it.
type ThrottleOptions struct {
	MaxFailures int           // default 5
	Backoff     time.Duration // default 1s
	MaxBackoff  time.Duration // default 5m
	MaxSources  int           // addresses remembered; default 10000
}

type loginThrottle struct {
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

func newLoginThrottle(opts ThrottleOptions) *loginThrottle {
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
	return &loginThrottle{opts: opts, now: time.Now, sources: make(map[string]*failures)}
}

// sourceOf is the throttled unit: the client's IP address.
func sourceOf(remote net.Addr) string {
	if remote == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		return remote.String()
	}
	return host
}

// wait returns how long the source must still wait before trying again.
func (t *loginThrottle) wait(source string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.sources[source]
	if f == nil {
		return 0
	}
	return max(0, f.until.Sub(t.now()))
}

func (t *loginThrottle) failed(source string) {
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

func (t *loginThrottle) succeeded(source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sources, source)
}

// evictLocked forgets sources whose last failure is older than MaxBackoff,
// or, if none are, the one that failed longest ago.
func (t *loginThrottle) evictLocked(now time.Time) {
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
