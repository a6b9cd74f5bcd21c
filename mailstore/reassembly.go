package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/asmtp/asmtp/mailstore/reassembly"
)

// The reassembly buffer holds the chunks of inbound messages that are not
// complete yet, per account, in mailstore/reassembly's tables (migration
// 2); AppendInbound appends a finished message to INBOX and records it
// appended in one transaction, so a message is appended once and later
// copies are ignored. The store treats keys, ids and topics as opaque
// bytes; the bridge decides what they mean.

// The reassembly's types, under the names the bridge uses.
type (
	ReassemblyLimits = reassembly.Limits
	InboundChunk     = reassembly.Chunk
	ChunkStatus      = reassembly.Status
	PendingMessage   = reassembly.Pending
	ChunkResult      = reassembly.Result
)

const (
	ChunkHeld      = reassembly.ChunkHeld
	ChunkComplete  = reassembly.ChunkComplete
	ChunkDuplicate = reassembly.ChunkDuplicate
	ChunkReplay    = reassembly.ChunkReplay
)

// ErrChunkMismatch: a chunk disagrees with the chunks of its message already
// held (count, total or kind); it was not stored.
var ErrChunkMismatch = reassembly.ErrMismatch

// AddChunk stores one chunk of a multi-chunk message received at now
// (reassembly.Add). When the status is ChunkComplete the caller reads the
// chunks and calls AppendInbound.
//
// The chunk is committed without waiting for the disk (see writeRelaxed):
// it survives a crash of the process, and of the machine once any later
// write of the store has committed, such as SetInboundCursors or
// AppendInbound. A caller that reads chunks from a durable source must not
// record its progress past a chunk by other means than such a write.
func (db *DB) AddChunk(ctx context.Context, account string, c InboundChunk, now time.Time, lim ReassemblyLimits) (ChunkResult, error) {
	var out ChunkResult
	err := db.writeRelaxed(ctx, func(tx *sql.Tx) ([]change, error) {
		var err error
		out, err = reassembly.Add(ctx, tx, account, c, now, lim)
		return nil, err
	})
	if err != nil {
		return ChunkResult{}, fmt.Errorf("add chunk for %s: %w", account, err)
	}
	return out, nil
}

// Chunks returns the chunks held for a message, by index.
func (db *DB) Chunks(ctx context.Context, account string, sender [32]byte, id [16]byte) ([]InboundChunk, error) {
	out, err := reassembly.Chunks(ctx, db.r, account, sender, id)
	if err != nil {
		return nil, fmt.Errorf("chunks of %x for %s: %w", id, account, err)
	}
	return out, nil
}

// CompleteMessages lists the messages whose chunks are all held but which
// were not appended (a crash between the last chunk and AppendInbound).
func (db *DB) CompleteMessages(ctx context.Context, account string) ([]PendingMessage, error) {
	msgs, err := reassembly.Complete(ctx, db.r, account)
	if err != nil {
		return nil, fmt.Errorf("complete messages of %s: %w", account, err)
	}
	return msgs, nil
}

// ExpireChunks drops the incomplete messages that got no chunk since
// idleSince and returns them.
func (db *DB) ExpireChunks(ctx context.Context, account string, idleSince time.Time) ([]PendingMessage, error) {
	var out []PendingMessage
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		var err error
		out, err = reassembly.Expire(ctx, tx, account, idleSince)
		return nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("expire chunks of %s: %w", account, err)
	}
	return out, nil
}

// AppendInbound appends a finished inbound message to the account's INBOX,
// records (sender, id) as appended and drops its chunks, in one
// transaction; IDLE sessions hear of it after the commit. If the message was
// appended before, nothing changes and appended is false. Parsing and
// storing hold the message's share of the memory budget (ErrBusy when it
// stays spent). The message is head followed by body, head nil or its
// header section ending with the blank line: a caller that rewrote the
// header passes it beside the body it left alone instead of joining them
// in a copy of the message.
func (db *DB) AppendInbound(ctx context.Context, account string, sender [32]byte, id [16]byte, head, body []byte, now time.Time) (a Appended, appended bool, err error) {
	release, err := db.budget.Acquire(ctx, appendCost(int64(len(head)+len(body))))
	if err != nil {
		return Appended{}, false, fmt.Errorf("append %x to %s: %w", id, account, err)
	}
	defer release()
	p, err := prepareMessage(head, body, nil, now)
	if err != nil {
		return Appended{}, false, fmt.Errorf("append %x to %s: %w", id, account, err)
	}
	err = db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		a, appended = Appended{}, false
		done, err := reassembly.Appended(ctx, tx, account, sender, id)
		if err != nil || done {
			return nil, err
		}
		var c change
		if a, c, err = insertMessage(ctx, tx, account, Inbox, p); err != nil {
			return nil, err
		}
		if appended, err = reassembly.MarkAppended(ctx, tx, account, sender, id, now); err != nil {
			return nil, err
		}
		return []change{c}, nil
	})
	if err != nil {
		return Appended{}, false, fmt.Errorf("append %x to %s: %w", id, account, err)
	}
	return a, appended, nil
}

// MessageState reports whether AppendInbound appended (sender, id) (as
// IsAppended) and how many of its chunks the buffer holds.
func (db *DB) MessageState(ctx context.Context, account string, sender [32]byte, id [16]byte) (appended bool, held int, err error) {
	appended, err = reassembly.Appended(ctx, db.r, account, sender, id)
	if err == nil && !appended {
		held, err = reassembly.Held(ctx, db.r, account, sender, id)
	}
	if err != nil {
		return false, 0, fmt.Errorf("state of %x for %s: %w", id, account, err)
	}
	return appended, held, nil
}

// IsAppended reports whether AppendInbound appended (sender, id) and the
// record is still kept (ForgetAppended).
func (db *DB) IsAppended(ctx context.Context, account string, sender [32]byte, id [16]byte) (bool, error) {
	ok, err := reassembly.Appended(ctx, db.r, account, sender, id)
	if err != nil {
		return false, fmt.Errorf("appended %x to %s: %w", id, account, err)
	}
	return ok, nil
}

// ForgetAppended bounds the record of appended messages: it keeps the
// newest keep entries of the account and returns how many it forgot.
func (db *DB) ForgetAppended(ctx context.Context, account string, keep int) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		var err error
		n, err = reassembly.ForgetAppended(ctx, tx, account, keep)
		return nil, err
	})
	if err != nil {
		return 0, fmt.Errorf("forget appended messages of %s: %w", account, err)
	}
	return n, nil
}

// InboundCursor returns how far the account has read topic (0: from the
// start).
func (db *DB) InboundCursor(ctx context.Context, account string, topic []byte) (int64, error) {
	var c int64
	err := db.r.QueryRowContext(ctx, "SELECT cursor FROM inbound_cursors WHERE account = ? AND topic = ?", account, topic).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("inbound cursor of %s: %w", account, err)
	}
	return c, nil
}

// SetInboundCursors records how far the account has read each topic
// (topic as a string of its bytes → cursor); cursors only move forward.
func (db *DB) SetInboundCursors(ctx context.Context, account string, cursors map[string]int64) error {
	if len(cursors) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		for topic, c := range cursors {
			if _, err := tx.ExecContext(ctx, `INSERT INTO inbound_cursors (account, topic, cursor) VALUES (?, ?, ?)
				ON CONFLICT (account, topic) DO UPDATE SET cursor = max(cursor, excluded.cursor)`, account, []byte(topic), c); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		return fmt.Errorf("inbound cursors of %s: %w", account, err)
	}
	return nil
}
