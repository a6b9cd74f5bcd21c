package mail

import (
	"fmt"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
)

// Defaults for an Assembler.
const (
	// DefaultMaxPending is how many messages may be in reassembly at once.
	DefaultMaxPending = 64
	// DefaultMaxPendingBytes bounds the chunk data held: two messages of the
	// largest size.
	DefaultMaxPendingBytes = 2 * MaxMessageSize
	// DefaultMaxCompleted is how many completed message ids are remembered
	// to ignore replays (about 50 bytes each).
	DefaultMaxCompleted = 10000
	// DefaultTimeout is how long a message in reassembly waits for its next
	// chunk. It is long because a missing chunk can still arrive from a
	// later history query to another node.
	DefaultTimeout = 24 * time.Hour
)

// AssemblerConfig bounds an Assembler.
type AssemblerConfig struct {
	// MaxPending is the number of messages in reassembly; at least 1.
	MaxPending int
	// MaxPendingBytes bounds the chunk data held for them; at least
	// MaxMessageSize so that any one message can complete.
	MaxPendingBytes int
	// MaxCompleted is the number of completed message ids remembered, the
	// oldest forgotten first; at least 1.
	MaxCompleted int
	// Timeout drops a message in reassembly that got no new chunk for
	// this long; positive.
	Timeout time.Duration
}

// DefaultAssemblerConfig returns the default bounds.
func DefaultAssemblerConfig() AssemblerConfig {
	return AssemblerConfig{
		MaxPending:      DefaultMaxPending,
		MaxPendingBytes: DefaultMaxPendingBytes,
		MaxCompleted:    DefaultMaxCompleted,
		Timeout:         DefaultTimeout,
	}
}

func (cfg AssemblerConfig) validate() error {
	switch {
	case cfg.MaxPending < 1:
		return fmt.Errorf("assembler config: MaxPending %d, want ≥ 1", cfg.MaxPending)
	case cfg.MaxPendingBytes < MaxMessageSize:
		return fmt.Errorf("assembler config: MaxPendingBytes %d, want ≥ %d", cfg.MaxPendingBytes, MaxMessageSize)
	case cfg.MaxCompleted < 1:
		return fmt.Errorf("assembler config: MaxCompleted %d, want ≥ 1", cfg.MaxCompleted)
	case cfg.Timeout <= 0:
		return fmt.Errorf("assembler config: Timeout %v, want > 0", cfg.Timeout)
	}
	return nil
}

// Message is a reassembled message.
type Message struct {
	Sender keys.SharedKey
	ID     MessageID
	Kind   Kind
	// Data is the whole message: RFC 5322 bytes for KindMail, raw text for
	// KindLegacyText (see FormatLegacy).
	Data []byte
}

// Status says what Add did with a chunk.
type Status int

const (
	// StatusPending: the chunk was stored; the message is not complete.
	StatusPending Status = iota + 1
	// StatusComplete: the chunk completed the message (Result.Message).
	StatusComplete
	// StatusDuplicate: the chunk was already held; it was ignored.
	StatusDuplicate
	// StatusReplay: the message was already completed; the chunk was ignored.
	StatusReplay
)

// String names the status.
func (s Status) String() string {
	switch s {
	case StatusPending:
		return "pending"
	case StatusComplete:
		return "complete"
	case StatusDuplicate:
		return "duplicate"
	case StatusReplay:
		return "replay"
	}
	return fmt.Sprintf("status-%d", int(s))
}

// DropReason says why a message in reassembly was dropped.
type DropReason int

const (
	// DropTimeout: no new chunk for AssemblerConfig.Timeout.
	DropTimeout DropReason = iota + 1
	// DropFull: the oldest message made room for a newer one.
	DropFull
)

// String names the reason.
func (r DropReason) String() string {
	switch r {
	case DropTimeout:
		return "timeout"
	case DropFull:
		return "full"
	}
	return fmt.Sprintf("reason-%d", int(r))
}

// Dropped describes a message given up before it was complete.
type Dropped struct {
	Sender   keys.SharedKey
	ID       MessageID
	Received int // chunks held when it was dropped
	Count    int // chunks of the message
	Reason   DropReason
}

