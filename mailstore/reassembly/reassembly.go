// Package reassembly is the one reassembly of chunked messages, durable in
// SQLite: the bridge's mailstore and asmtp-cli's database both keep their
// incomplete messages with it.
//
// The buffer holds the chunks of messages that are not complete yet,
// per scope (the mailstore's account; asmtp-cli has one, ""), keyed by
// (sender key, message id, index), so a restart loses none and a
// duplicate chunk is stored once. Once a message is complete the caller
// reads its chunks (Chunks), joins them, stores the message and calls
// MarkAppended in the same transaction: the (sender, id) pair is recorded
// as appended and its chunks dropped, so a message is appended once,
// and chunks or copies arriving later (replays, retries after a crash on
// the sender's side) are recognised and ignored (Add's ChunkReplay).
// Limits bound what one scope holds; the messages idle longest give way.
//
// Appended means stored where the user reads it (the mailstore's INBOX,
// asmtp-cli's messages); the table keeping that record is
// inbound_delivered, its name from before the word was settled. Node
// deliveries (asmtp/node's pushes to a session) and outbound delivery
// (mailstore's outbox) are other things.
//
// The package owns the SQL, not the schema: the caller's database has the
// two tables of Schema (the mailstore adds foreign keys to its accounts),
// and every function runs on the caller's connection or transaction, so
// that storing a finished message and recording it appended commit
// together. Keys, ids and data are opaque bytes here; the message format
// (asmtp/mail) gives them their meaning.
package reassembly

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Schema creates the tables the functions use, for a database that adds
// nothing to them.
const Schema = `
CREATE TABLE inbound_chunks (
	account TEXT NOT NULL,            -- the scope
	sender BLOB NOT NULL,             -- 32-byte key that sealed the chunk
	message_id BLOB NOT NULL,         -- 16 bytes
	chunk_index INTEGER NOT NULL,
	chunk_count INTEGER NOT NULL,
	total INTEGER NOT NULL,
	kind INTEGER NOT NULL,
	received_at INTEGER NOT NULL,     -- unix milliseconds
	data BLOB NOT NULL,
	UNIQUE (account, sender, message_id, chunk_index)
);
CREATE TABLE inbound_delivered (
	account TEXT NOT NULL,
	sender BLOB NOT NULL,
	message_id BLOB NOT NULL,
	delivered_at INTEGER NOT NULL,    -- unix milliseconds
	PRIMARY KEY (account, sender, message_id)
) WITHOUT ROWID;
CREATE INDEX inbound_delivered_age ON inbound_delivered(account, delivered_at);
`

// Querier is what both *sql.DB and *sql.Tx offer. Functions that change
// more than one row need a transaction (Add, Expire, MarkAppended).
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Limits bound the chunks held for one scope.
type Limits struct {
	// MaxMessages is the number of incomplete messages held; a new one
	// beyond it evicts the one idle longest. At least 1.
	MaxMessages int
	// MaxBytes bounds the chunk data held; going over evicts the messages
	// idle longest (never the one the chunk belongs to).
	MaxBytes int64
}

// Chunk is one opened chunk of a message.
type Chunk struct {
	Sender [32]byte // the key that sealed it; reassembly is scoped to it
	ID     [16]byte // message id, the same in every chunk
	Kind   uint8
	Index  uint16
	Count  uint16
	Total  uint32
	Data   []byte
}

// Status says what Add did.
type Status int

const (
	ChunkHeld      Status = iota + 1 // stored; the message is not complete
	ChunkComplete                    // every chunk of the message is held: read them with Chunks
	ChunkDuplicate                   // already held, message still incomplete; ignored
	ChunkReplay                      // the message was already appended; ignored
)

// Pending describes an incomplete message in the buffer.
type Pending struct {
	Sender    [32]byte
	ID        [16]byte
	Held      int
	Count     int
	LastChunk time.Time
}

