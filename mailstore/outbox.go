package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"
)

// The outbox is the bridge's queue of submitted mail. Enqueue commits a
// message and its recipients in one transaction (synchronous=FULL, so it is
// on disk when Enqueue returns: the SMTP server answers 250 only then).
// Each recipient row then lives until its delivery succeeds
// (DeliverySucceeded) or is given up (DeliveryFailed, which stores the bounce
// in the same transaction); the message goes with its last recipient. A
// row whose message the node has stored while no other holder of the
// recipient's topic was known stays, marked handed (DeliveryHanded), until
// one is seen. A row that stays long may get one delay warning (DeliveryDelayed, which
// stores the report and records it in one transaction, so the sender is
// warned at most once).
//
// Each recipient keeps the 16-byte message id drawn at submission, so
// every attempt, also after a crash, sends the same id and the recipient
// ignores the copies. The store treats ids and passport ids as opaque bytes.

// MaxOutboxRecipients bounds the recipients of one queued message.
const MaxOutboxRecipients = 1000

var (
	// ErrNoRecipients: Enqueue was given no recipient.
	ErrNoRecipients = errors.New("mailstore: message has no recipients")
	// ErrNotQueued: the outbox has no such recipient (already delivered or
	// bounced).
	ErrNotQueued = errors.New("mailstore: recipient not in the outbox")
)

// OutboxRecipient is one recipient of a queued message.
type OutboxRecipient struct {
	Passport  [16]byte // whom the address names
	Address   string   // as the client wrote it
	MessageID [16]byte // sent with every attempt
}

// Submission is a message handed to Enqueue.
type Submission struct {
	Account string
	From    string // envelope sender, as the client gave it
	// Message is the copy every recipient gets, read once by Enqueue
	// inside its transaction and stored as it is read, so that a message
	// spooled to a file is never whole in memory.
	Message    io.Reader
	Recipients []OutboxRecipient
}

// OutboxItem is the delivery of a queued message to one recipient.
type OutboxItem struct {
	OutboxID int64
	Account  string
	From     string
	QueuedAt time.Time
	OutboxRecipient
	Attempts    int
	NextAttempt time.Time
	LastError   string
	WarnedAt    time.Time // when the sender was told the delivery is delayed; zero if not
	// HandedAt is when the node got every chunk while no other holder of
	// the recipient's topic was known (DeliveryHanded); zero if not.
	HandedAt time.Time
}

// Enqueue stores a submitted message for delivery to its recipients, all
// due at now, and returns its outbox id. It returns once the transaction is
// durably committed.
func (db *DB) Enqueue(ctx context.Context, s Submission, now time.Time) (int64, error) {
	if len(s.Recipients) == 0 {
		return 0, fmt.Errorf("enqueue for %s: %w", s.Account, ErrNoRecipients)
	}
	if len(s.Recipients) > MaxOutboxRecipients {
		return 0, fmt.Errorf("enqueue for %s: %d recipients, the limit is %d", s.Account, len(s.Recipients), MaxOutboxRecipients)
	}
	var id int64
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		if _, err := accountID(ctx, tx, s.Account); err != nil {
			return nil, err
		}
		res, err := tx.ExecContext(ctx, "INSERT INTO outbox (account, envelope_from, queued_at) VALUES (?, ?, ?)",
			s.Account, s.From, now.UnixMilli())
		if err != nil {
			return nil, err
		}
		if id, err = res.LastInsertId(); err != nil {
			return nil, err
		}
		if err := writeOutboxMessage(ctx, tx, id, s.Message); err != nil {
			return nil, err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO outbox_recipients (outbox_id, passport, address, message_id, next_attempt)
			VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return nil, err
		}
		defer ins.Close()
		for _, r := range s.Recipients {
			if _, err := ins.ExecContext(ctx, id, r.Passport[:], r.Address, r.MessageID[:], now.UnixMilli()); err != nil {
				return nil, fmt.Errorf("recipient %s: %w", r.Address, err)
			}
		}
		return nil, nil
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue for %s: %w", s.Account, err)
	}
	return id, nil
}

// writeOutboxMessage stores the message of outbox id from r, and its size.
func writeOutboxMessage(ctx context.Context, tx *sql.Tx, id int64, r io.Reader) error {
	w, err := newSegmentWriter(ctx, tx, outboxSegments, id, MaxMessageSize)
	if err != nil {
		return err
	}
	defer w.Close()
	size, err := w.ReadFrom(r)
	if err != nil {
		return fmt.Errorf("message: %w", err)
	}
	_, err = tx.ExecContext(ctx, "UPDATE outbox SET size = ? WHERE id = ?", size, id)
	return err
}

const outboxItemColumns = `o.id, o.account, o.envelope_from, o.queued_at, r.passport, r.address, r.message_id,
	r.attempts, r.next_attempt, r.last_error, r.warned_at, r.handed_at`