// Result is the outcome of Add.
type Result struct {
	Status Status
	// Message is the completed message when Status is StatusComplete.
	Message Message
	// Dropped lists the messages given up during this call: timed out, or
	// evicted to make room for the chunk. Callers log them.
	Dropped []Dropped
}

// messageKey scopes message ids to their sender, so that one contact cannot
// interfere with another's messages.
type messageKey struct {
	sender keys.SharedKey
	id     MessageID
}

// pending is a message in reassembly.
type pending struct {
	kind     Kind
	count    int
	total    int
	data     [][]byte // by index; nil when not received
	received int
	bytes    int
	last     time.Time // when the last new chunk arrived
	seq      uint64    // arrival order of the first chunk, breaks ties
}

// Assembler reassembles messages from chunks in any order: duplicate chunks
// and chunks of already completed messages are ignored, and each message is
// returned once. It holds bounded memory (AssemblerConfig). It reads no
// clock: callers pass the time. It is not safe for concurrent use.
type Assembler struct {
	cfg          AssemblerConfig
	pending      map[messageKey]*pending
	pendingBytes int
	seq          uint64

	completed     map[messageKey]struct{}
	completedRing []messageKey // oldest at completedNext once full
	completedNext int
}

// NewAssembler returns an empty Assembler with the given bounds.
func NewAssembler(cfg AssemblerConfig) (*Assembler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Assembler{
		cfg:       cfg,
		pending:   make(map[messageKey]*pending),
		completed: make(map[messageKey]struct{}),
	}, nil
}

// Pending returns the number of messages in reassembly and the chunk data
// bytes held for them.
func (a *Assembler) Pending() (messages, bytes int) { return len(a.pending), a.pendingBytes }

// errInconsistent wraps ErrMalformed for a chunk that disagrees with the
// chunks of its message already held.
var errInconsistent = fmt.Errorf("%w: chunk disagrees with earlier chunks of its message", ErrMalformed)

// Add takes one opened chunk received at now. It first drops messages that
// timed out. A chunk that fails Chunk.Validate or disagrees with earlier
// chunks of its message is refused with an error wrapping ErrMalformed (or
// ErrKind); the message in reassembly is kept, and Result.Dropped is still
// filled in.
func (a *Assembler) Add(now time.Time, c Chunk) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, fmt.Errorf("assemble: %w", err)
	}
	key := messageKey{sender: c.Sender, id: c.ID}
	if _, done := a.completed[key]; done {
		return Result{Status: StatusReplay}, nil
	}
	res := Result{Dropped: a.Expire(now)}
	p, ok := a.pending[key]
	if ok && (p.kind != c.Kind || p.count != int(c.Count) || p.total != int(c.Total)) {
		return res, fmt.Errorf("assemble %s chunk %d/%d: %w", c.ID, c.Index, c.Count, errInconsistent)
	}
	if ok && p.data[c.Index] != nil {
		res.Status = StatusDuplicate
		return res, nil
	}
	if c.Count == 1 { // not pending: pending messages have several chunks
		a.remember(key)
		res.Status = StatusComplete
		res.Message = Message{Sender: c.Sender, ID: c.ID, Kind: c.Kind, Data: append([]byte{}, c.Data...)}
		return res, nil
	}
	if !ok {
		for len(a.pending) >= a.cfg.MaxPending {
			d, ok := a.evictOldest(key)
			if !ok {
				break
			}
			res.Dropped = append(res.Dropped, d)
		}
		a.seq++
		p = &pending{kind: c.Kind, count: int(c.Count), total: int(c.Total), data: make([][]byte, c.Count), seq: a.seq}
		a.pending[key] = p
	}
	for a.pendingBytes+len(c.Data) > a.cfg.MaxPendingBytes {
		// Once only key is left this holds: its data fits in Total ≤ MaxPendingBytes.
		d, ok := a.evictOldest(key)
		if !ok {
			break
		}
		res.Dropped = append(res.Dropped, d)
	}
	p.data[c.Index] = append([]byte{}, c.Data...)
	p.received++
	p.bytes += len(c.Data)
	a.pendingBytes += len(c.Data)
	p.last = now
	if p.received < p.count {
		res.Status = StatusPending
		return res, nil
	}
	a.forget(key, p)
	a.remember(key)
	res.Status = StatusComplete
	res.Message = Message{Sender: c.Sender, ID: c.ID, Kind: c.Kind, Data: concat(p.data, p.total)}
	return res, nil
}

