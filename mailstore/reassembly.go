package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The reassembly buffer holds the chunks of inbound messages that are not
// complete yet, per account, keyed by (sender key, message id, index), so a
// restart loses none and a duplicate chunk is stored once. DeliverInbound
// appends a finished message to INBOX, records (sender, id) as delivered
// and clears its chunks in one transaction: a message is delivered once,
// and chunks or copies arriving later (replays, retries after a crash on
// the sender's side) are recognised and ignored. The store treats keys,
// ids and topics as opaque bytes; the bridge decides what they mean.

// ReassemblyLimits bound the chunks held for one account.
type ReassemblyLimits struct {
	// MaxMessages is the number of incomplete messages held; a new one
	// beyond it evicts the one idle longest. At least 1.
	MaxMessages int
	// MaxBytes bounds the chunk data held; going over evicts the messages
	// idle longest (never the one the chunk belongs to).
	MaxBytes int64
}

// InboundChunk is one opened chunk of an inbound message.
type InboundChunk struct {
	Sender [32]byte // the key that sealed it; reassembly is scoped to it
	ID     [16]byte // message id, the same in every chunk
	Kind   uint8
	Index  uint16
	Count  uint16
	Total  uint32
	Data   []byte
}

// ChunkStatus says what AddChunk did.
type ChunkStatus int

const (
	ChunkHeld      ChunkStatus = iota + 1 // stored; the message is not complete
	ChunkComplete                         // every chunk of the message is held: read them with Chunks
	ChunkDuplicate                        // already held, message still incomplete; ignored
	ChunkReplay                           // the message was already delivered; ignored
)

// PendingMessage describes an incomplete message in the buffer.
type PendingMessage struct {
	Sender    [32]byte
	ID        [16]byte
	Held      int
	Count     int
	LastChunk time.Time
}

// ChunkResult is the outcome of AddChunk.
type ChunkResult struct {
	Status  ChunkStatus
	Held    int              // chunks of the message held after the call
	Evicted []PendingMessage // incomplete messages dropped to make room
}

// ErrChunkMismatch: a chunk disagrees with the chunks of its message already
// held (count, total or kind); it was not stored.
var ErrChunkMismatch = errors.New("mailstore: chunk disagrees with the chunks held for its message")

// AddChunk stores one chunk of a multi-chunk message received at now.
// A chunk of a message already delivered is a replay and a chunk already
// held a duplicate; neither is stored. When the chunk completes the message
// (or the message was complete but not yet delivered, after a crash), the
// status is ChunkComplete and the caller reads the chunks and calls
// DeliverInbound.
//
// The chunk is committed without waiting for the disk (see writeRelaxed):
// it survives a crash of the process, and of the machine once any later
// write of the store has committed, such as SetInboundCursors or
// DeliverInbound. A caller that reads chunks from a durable source must not
// record its progress past a chunk by other means than such a write.
func (db *DB) AddChunk(ctx context.Context, account string, c InboundChunk, now time.Time, lim ReassemblyLimits) (ChunkResult, error) {
	if lim.MaxMessages < 1 || lim.MaxBytes < int64(len(c.Data)) {
		return ChunkResult{}, fmt.Errorf("add chunk: limits %+v cannot hold a %d-byte chunk", lim, len(c.Data))
	}
	var out ChunkResult
	err := db.writeRelaxed(ctx, func(tx *sql.Tx) ([]change, error) {
		out = ChunkResult{}
		delivered, err := isDelivered(ctx, tx, account, c.Sender, c.ID)
		if err != nil || delivered {
			out.Status = ChunkReplay
			return nil, err
		}
		held, err := heldChunks(ctx, tx, account, c)
		if err != nil {
			return nil, err
		}
		if held.n == 0 {
			if out.Evicted, err = evict(ctx, tx, account, c, lim.MaxMessages-1, lim.MaxBytes-int64(len(c.Data))); err != nil {
				return nil, err
			}
		} else if held.count != int(c.Count) || held.total != int64(c.Total) || held.kind != int(c.Kind) {
			return nil, fmt.Errorf("message %x chunk %d/%d: %w", c.ID, c.Index, c.Count, ErrChunkMismatch)
		} else if out.Evicted, err = evict(ctx, tx, account, c, lim.MaxMessages, lim.MaxBytes-int64(len(c.Data))); err != nil {
			return nil, err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO inbound_chunks (account, sender, message_id, chunk_index, chunk_count, total, kind, received_at, data)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			account, c.Sender[:], c.ID[:], c.Index, c.Count, c.Total, c.Kind, now.UnixMilli(), c.Data)
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		out.Held = held.n + int(n)
		switch {
		case out.Held >= int(c.Count):
			out.Status = ChunkComplete
		case n == 0:
			out.Status = ChunkDuplicate
		default:
			out.Status = ChunkHeld
		}
		return nil, nil
	})
	if err != nil {
		return ChunkResult{}, fmt.Errorf("add chunk for %s: %w", account, err)
	}
	return out, nil
}