func scanOutboxItem(row interface{ Scan(...any) error }) (OutboxItem, error) {
	var it OutboxItem
	var queued, next, warned, handed int64
	var passport, id []byte
	err := row.Scan(&it.OutboxID, &it.Account, &it.From, &queued, &passport, &it.Address, &id,
		&it.Attempts, &next, &it.LastError, &warned, &handed)
	if err != nil {
		return it, err
	}
	if len(passport) != len(it.Passport) || len(id) != len(it.MessageID) {
		return it, fmt.Errorf("outbox %d: malformed recipient row", it.OutboxID)
	}
	copy(it.Passport[:], passport)
	copy(it.MessageID[:], id)
	it.QueuedAt, it.NextAttempt = time.UnixMilli(queued), time.UnixMilli(next)
	if warned != 0 {
		it.WarnedAt = time.UnixMilli(warned)
	}
	if handed != 0 {
		it.HandedAt = time.UnixMilli(handed)
	}
	return it, nil
}

func (db *DB) outboxItems(ctx context.Context, where string, args ...any) ([]OutboxItem, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT "+outboxItemColumns+
		" FROM outbox_recipients r JOIN outbox o ON o.id = r.outbox_id WHERE "+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OutboxItem
	for rows.Next() {
		it, err := scanOutboxItem(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// DueDeliveries returns up to limit deliveries whose next attempt is at or
// before now, the earliest first.
func (db *DB) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]OutboxItem, error) {
	items, err := db.outboxItems(ctx, "r.next_attempt <= ? ORDER BY r.next_attempt, o.id LIMIT ?", now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("due deliveries: %w", err)
	}
	return items, nil
}

// Outbox lists an account's queued deliveries, oldest message first.
func (db *DB) Outbox(ctx context.Context, account string) ([]OutboxItem, error) {
	items, err := db.outboxItems(ctx, "o.account = ? ORDER BY o.id, r.address", account)
	if err != nil {
		return nil, fmt.Errorf("outbox of %s: %w", account, err)
	}
	return items, nil
}

// NextDelivery returns when the earliest queued delivery is due; ok is
// false when the outbox is empty. It counts the deliveries DueDeliveries
// returns: a recipient row without its message (deleted by hand) is never
// due, and must not look due to the worker either, or it would start a
// pass, find nothing, and start again at once.
func (db *DB) NextDelivery(ctx context.Context) (next time.Time, ok bool, err error) {
	var ms sql.NullInt64
	err = db.r.QueryRowContext(ctx, "SELECT min(r.next_attempt) FROM outbox_recipients r JOIN outbox o ON o.id = r.outbox_id").Scan(&ms)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next delivery: %w", err)
	}
	if !ms.Valid {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(ms.Int64), true, nil
}

// OutboxMessage returns the queued message with the given outbox id.
func (db *DB) OutboxMessage(ctx context.Context, outboxID int64) ([]byte, error) {
	raw, _, err := db.readOutboxMessage(ctx, outboxID, nil)
	return raw, err
}

// OutboxMessageHeld is OutboxMessage under budget: the caller holds the
// message's size of it (and a segment, SQLite's copy while reading) until
// it calls release, so that a queue of large messages is delivered a few
// at a time instead of all at once in memory. It fails with ErrBusy when
// the budget stays spent. The message is read a segment at a time on a
// connection that does not map the database.
func (db *DB) OutboxMessageHeld(ctx context.Context, budget *MemoryBudget, outboxID int64) (raw []byte, release func(), err error) {
	return db.readOutboxMessage(ctx, outboxID, func(size int64) (func(), error) {
		return budget.Acquire(ctx, size+min(size, segmentSize))
	})
}

// readOutboxMessage reads a queued message's segments; see readSegments
// for admit.
func (db *DB) readOutboxMessage(ctx context.Context, outboxID int64, admit func(int64) (func(), error)) ([]byte, func(), error) {
	raw, release, err := readSegments(ctx, db.text, admit, `SELECT o.size, s.data FROM outbox o
		LEFT JOIN outbox_segments s ON s.outbox_id = o.id WHERE o.id = ? ORDER BY s.n`, outboxID)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotQueued
	}
	if err != nil {
		return nil, nil, fmt.Errorf("outbox message %d: %w", outboxID, err)
	}
	return raw, release, nil
}

// DeliveryDeferred records a failed attempt: the delivery is tried again
// at next.
func (db *DB) DeliveryDeferred(ctx context.Context, it OutboxItem, next time.Time, reason string) error {
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		res, err := tx.ExecContext(ctx, `UPDATE outbox_recipients SET attempts = attempts + 1, next_attempt = ?, last_error = ?
			WHERE outbox_id = ? AND passport = ?`, next.UnixMilli(), reason, it.OutboxID, it.Passport[:])
		if err != nil {
			return nil, err
		}
		return nil, mustAffect(res)
	})
	if err != nil {
		return fmt.Errorf("defer delivery %d to %s: %w", it.OutboxID, it.Address, err)
	}
	return nil
}