// Result is the outcome of Add.
type Result struct {
	Status  Status
	Held    int       // chunks of the message held after the call
	Evicted []Pending // incomplete messages dropped to make room
}

// ErrMismatch: a chunk disagrees with the chunks of its message already
// held (count, total or kind); it was not stored.
var ErrMismatch = errors.New("chunk disagrees with the chunks held for its message")

// Add stores one chunk of a multi-chunk message received at now, in tx.
// A chunk of a message already appended is a replay and a chunk already
// held a duplicate; neither is stored. When the chunk completes the
// message (or the message was complete but not yet appended, after a
// crash), the status is ChunkComplete and the caller reads the chunks and
// appends the message (MarkAppended).
func Add(ctx context.Context, tx Querier, scope string, c Chunk, now time.Time, lim Limits) (Result, error) {
	if lim.MaxMessages < 1 || lim.MaxBytes < int64(len(c.Data)) {
		return Result{}, fmt.Errorf("add chunk: limits %+v cannot hold a %d-byte chunk", lim, len(c.Data))
	}
	if appended, err := Appended(ctx, tx, scope, c.Sender, c.ID); err != nil || appended {
		return Result{Status: ChunkReplay}, err
	}
	held, err := heldChunks(ctx, tx, scope, c.Sender, c.ID)
	if err != nil {
		return Result{}, err
	}
	var out Result
	others := lim.MaxMessages
	if held.n == 0 {
		others-- // the chunk's message becomes one more
	} else if held.count != int(c.Count) || held.total != int64(c.Total) || held.kind != int(c.Kind) {
		return Result{}, fmt.Errorf("message %x chunk %d/%d: %w", c.ID, c.Index, c.Count, ErrMismatch)
	}
	if out.Evicted, err = evict(ctx, tx, scope, c, others, lim.MaxBytes-int64(len(c.Data))); err != nil {
		return Result{}, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO inbound_chunks (account, sender, message_id, chunk_index, chunk_count, total, kind, received_at, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		scope, c.Sender[:], c.ID[:], c.Index, c.Count, c.Total, c.Kind, now.UnixMilli(), c.Data)
	if err != nil {
		return Result{}, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Result{}, err
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
	return out, nil
}

type heldSummary struct {
	n, count, kind int
	total          int64
}

func heldChunks(ctx context.Context, q Querier, scope string, sender [32]byte, id [16]byte) (heldSummary, error) {
	var h heldSummary
	var count, kind sql.NullInt64
	var total sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT count(*), min(chunk_count), min(total), min(kind) FROM inbound_chunks
		WHERE account = ? AND sender = ? AND message_id = ?`, scope, sender[:], id[:]).Scan(&h.n, &count, &total, &kind)
	h.count, h.total, h.kind = int(count.Int64), total.Int64, int(kind.Int64)
	return h, err
}

// evict drops the incomplete messages idle longest, other than c's, until
// at most maxMessages other messages and maxBytes of data are held.
func evict(ctx context.Context, tx Querier, scope string, c Chunk, maxMessages int, maxBytes int64) ([]Pending, error) {
	var dropped []Pending
	for {
		others, bytes, oldest, err := pendingSummary(ctx, tx, scope, c)
		if err != nil {
			return nil, err
		}
		if others <= maxMessages && bytes <= maxBytes || others == 0 {
			return dropped, nil
		}
		if err := dropChunks(ctx, tx, scope, oldest.Sender, oldest.ID); err != nil {
			return nil, err
		}
		dropped = append(dropped, oldest)
	}
}

func dropChunks(ctx context.Context, tx Querier, scope string, sender [32]byte, id [16]byte) error {
	_, err := tx.ExecContext(ctx, "DELETE FROM inbound_chunks WHERE account = ? AND sender = ? AND message_id = ?",
		scope, sender[:], id[:])
	return err
}

// pendingSummary counts the incomplete messages other than c's and the data
// held for all of them, and returns the one idle longest.
func pendingSummary(ctx context.Context, q Querier, scope string, c Chunk) (others int, bytes int64, oldest Pending, err error) {
	msgs, err := pendingMessages(ctx, q, scope, "")
	if err != nil {
		return 0, 0, oldest, err
	}
	err = q.QueryRowContext(ctx, "SELECT coalesce(sum(length(data)), 0) FROM inbound_chunks WHERE account = ?", scope).Scan(&bytes)
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

// pendingMessages lists a scope's incomplete messages, idle longest
// first; having filters the groups (SQL on count(*), max(chunk_count) and
// max(received_at) as held, count, last).
func pendingMessages(ctx context.Context, q Querier, scope, having string) ([]Pending, error) {
	query := `SELECT sender, message_id, count(*) AS held, max(chunk_count) AS count, max(received_at) AS last
		FROM inbound_chunks WHERE account = ? GROUP BY sender, message_id`
	if having != "" {
		query += " HAVING " + having
	}
	rows, err := q.QueryContext(ctx, query+" ORDER BY last, min(rowid)", scope)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Pending
	for rows.Next() {
		var m Pending
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
func Chunks(ctx context.Context, q Querier, scope string, sender [32]byte, id [16]byte) ([]Chunk, error) {
	rows, err := q.QueryContext(ctx, `SELECT chunk_index, chunk_count, total, kind, data FROM inbound_chunks
		WHERE account = ? AND sender = ? AND message_id = ? ORDER BY chunk_index`, scope, sender[:], id[:])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Chunk
	for rows.Next() {
		c := Chunk{Sender: sender, ID: id}
		if err := rows.Scan(&c.Index, &c.Count, &c.Total, &c.Kind, &c.Data); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Complete lists the messages whose chunks are all held but which were
// not appended (a crash between the last chunk and MarkAppended).
func Complete(ctx context.Context, q Querier, scope string) ([]Pending, error) {
	return pendingMessages(ctx, q, scope, "held >= count")
}

// Expire drops, in tx, the incomplete messages that got no chunk since
// idleSince and returns them.
func Expire(ctx context.Context, tx Querier, scope string, idleSince time.Time) ([]Pending, error) {
	out, err := pendingMessages(ctx, tx, scope, fmt.Sprintf("last < %d", idleSince.UnixMilli()))
	if err != nil {
		return nil, err
	}
	for _, m := range out {
		if err := dropChunks(ctx, tx, scope, m.Sender, m.ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MarkAppended records (sender, id) as appended at now and drops its
// chunks; the caller stores the message in the same transaction tx. It
// reports false, and changes nothing, if it was appended before.
func MarkAppended(ctx context.Context, tx Querier, scope string, sender [32]byte, id [16]byte, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO inbound_delivered (account, sender, message_id, delivered_at) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, scope, sender[:], id[:], now.UnixMilli())
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	return true, dropChunks(ctx, tx, scope, sender, id)
}

// Held returns how many chunks of (sender, id) the buffer holds.
func Held(ctx context.Context, q Querier, scope string, sender [32]byte, id [16]byte) (int, error) {
	h, err := heldChunks(ctx, q, scope, sender, id)
	return h.n, err
}

// Appended reports whether (sender, id) was appended and the record is
// still kept (ForgetAppended).
func Appended(ctx context.Context, q Querier, scope string, sender [32]byte, id [16]byte) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, "SELECT 1 FROM inbound_delivered WHERE account = ? AND sender = ? AND message_id = ?",
		scope, sender[:], id[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// ForgetAppended bounds the record of appended messages: it keeps the
// scope's newest keep entries and returns how many it forgot.
func ForgetAppended(ctx context.Context, tx Querier, scope string, keep int) (int64, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM inbound_delivered WHERE account = ? AND delivered_at <
		(SELECT delivered_at FROM inbound_delivered WHERE account = ? ORDER BY delivered_at DESC LIMIT 1 OFFSET ?)`,
		scope, scope, max(keep-1, 0))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
