package inbound

import (
	"time"

	"github.com/asmtp/asmtp/asmtp/mail"
)

// Defaults of Limits.
const (
	DefaultReplayMemory = 100000 // delivered message ids remembered per account
	// DefaultMaxPendingBytes is the chunk data held for incomplete
	// messages per account: two messages of the largest size.
	DefaultMaxPendingBytes = 2 * mail.MaxMessageSize
)

// Limits bound what a Worker keeps of incomplete and delivered messages.
// Zero values mean the defaults (SetDefaults).
type Limits struct {
	// ReassemblyTimeout drops an incomplete inbound message that got no
	// chunk for this long. Default asmtp/mail.DefaultTimeout (24 h).
	ReassemblyTimeout time.Duration
	// MaxPendingMessages and MaxPendingBytes bound the incomplete inbound
	// messages held per account. Defaults asmtp/mail.DefaultMaxPending
	// and DefaultMaxPendingBytes.
	MaxPendingMessages int
	MaxPendingBytes    int64
	// ReplayMemory is how many delivered message ids are remembered per
	// account, to ignore replays. Default DefaultReplayMemory.
	ReplayMemory int
}

// SetDefaults replaces zero values with the defaults.
func (l *Limits) SetDefaults() {
	if l.ReassemblyTimeout <= 0 {
		l.ReassemblyTimeout = mail.DefaultTimeout
	}
	if l.MaxPendingMessages <= 0 {
		l.MaxPendingMessages = mail.DefaultMaxPending
	}
	if l.MaxPendingBytes < mail.ChunkDataSize {
		l.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if l.ReplayMemory <= 0 {
		l.ReplayMemory = DefaultReplayMemory
	}
}