type heldSummary struct {
	n, count, kind int
	total          int64
}

func heldChunks(ctx context.Context, q querier, account string, c InboundChunk) (heldSummary, error) {
	var h heldSummary
	var count, kind sql.NullInt64
	var total sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT count(*), min(chunk_count), min(total), min(kind) FROM inbound_chunks
		WHERE account = ? AND sender = ? AND message_id = ?`, account, c.Sender[:], c.ID[:]).Scan(&h.n, &count, &total, &kind)
	h.count, h.total, h.kind = int(count.Int64), total.Int64, int(kind.Int64)
	return h, err
}

// evict drops the incomplete messages idle longest, other than c's, until
// at most maxMessages other messages and maxBytes of data are held.
func evict(ctx context.Context, tx *sql.Tx, account string, c InboundChunk, maxMessages int, maxBytes int64) ([]PendingMessage, error) {
	var dropped []PendingMessage
	for {
		others, bytes, oldest, err := pendingSummary(ctx, tx, account, c)
		if err != nil {
			return nil, err
		}
		if others <= maxMessages && bytes <= maxBytes || others == 0 {
			return dropped, nil
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM inbound_chunks WHERE account = ? AND sender = ? AND message_id = ?",
			account, oldest.Sender[:], oldest.ID[:]); err != nil {
			return nil, err
		}
		dropped = append(dropped, oldest)
	}
}

// pendingSummary counts the incomplete messages other than c's and the data
// held for all of them, and returns the one idle longest.
func pendingSummary(ctx context.Context, q querier, account string, c InboundChunk) (others int, bytes int64, oldest PendingMessage, err error) {
	msgs, err := pendingMessages(ctx, q, account, "")
	if err != nil {
		return 0, 0, oldest, err
	}
	err = q.QueryRowContext(ctx, "SELECT coalesce(sum(length(data)), 0) FROM inbound_chunks WHERE account = ?", account).Scan(&bytes)
	if err != nil {
		return 0, 0, oldest, err
	}
	for _, m := range msgs { // idle longest first
		if m.Sender == c.Sender && m.ID == c.ID {
			continue
		}
		if others == 0 {
			oldest = m
		}
		others++
	}
	return others, bytes, oldest, nil
}

// pendingMessages lists an account's incomplete messages, idle longest
// first; having filters the groups (SQL on count(*), max(chunk_count) and
// max(received_at) as held, count, last).
func pendingMessages(ctx context.Context, q querier, account, having string) ([]PendingMessage, error) {
	query := `SELECT sender, message_id, count(*) AS held, max(chunk_count) AS count, max(received_at) AS last
		FROM inbound_chunks WHERE account = ? GROUP BY sender, message_id`
	if having != "" {
		query += " HAVING " + having
	}
	rows, err := q.QueryContext(ctx, query+" ORDER BY last, min(rowid)", account)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PendingMessage
	for rows.Next() {
		var m PendingMessage
		var sender, id []byte
		var last int64
		if err := rows.Scan(&sender, &id, &m.Held, &m.Count, &last); err != nil {
			return nil, err
		}
		copy(m.Sender[:], sender)
		copy(m.ID[:], id)
		m.LastChunk = time.UnixMilli(last)
		out = append(out, m)
	}
	return out, rows.Err()
}

// Chunks returns the chunks held for a message, by index.
func (db *DB) Chunks(ctx context.Context, account string, sender [32]byte, id [16]byte) ([]InboundChunk, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT chunk_index, chunk_count, total, kind, data FROM inbound_chunks
		WHERE account = ? AND sender = ? AND message_id = ? ORDER BY chunk_index`, account, sender[:], id[:])
	if err != nil {
		return nil, fmt.Errorf("chunks of %x for %s: %w", id, account, err)
	}
	defer rows.Close()
	var out []InboundChunk
	for rows.Next() {
		c := InboundChunk{Sender: sender, ID: id}
		if err := rows.Scan(&c.Index, &c.Count, &c.Total, &c.Kind, &c.Data); err != nil {
			return nil, fmt.Errorf("chunks of %x for %s: %w", id, account, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chunks of %x for %s: %w", id, account, err)
	}
	return out, nil
}

// CompleteMessages lists the messages whose chunks are all held but which
// were not delivered (a crash between the last chunk and DeliverInbound).
func (db *DB) CompleteMessages(ctx context.Context, account string) ([]PendingMessage, error) {
	msgs, err := pendingMessages(ctx, db.r, account, "held >= count")
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
		if out, err = pendingMessages(ctx, tx, account, fmt.Sprintf("last < %d", idleSince.UnixMilli())); err != nil {
			return nil, err
		}
		for _, m := range out {
			if _, err := tx.ExecContext(ctx, "DELETE FROM inbound_chunks WHERE account = ? AND sender = ? AND message_id = ?",
				account, m.Sender[:], m.ID[:]); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire chunks of %s: %w", account, err)
	}
	return out, nil
}

// DeliverInbound appends a finished inbound message to the account's INBOX,
// records (sender, id) as delivered and drops its chunks, in one
// transaction; IDLE sessions hear of it after the commit. If the message was
// delivered before, nothing changes and delivered is false. Parsing and
// storing hold the message's share of the memory budget (ErrBusy when it
// stays spent). The message is head followed by body, head nil or its
// header section ending with the blank line: a caller that rewrote the
// header passes it beside the body it left alone instead of joining them
// in a copy of the message.
func (db *DB) DeliverInbound(ctx context.Context, account string, sender [32]byte, id [16]byte, head, body []byte, now time.Time) (a Appended, delivered bool, err error) {
	release, err := db.budget.Acquire(ctx, appendCost(int64(len(head)+len(body))))
	if err != nil {
		return Appended{}, false, fmt.Errorf("deliver %x to %s: %w", id, account, err)
	}
	defer release()
	p, err := prepareMessage(head, body, nil, now)
	if err != nil {
		return Appended{}, false, fmt.Errorf("deliver %x to %s: %w", id, account, err)
	}
	err = db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		a, delivered = Appended{}, false
		done, err := isDelivered(ctx, tx, account, sender, id)
		if err != nil || done {
			return nil, err
		}
		var c change
		if a, c, err = insertMessage(ctx, tx, account, Inbox, p); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO inbound_delivered (account, sender, message_id, delivered_at) VALUES (?, ?, ?, ?)",
			account, sender[:], id[:], now.UnixMilli()); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM inbound_chunks WHERE account = ? AND sender = ? AND message_id = ?",
			account, sender[:], id[:]); err != nil {
			return nil, err
		}
		delivered = true
		return []change{c}, nil
	})
	if err != nil {
		return Appended{}, false, fmt.Errorf("deliver %x to %s: %w", id, account, err)
	}
	return a, delivered, nil
}

