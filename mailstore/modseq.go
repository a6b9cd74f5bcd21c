package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mod-sequences (RFC 7162, CONDSTORE and QRESYNC). Every committed change
// to a mailbox's messages (append, copy or move in, flag change, expunge)
// takes the mailbox's next mod-sequence in the transaction that makes it,
// in writeOn, so no caller can forget it: the changed messages carry it and
// the mailbox's highest_modseq becomes it. One change is one mod-sequence,
// however many messages it touches, as Dovecot does per transaction.
//
// Expunged messages leave a tombstone (their UID and the expunge's
// mod-sequence) so that QRESYNC can name what vanished since a client's
// mod-sequence. Tombstones are bounded per mailbox by MaxTombstones: past
// it the oldest are dropped and the mailbox's vanished_floor remembers up
// to which mod-sequence the record is incomplete; Vanished then says so,
// and the IMAP server answers conservatively, as RFC 7162 §3.2.5.1 allows
// (every UID the client may know that no longer exists).

// MaxTombstones bounds the expunged UIDs remembered per mailbox.
const MaxTombstones = 10000

// stampModSeqs gives each change to messages the next mod-sequence of its
// mailbox, on the messages or, for expunges, in tombstones.
func stampModSeqs(ctx context.Context, tx *sql.Tx, changes []change) error {
	for i := range changes {
		c := &changes[i]
		if len(c.UIDs) == 0 || c.Kind == ChangeMailboxDeleted {
			continue
		}
		err := tx.QueryRowContext(ctx, "UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq",
			c.mailboxID).Scan(&c.ModSeq)
		if err != nil {
			return fmt.Errorf("next mod-sequence of mailbox %d: %w", c.mailboxID, err)
		}
		uids := uidJSON(c.UIDs)
		if c.Kind == ChangeExpunged {
			err = addTombstones(ctx, tx, c.mailboxID, c.ModSeq, uids)
		} else {
			_, err = tx.ExecContext(ctx, "UPDATE messages SET modseq = ? WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))",
				c.ModSeq, c.mailboxID, uids)
		}
		if err != nil {
			return fmt.Errorf("stamp mod-sequence %d in mailbox %d: %w", c.ModSeq, c.mailboxID, err)
		}
	}
	return nil
}

// uidJSON is uids as a JSON array, for json_each: one statement for any
// number of messages.
func uidJSON(uids []UID) string {
	var b strings.Builder
	b.Grow(len(uids) * 6)
	b.WriteByte('[')
	for i, uid := range uids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(uid), 10))
	}
	b.WriteByte(']')
	return b.String()
}

// addTombstones records expunged UIDs and drops the oldest tombstones
// beyond MaxTombstones, raising the mailbox's vanished_floor over them.
func addTombstones(ctx context.Context, tx *sql.Tx, mailboxID int64, modSeq uint64, uids string) error {
	if _, err := tx.ExecContext(ctx, "INSERT INTO expunged (mailbox_id, modseq, uid) SELECT ?, ?, value FROM json_each(?)",
		mailboxID, modSeq, uids); err != nil {
		return err
	}
	var cutoff uint64
	err := tx.QueryRowContext(ctx, "SELECT modseq FROM expunged WHERE mailbox_id = ? ORDER BY modseq DESC, uid DESC LIMIT 1 OFFSET ?",
		mailboxID, MaxTombstones).Scan(&cutoff)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM expunged WHERE mailbox_id = ? AND modseq <= ?", mailboxID, cutoff); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "UPDATE mailboxes SET vanished_floor = max(vanished_floor, ?) WHERE id = ?", cutoff, mailboxID)
	return err
}

// Vanished returns the UIDs expunged from a mailbox after mod-sequence
// since, ascending, and whether the list is complete: false when
// tombstones past since were dropped (see MaxTombstones), in which case
// the caller must assume any UID it cannot see may have vanished.
func (db *DB) Vanished(ctx context.Context, id MailboxID, since uint64) ([]UID, bool, error) {
	if _, err := ownedMailbox(ctx, db.r, id); err != nil {
		return nil, false, fmt.Errorf("vanished from mailbox %s: %w", id, err)
	}
	var floor uint64
	if err := db.r.QueryRowContext(ctx, "SELECT vanished_floor FROM mailboxes WHERE id = ?", id.row).Scan(&floor); err != nil {
		return nil, false, fmt.Errorf("vanished from mailbox %s: %w", id, err)
	}
	rows, err := db.r.QueryContext(ctx, "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", id.row, since)
	if err != nil {
		return nil, false, fmt.Errorf("vanished from mailbox %s: %w", id, err)
	}
	defer rows.Close()
	var uids []UID
	for rows.Next() {
		var uid UID
		if err := rows.Scan(&uid); err != nil {
			return nil, false, fmt.Errorf("vanished from mailbox %s: %w", id, err)
		}
		uids = append(uids, uid)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("vanished from mailbox %s: %w", id, err)
	}
	return uids, since >= floor, nil
}
