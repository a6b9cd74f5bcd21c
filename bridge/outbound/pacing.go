package outbound

import "time"

// Defaults of Pacing.
const (
	DefaultRetryWindow = 4 * 24 * time.Hour
	// DefaultDelayWarning is when the sender of mail still undelivered
	// is told so, as Postfix's delay_warning_time is usually set.
	DefaultDelayWarning = 4 * time.Hour
	DefaultFirstRetry   = 30 * time.Second
	DefaultMaxRetry     = time.Hour
	DefaultWorkers      = 4
	// DefaultLookupInterval spaces the passport look-ups of unknown
	// recipients: at most 2 a second stays below the request rate peers
	// allow by default (node.DefaultQueryRate, 5 a second, which also
	// covers the node's own catch-up queries), over which they quarantine
	// the node.
	DefaultLookupInterval = 500 * time.Millisecond
)

// Pacing is how long and how hard the Worker tries. Zero values mean the
// defaults (SetDefaults).
type Pacing struct {
	// RetryWindow is how long a message is retried before it bounces.
	// Default DefaultRetryWindow.
	RetryWindow time.Duration
	// DelayWarning is how long after submission a message still in the
	// outbox gets the sender a delay report (RFC 3464 Action: delayed) in
	// INBOX, once. One at or past RetryWindow sends none. Default
	// DefaultDelayWarning.
	DelayWarning time.Duration
	// FirstRetry is the wait after the first failed attempt; it doubles
	// with each further failure up to MaxRetry. Defaults DefaultFirstRetry
	// and DefaultMaxRetry.
	FirstRetry time.Duration
	MaxRetry   time.Duration
	// Workers bounds deliveries in progress at once. Default
	// DefaultWorkers.
	Workers int
	// LookupInterval is the least time between two passport look-ups on
	// the network. Default DefaultLookupInterval.
	LookupInterval time.Duration
}

// SetDefaults replaces zero values with the defaults.
func (p *Pacing) SetDefaults() {
	if p.RetryWindow <= 0 {
		p.RetryWindow = DefaultRetryWindow
	}
	if p.DelayWarning <= 0 {
		p.DelayWarning = DefaultDelayWarning
	}
	if p.FirstRetry <= 0 {
		p.FirstRetry = DefaultFirstRetry
	}
	if p.MaxRetry <= 0 {
		p.MaxRetry = DefaultMaxRetry
	}
	if p.Workers <= 0 {
		p.Workers = DefaultWorkers
	}
	if p.LookupInterval <= 0 {
		p.LookupInterval = DefaultLookupInterval
	}
}

// backoff is the wait after attempts failed attempts.
func (p *Pacing) backoff(attempts int) time.Duration {
	if attempts >= 30 {
		return p.MaxRetry
	}
	return min(p.MaxRetry, p.FirstRetry<<attempts)
}
