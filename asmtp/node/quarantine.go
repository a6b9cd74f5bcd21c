package node

import (
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
)

// quarantine keeps PolderCast-style records of misbehaving peers: strikes
// for minor offences, and a quarantine (connections refused both ways)
// that is lifted after a while. At most MaxPeerRecords are kept; when full,
// the record that expires first is forgotten.
type quarantine struct {
	duration time.Duration

	mu      sync.Mutex
	records map[keys.PublicKey]*peerRecord
}

type peerRecord struct {
	strikes int
	since   time.Time // first strike of the current window
	until   time.Time // quarantined until; zero if not quarantined
}

// expiry is when the record stops mattering.
func (r *peerRecord) expiry(d time.Duration) time.Time {
	if r.until.After(r.since.Add(d)) {
		return r.until
	}
	return r.since.Add(d)
}

func newQuarantine(d time.Duration) *quarantine {
	return &quarantine{duration: d, records: make(map[keys.PublicKey]*peerRecord)}
}

// blocked reports whether id is quarantined at now.
func (q *quarantine) blocked(id keys.PublicKey, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	r := q.records[id]
	return r != nil && now.Before(r.until)
}

// strike records a minor offence and reports whether it quarantined id:
// MaxStrikes within the quarantine duration do.
func (q *quarantine) strike(id keys.PublicKey, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	r := q.record(id, now)
	if now.Sub(r.since) > q.duration {
		r.strikes, r.since = 0, now
	}
	r.strikes++
	if r.strikes < MaxStrikes {
		return false
	}
	r.strikes, r.until = 0, now.Add(q.duration)
	return true
}

// quarantine refuses id from now for the quarantine duration.
func (q *quarantine) quarantine(id keys.PublicKey, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	r := q.record(id, now)
	r.strikes, r.until = 0, now.Add(q.duration)
}

// record returns id's record, creating it (and evicting when full).
// Callers hold mu.
func (q *quarantine) record(id keys.PublicKey, now time.Time) *peerRecord {
	if r := q.records[id]; r != nil {
		return r
	}
	if len(q.records) >= MaxPeerRecords {
		var victim keys.PublicKey
		var first time.Time
		for k, r := range q.records {
			if e := r.expiry(q.duration); first.IsZero() || e.Before(first) {
				victim, first = k, e
			}
		}
		delete(q.records, victim)
	}
	r := &peerRecord{since: now}
	q.records[id] = r
	return r
}
