package mail

import (
	"fmt"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
)

// What a receiver reassembling messages holds by default
// (mailstore/reassembly keeps the chunks; the bridge and asmtp-cli use
// these bounds).
const (
	// DefaultMaxPending is how many messages may be in reassembly at once.
	DefaultMaxPending = 64
	// DefaultMaxPendingBytes bounds the chunk data held: two messages of the
	// largest size.
	DefaultMaxPendingBytes = 2 * MaxMessageSize
	// DefaultTimeout is how long a message in reassembly waits for its next
	// chunk. It is long because a missing chunk can still arrive from a
	// later history query to another node.
	DefaultTimeout = 24 * time.Hour
)

// Message is a reassembled message.
type Message struct {
	Sender keys.SharedKey
	ID     MessageID
	Kind   Kind
	// Data is the whole message: RFC 5322 bytes for KindMail, raw text for
	// KindLegacyText (see FormatLegacy).
	Data []byte
}

// errInconsistent wraps ErrMalformed for a chunk that disagrees with the
// other chunks of its message.
var errInconsistent = fmt.Errorf("%w: chunk disagrees with earlier chunks of its message", ErrMalformed)

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

func concat(parts [][]byte, total int) []byte {
	out := make([]byte, 0, total)
	for _, d := range parts {
		out = append(out, d...)
	}
	return out
}