// Expire drops the messages in reassembly that got no new chunk for the
// configured timeout, oldest first. Add calls it; call it also from a timer
// when no chunks arrive.
func (a *Assembler) Expire(now time.Time) []Dropped {
	var dropped []Dropped
	for {
		key, p, ok := a.oldest(messageKey{}, false)
		if !ok || now.Sub(p.last) < a.cfg.Timeout {
			return dropped
		}
		a.forget(key, p)
		dropped = append(dropped, Dropped{Sender: key.sender, ID: key.id, Received: p.received, Count: p.count, Reason: DropTimeout})
	}
}

// evictOldest drops the least recently active message other than keep, if
// there is one.
func (a *Assembler) evictOldest(keep messageKey) (Dropped, bool) {
	key, p, ok := a.oldest(keep, true)
	if !ok {
		return Dropped{}, false
	}
	a.forget(key, p)
	return Dropped{Sender: key.sender, ID: key.id, Received: p.received, Count: p.count, Reason: DropFull}, true
}

// oldest finds the least recently active message, skipping skip if
// useSkip. Linear in MaxPending.
func (a *Assembler) oldest(skip messageKey, useSkip bool) (messageKey, *pending, bool) {
	var (
		bestKey messageKey
		best    *pending
	)
	for k, p := range a.pending {
		if useSkip && k == skip {
			continue
		}
		if best == nil || p.last.Before(best.last) || (p.last.Equal(best.last) && p.seq < best.seq) {
			bestKey, best = k, p
		}
	}
	return bestKey, best, best != nil
}

func (a *Assembler) forget(key messageKey, p *pending) {
	a.pendingBytes -= p.bytes
	delete(a.pending, key)
}

// remember records a completed message, forgetting the oldest beyond
// MaxCompleted.
func (a *Assembler) remember(key messageKey) {
	if len(a.completedRing) < a.cfg.MaxCompleted {
		a.completedRing = append(a.completedRing, key)
	} else {
		delete(a.completed, a.completedRing[a.completedNext])
		a.completedRing[a.completedNext] = key
		a.completedNext = (a.completedNext + 1) % a.cfg.MaxCompleted
	}
	a.completed[key] = struct{}{}
}

func concat(parts [][]byte, total int) []byte {
	out := make([]byte, 0, total)
	for _, d := range parts {
		out = append(out, d...)
	}
	return out
}

// Join rebuilds a message from all of its chunks, in any order, for callers
// that keep chunks in their own store. Every chunk must be valid, belong to
// the same message (sender, id, kind, count, total) and appear exactly once.
func Join(chunks []Chunk) (Message, error) {
	if len(chunks) == 0 {
		return Message{}, fmt.Errorf("join: %w: no chunks", ErrMalformed)
	}
	first := chunks[0]
	if len(chunks) != int(first.Count) {
		return Message{}, fmt.Errorf("join %s: %w: %d chunks, message has %d", first.ID, ErrMalformed, len(chunks), first.Count)
	}
	parts := make([][]byte, len(chunks))
	for _, c := range chunks {
		if err := c.Validate(); err != nil {
			return Message{}, fmt.Errorf("join: %w", err)
		}
		if c.Sender != first.Sender || c.ID != first.ID || c.Kind != first.Kind || c.Count != first.Count || c.Total != first.Total {
			return Message{}, fmt.Errorf("join %s chunk %d: %w", first.ID, c.Index, errInconsistent)
		}
		if parts[c.Index] != nil {
			return Message{}, fmt.Errorf("join %s: %w: chunk %d twice", first.ID, ErrMalformed, c.Index)
		}
		parts[c.Index] = c.Data
		if parts[c.Index] == nil {
			parts[c.Index] = []byte{} // an empty message's only chunk
		}
	}
	return Message{Sender: first.Sender, ID: first.ID, Kind: first.Kind, Data: concat(parts, int(first.Total))}, nil
}
