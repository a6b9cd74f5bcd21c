package mailstore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"
)

// Spool is a message written to a file beside the database before it is
// stored (see AppendSpooled): an IMAP APPEND of several messages, or one
// built from parts (CATENATE), holds disk while it arrives, not memory.
// The file is unlinked at Close; Open removes any a crash left.
type Spool struct {
	f    *os.File
	size int64
	// Flags and InternalDate are stored with the message.
	Flags        []string
	InternalDate time.Time
}

// NewSpool creates an empty spool file.
func (db *DB) NewSpool() (*Spool, error) {
	f, err := os.CreateTemp(db.spoolDir, spoolPattern)
	if err != nil {
		return nil, fmt.Errorf("spool message: %w", err)
	}
	return &Spool{f: f}, nil
}

// Write appends to the message, refusing to grow it past MaxMessageSize.
func (s *Spool) Write(p []byte) (int, error) {
	if s.size+int64(len(p)) > MaxMessageSize {
		return 0, fmt.Errorf("spool message: %w", ErrTooBig)
	}
	n, err := s.f.Write(p)
	s.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("spool message: %w", err)
	}
	return n, nil
}

// Size is how many bytes were written.
func (s *Spool) Size() int64 { return s.size }

// Close removes the file.
func (s *Spool) Close() error {
	os.Remove(s.f.Name())
	return s.f.Close()
}

// AppendSpooled stores spooled messages in a mailbox in one transaction:
// all of them or, on any error, none (MULTIAPPEND, RFC 3502). Each message
// is parsed inside the transaction, one at a time, under one share of the
// memory budget sized for the largest, taken before the write lock (a
// delivery holding budget may be waiting for that lock). The watchers hear
// of all the messages in one change.
func (db *DB) AppendSpooled(ctx context.Context, account, mailbox string, msgs []*Spool) ([]Appended, error) {
	var largest int64
	for _, m := range msgs {
		largest = max(largest, m.size)
	}
	release, err := db.budget.Acquire(ctx, appendCost(largest))
	if err != nil {
		return nil, fmt.Errorf("append to %q: %w", mailbox, err)
	}
	defer release()
	var out []Appended
	err = db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		out = out[:0]
		var all change
		for _, m := range msgs {
			a, c, err := insertSpooled(ctx, tx, account, mailbox, m)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
			all.mailboxID = c.mailboxID
			all.Kind = c.Kind
			all.UIDs = append(all.UIDs, c.UIDs...)
			all.Flags = append(all.Flags, c.Flags...)
		}
		if len(out) == 0 {
			return nil, nil
		}
		return []change{all}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("append to %q: %w", mailbox, err)
	}
	return out, nil
}

func insertSpooled(ctx context.Context, tx *sql.Tx, account, mailbox string, m *Spool) (Appended, change, error) {
	raw := make([]byte, m.size)
	if _, err := m.f.ReadAt(raw, 0); err != nil {
		return Appended{}, change{}, fmt.Errorf("read spooled message: %w", err)
	}
	p, err := prepareMessage(nil, raw, m.Flags, m.InternalDate)
	if err != nil {
		return Appended{}, change{}, err
	}
	return insertMessage(ctx, tx, account, mailbox, p)
}