// MessageState reports whether DeliverInbound delivered (sender, id) (as
// IsDelivered) and how many of its chunks the buffer holds.
func (db *DB) MessageState(ctx context.Context, account string, sender [32]byte, id [16]byte) (delivered bool, held int, err error) {
	delivered, err = isDelivered(ctx, db.r, account, sender, id)
	if err == nil && !delivered {
		var h heldSummary
		h, err = heldChunks(ctx, db.r, account, InboundChunk{Sender: sender, ID: id})
		held = h.n
	}
	if err != nil {
		return false, 0, fmt.Errorf("state of %x for %s: %w", id, account, err)
	}
	return delivered, held, nil
}

// IsDelivered reports whether DeliverInbound delivered (sender, id) and the
// record is still kept (ForgetDelivered).
func (db *DB) IsDelivered(ctx context.Context, account string, sender [32]byte, id [16]byte) (bool, error) {
	ok, err := isDelivered(ctx, db.r, account, sender, id)
	if err != nil {
		return false, fmt.Errorf("delivered %x to %s: %w", id, account, err)
	}
	return ok, nil
}

func isDelivered(ctx context.Context, q querier, account string, sender [32]byte, id [16]byte) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, "SELECT 1 FROM inbound_delivered WHERE account = ? AND sender = ? AND message_id = ?",
		account, sender[:], id[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// ForgetDelivered bounds the record of delivered messages: it keeps the
// newest keep entries of the account and returns how many it forgot.
func (db *DB) ForgetDelivered(ctx context.Context, account string, keep int) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM inbound_delivered WHERE account = ? AND delivered_at <
			(SELECT delivered_at FROM inbound_delivered WHERE account = ? ORDER BY delivered_at DESC LIMIT 1 OFFSET ?)`,
			account, account, max(keep-1, 0))
		if err != nil {
			return nil, err
		}
		n, err = res.RowsAffected()
		return nil, err
	})
	if err != nil {
		return 0, fmt.Errorf("forget delivered messages of %s: %w", account, err)
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