// DeliveryHanded records an attempt that stored the message on the node
// while no other holder of the recipient's topic was known: the row keeps
// its first handed time (set to now), counts the attempt and is looked at
// again at next, to see whether a holder has appeared.
func (db *DB) DeliveryHanded(ctx context.Context, it OutboxItem, now, next time.Time, reason string) error {
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		res, err := tx.ExecContext(ctx, `UPDATE outbox_recipients SET attempts = attempts + 1, next_attempt = ?, last_error = ?,
			handed_at = CASE handed_at WHEN 0 THEN ? ELSE handed_at END WHERE outbox_id = ? AND passport = ?`,
			next.UnixMilli(), reason, max(1, now.UnixMilli()), it.OutboxID, it.Passport[:])
		if err != nil {
			return nil, err
		}
		return nil, mustAffect(res)
	})
	if err != nil {
		return fmt.Errorf("record handed delivery %d to %s: %w", it.OutboxID, it.Address, err)
	}
	return nil
}

// DeliveryPostponed moves the next attempt to next without counting one:
// for a delivery that could not be tried at all.
func (db *DB) DeliveryPostponed(ctx context.Context, it OutboxItem, next time.Time) error {
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		res, err := tx.ExecContext(ctx, "UPDATE outbox_recipients SET next_attempt = ? WHERE outbox_id = ? AND passport = ?",
			next.UnixMilli(), it.OutboxID, it.Passport[:])
		if err != nil {
			return nil, err
		}
		return nil, mustAffect(res)
	})
	if err != nil {
		return fmt.Errorf("postpone delivery %d to %s: %w", it.OutboxID, it.Address, err)
	}
	return nil
}

// DeliverySucceeded removes a delivered recipient, and the message with its
// last recipient.
func (db *DB) DeliverySucceeded(ctx context.Context, it OutboxItem) error {
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		return nil, removeRecipient(ctx, tx, it)
	})
	if err != nil {
		return fmt.Errorf("delivery %d to %s done: %w", it.OutboxID, it.Address, err)
	}
	return nil
}

// DeliveryFailed gives a delivery up: in one transaction the recipient is
// removed and bounce (a delivery status notification) is appended to the
// account's INBOX, so the sender hears of the failure exactly once.
func (db *DB) DeliveryFailed(ctx context.Context, it OutboxItem, bounce []byte, now time.Time) (Appended, error) {
	p, err := prepareMessage(nil, bounce, nil, now)
	if err != nil {
		return Appended{}, fmt.Errorf("bounce delivery %d to %s: %w", it.OutboxID, it.Address, err)
	}
	var out Appended
	err = db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		if err := removeRecipient(ctx, tx, it); err != nil {
			return nil, err
		}
		var c change
		var err error
		out, c, err = insertMessage(ctx, tx, it.Account, Inbox, p)
		if err != nil {
			return nil, err
		}
		return []change{c}, nil
	})
	if err != nil {
		return Appended{}, fmt.Errorf("bounce delivery %d to %s: %w", it.OutboxID, it.Address, err)
	}
	return out, nil
}

// DeliveryDelayed tells the sender a delivery is late: in one transaction
// the recipient is marked warned at now and report (a delivery status
// notification) is appended to the account's INBOX. A recipient warned
// before, or no longer queued, gets no second report: ErrNotQueued.
func (db *DB) DeliveryDelayed(ctx context.Context, it OutboxItem, report []byte, now time.Time) (Appended, error) {
	p, err := prepareMessage(nil, report, nil, now)
	if err != nil {
		return Appended{}, fmt.Errorf("delay report for %d to %s: %w", it.OutboxID, it.Address, err)
	}
	var out Appended
	err = db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		res, err := tx.ExecContext(ctx, "UPDATE outbox_recipients SET warned_at = ? WHERE outbox_id = ? AND passport = ? AND warned_at = 0",
			max(1, now.UnixMilli()), it.OutboxID, it.Passport[:])
		if err != nil {
			return nil, err
		}
		if err := mustAffect(res); err != nil {
			return nil, err
		}
		var c change
		out, c, err = insertMessage(ctx, tx, it.Account, Inbox, p)
		if err != nil {
			return nil, err
		}
		return []change{c}, nil
	})
	if err != nil {
		return Appended{}, fmt.Errorf("delay report for %d to %s: %w", it.OutboxID, it.Address, err)
	}
	return out, nil
}

func removeRecipient(ctx context.Context, tx *sql.Tx, it OutboxItem) error {
	res, err := tx.ExecContext(ctx, "DELETE FROM outbox_recipients WHERE outbox_id = ? AND passport = ?", it.OutboxID, it.Passport[:])
	if err != nil {
		return err
	}
	if err := mustAffect(res); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM outbox WHERE id = ?
		AND NOT EXISTS (SELECT 1 FROM outbox_recipients WHERE outbox_id = ?)`, it.OutboxID, it.OutboxID)
	return err
}

// mustAffect fails with ErrNotQueued when a statement changed no row.
func mustAffect(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotQueued
	}
	return nil
}
