package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Append stores a message in a mailbox. The message is parsed before the
// write lock is taken; the body, its cached parse and its new UID commit in
// one transaction, and watchers of the mailbox hear of it after the commit.
// Parsing and storing hold the message's share of the memory budget.
func (db *DB) Append(ctx context.Context, account, mailbox string, raw []byte, flags []string, internalDate time.Time) (Appended, error) {
	if len(raw) > MaxMessageSize {
		return Appended{}, fmt.Errorf("append to %q: %w (%d bytes)", mailbox, ErrTooBig, len(raw))
	}
	release, err := db.budget.Acquire(ctx, appendCost(int64(len(raw))))
	if err != nil {
		return Appended{}, fmt.Errorf("append to %q: %w", mailbox, err)
	}
	defer release()
	return db.appendHeld(ctx, account, mailbox, raw, flags, internalDate)
}

// appendCost is what parsing and storing a message of size bytes holds in
// memory: the message, its decoded text (at most maxSearchText) and
// SQLite's copy of that text, and one segment (SQLite's copy of the
// message is one segment at a time).
func appendCost(size int64) int64 { return size + 2*min(size, maxSearchText) + segmentSize }

// spoolPattern names AppendFrom's files in the store's directory; Open
// removes any left by a crash.
const spoolPattern = "mailstore-append-*.tmp"

// AppendFrom is Append for a message of size bytes read from r, such as an
// IMAP literal. The message goes to a file in the store's directory as it
// arrives, so a slow or large upload holds no memory and no share of the
// budget; the budget is taken only to parse and store it from the file.
func (db *DB) AppendFrom(ctx context.Context, account, mailbox string, r io.Reader, size int64, flags []string, internalDate time.Time) (Appended, error) {
	if size > MaxMessageSize {
		return Appended{}, fmt.Errorf("append to %q: %w (%d bytes)", mailbox, ErrTooBig, size)
	}
	f, err := os.CreateTemp(db.spoolDir, spoolPattern)
	if err != nil {
		return Appended{}, fmt.Errorf("append to %q: spool: %w", mailbox, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := io.Copy(f, io.LimitReader(r, size))
	if err == nil && n < size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return Appended{}, fmt.Errorf("append to %q: spool: %d of %d bytes: %w", mailbox, n, size, err)
	}
	release, err := db.budget.Acquire(ctx, appendCost(size))
	if err != nil {
		return Appended{}, fmt.Errorf("append to %q: %w", mailbox, err)
	}
	defer release()
	raw := make([]byte, size)
	if _, err := f.ReadAt(raw, 0); err != nil {
		return Appended{}, fmt.Errorf("append to %q: read spooled message: %w", mailbox, err)
	}
	return db.appendHeld(ctx, account, mailbox, raw, flags, internalDate)
}

// removeSpooled deletes the spool files a crash left in dir.
func removeSpooled(dir string) {
	left, _ := filepath.Glob(filepath.Join(dir, spoolPattern))
	for _, name := range left {
		os.Remove(name)
	}
}

// appendHeld is Append once the message's memory is accounted for.
func (db *DB) appendHeld(ctx context.Context, account, mailbox string, raw []byte, flags []string, internalDate time.Time) (Appended, error) {
	p, err := prepareMessage(nil, raw, flags, internalDate)
	if err != nil {
		return Appended{}, fmt.Errorf("append to %q: %w", mailbox, err)
	}
	var out Appended
	err = db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		var c change
		var err error
		out, c, err = insertMessage(ctx, tx, account, mailbox, p)
		if err != nil {
			return nil, err
		}
		return []change{c}, nil
	})
	if err != nil {
		return Appended{}, fmt.Errorf("append to %q: %w", mailbox, err)
	}
	return out, nil
}

// preparedMessage is a message parsed for insertion before the write lock
// is taken: head followed by body (see indexMessage).
type preparedMessage struct {
	head, body           []byte
	flags                []string
	date                 time.Time
	sentDay              any
	envelope, structure  []byte
	headerText, bodyText string
	sortKeys             sortKeys
}

// prepareMessage does the parsing part of Append, for the message head
// followed by body; head may be nil.
func prepareMessage(head, body []byte, flags []string, date time.Time) (preparedMessage, error) {
	if size := len(head) + len(body); size > MaxMessageSize {
		return preparedMessage{}, fmt.Errorf("%w (%d bytes)", ErrTooBig, size)
	}
	flags, err := canonicalFlags(flags)
	if err != nil {
		return preparedMessage{}, err
	}
	if date.IsZero() {
		date = time.Now()
	}
	ix := indexMessage(head, body)
	p := preparedMessage{head: head, body: body, flags: flags, date: date, sentDay: dayOrNull(ix.sentDate), headerText: ix.headerText, bodyText: ix.bodyText,
		sortKeys: sortKeysOf(ix.envelope, ix.references)}
	if p.envelope, err = encodeEnvelope(ix.envelope); err != nil {
		return preparedMessage{}, err
	}
	if p.structure, err = encodeStructure(ix.structure); err != nil {
		return preparedMessage{}, err
	}
	return p, nil
}

// insertMessage does the writing part of Append inside the caller's
// transaction, so a delivery can commit together with its bookkeeping.
func insertMessage(ctx context.Context, tx *sql.Tx, account, mailbox string, p preparedMessage) (Appended, change, error) {
	mb, err := mailboxByName(ctx, tx, account, mailbox)
	if err != nil {
		return Appended{}, change{}, err
	}
	res, err := tx.ExecContext(ctx, "INSERT INTO bodies (size, sent_day, envelope, structure) VALUES (?, ?, ?, ?)",
		len(p.head)+len(p.body), p.sentDay, p.envelope, p.structure)
	if err != nil {
		return Appended{}, change{}, err
	}
	bodyID, err := res.LastInsertId()
	if err != nil {
		return Appended{}, change{}, err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO body_data (body_id, header_text, body_text) VALUES (?, ?, ?)",
		bodyID, p.headerText, p.bodyText); err != nil {
		return Appended{}, change{}, err
	}
	if err := writeBody(ctx, tx, bodyID, p.head, p.body); err != nil {
		return Appended{}, change{}, err
	}
	if err := insertSortKeys(ctx, tx, bodyID, p.sortKeys); err != nil {
		return Appended{}, change{}, err
	}
	uid, err := allocateUIDs(ctx, tx, mb.ID.row, 1)
	if err != nil {
		return Appended{}, change{}, err
	}
	_, offset := p.date.Zone()
	if _, err := tx.ExecContext(ctx, `INSERT INTO messages (mailbox_id, uid, body_id, flags, internal_date, internal_tz)
		VALUES (?, ?, ?, ?, ?, ?)`, mb.ID.row, uid, bodyID, joinFlags(p.flags), p.date.Unix(), offset); err != nil {
		return Appended{}, change{}, err
	}
	c := change{mailboxID: mb.ID.row, Change: Change{Kind: ChangeAppended, UIDs: []UID{uid}, Flags: [][]string{p.flags}}}
	return Appended{MailboxID: mb.ID, UIDValidity: mb.UIDValidity, UID: uid}, c, nil
}

// writeBody stores head followed by body as the segments of bodyID.
func writeBody(ctx context.Context, tx *sql.Tx, bodyID int64, head, body []byte) error {
	w, err := newSegmentWriter(ctx, tx, bodySegments, bodyID, MaxMessageSize)
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := w.Write(head); err != nil {
		return err
	}
	_, err = w.Write(body)
	return err
}

// Deliver stores a message and returns its UID; see Append.
func (db *DB) Deliver(ctx context.Context, account, mailbox string, raw []byte, flags []string, internalDate time.Time) (UID, error) {
	a, err := db.Append(ctx, account, mailbox, raw, flags, internalDate)
	return a.UID, err
}

func dayOrNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return dayOf(t)
}

// dayOf is t's calendar day in its own zone as YYYYMMDD: SEARCH compares
// dates "disregarding time and timezone" (RFC 3501, 6.4.4).
func dayOf(t time.Time) int64 {
	return int64(t.Year())*10000 + int64(t.Month())*100 + int64(t.Day())
}

// allocateUIDs reserves n consecutive UIDs in a mailbox and returns the first.
func allocateUIDs(ctx context.Context, tx *sql.Tx, mailboxID int64, n int) (UID, error) {
	var next int64
	err := tx.QueryRowContext(ctx, "UPDATE mailboxes SET uid_next = uid_next + ? WHERE id = ? RETURNING uid_next", n, mailboxID).Scan(&next)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNoMailbox
	}
	if err != nil {
		return 0, fmt.Errorf("allocate UIDs: %w", err)
	}
	if next > 1<<32-1 {
		return 0, fmt.Errorf("allocate UIDs: UID space of mailbox %d exhausted", mailboxID)
	}
	return UID(next - int64(n)), nil
}

// Fetch calls fn with the cached metadata of each message of uids (sorted
// ascending) that still exists, in UID order. The MessageMeta given to fn
// is valid only until fn returns.
func (db *DB) Fetch(ctx context.Context, id MailboxID, uids []UID, fn func(MessageMeta) error) error {
	return db.FetchItems(ctx, id, uids, MetaItems{Flags: true, Envelope: true, Structure: true}, fn)
}

// MetaItems are the cached columns a FetchItems reads besides the UID,
// flags, internal date and size. The body structure is the large one: a
// body's row overflows its SQLite page, and reading the structure reads
// the overflow pages too. FETCH 1:* (FLAGS ENVELOPE) of 2,000 messages
// took 21 ms with it and 13 ms without.
type MetaItems struct {
	Flags     bool // else MessageMeta.Flags is nil (the IMAP view has them)
	Envelope  bool // else MessageMeta.Envelope fails
	Structure bool // else MessageMeta.BodyStructure fails
}

// metaQuery selects NULL for the columns not asked for; the queries stay
// constant strings.
func metaQuery(items MetaItems) string {
	flags, envelope, structure := "''", "NULL", "NULL"
	if items.Flags {
		flags = "m.flags"
	}
	if items.Envelope {
		envelope = "b.envelope"
	}
	if items.Structure {
		structure = "b.structure"
	}
	return `SELECT m.uid, ` + flags + `, m.internal_date, m.internal_tz, b.size, ` + envelope + `, ` + structure + `
		FROM messages m JOIN bodies b ON b.id = m.body_id
		WHERE m.mailbox_id = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid`
}

// FetchItems is Fetch reading only the cached columns in items.
func (db *DB) FetchItems(ctx context.Context, id MailboxID, uids []UID, items MetaItems, fn func(MessageMeta) error) error {
	if len(uids) == 0 {
		return nil
	}
	if _, err := ownedMailbox(ctx, db.r, id); err != nil {
		return fmt.Errorf("fetch from mailbox %s: %w", id, err)
	}
	mailboxID := id.row
	rows, err := db.r.QueryContext(ctx, metaQuery(items), mailboxID, uids[0], uids[len(uids)-1])
	if err != nil {
		return fmt.Errorf("fetch from mailbox %d: %w", mailboxID, err)
	}
	defer rows.Close()
	// Scanned into once per query, not per row: Scan's pointers make
	// them escape, which cost five allocations a message.
	var (
		m                   MessageMeta
		flags               string
		date, tz            int64
		envelope, structure sql.RawBytes
		zones               zoneCache
	)
	i := 0
	for rows.Next() {
		m = MessageMeta{}
		if err := rows.Scan(&m.UID, &flags, &date, &tz, &m.Size, &envelope, &structure); err != nil {
			return fmt.Errorf("fetch from mailbox %d: %w", mailboxID, err)
		}
		for i < len(uids) && uids[i] < m.UID {
			i++
		}
		if i == len(uids) {
			break
		}
		if uids[i] != m.UID {
			continue
		}
		m.Flags = splitFlags(flags)
		m.InternalDate = time.Unix(date, 0).In(zones.zone(int(tz)))
		m.envelope, m.structure = envelope, structure // no copy: m lives only during fn
		if err := fn(m); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("fetch from mailbox %d: %w", mailboxID, err)
	}
	return nil
}

// zoneCache reuses the fixed zone of the previous message: a mailbox's
// internal dates mostly share one offset, and time.FixedZone allocates.
type zoneCache struct {
	offset int
	loc    *time.Location
}

func (c *zoneCache) zone(offset int) *time.Location {
	if c.loc == nil || c.offset != offset {
		c.offset, c.loc = offset, time.FixedZone("", offset)
	}
	return c.loc
}

// Envelope decodes the cached envelope.
func (m *MessageMeta) Envelope() (*imap.Envelope, error) {
	if m.decodedEnvelope != nil {
		return m.decodedEnvelope, nil
	}
	return decodeEnvelope(m.envelope)
}

// Detach decodes the envelope and body structure asked for and lets go of
// the store's bytes, so that m stays valid after the Fetch callback
// returns: a caller may then write it from another goroutine.
func (m *MessageMeta) Detach(envelope, structure bool) error {
	var err error
	if envelope {
		if m.decodedEnvelope, err = decodeEnvelope(m.envelope); err != nil {
			return err
		}
	}
	if structure {
		if m.decodedStructure, err = decodeStructure(m.structure); err != nil {
			return err
		}
	}
	m.envelope, m.structure = nil, nil
	return nil
}

// BodyStructure decodes the cached body structure.
func (m *MessageMeta) BodyStructure() (imap.BodyStructure, error) {
	if m.decodedStructure != nil {
		return m.decodedStructure, nil
	}
	return decodeStructure(m.structure)
}

// Raw returns a message exactly as it was stored.
func (db *DB) Raw(ctx context.Context, id MailboxID, uid UID) ([]byte, error) {
	raw, _, err := db.readMessage(ctx, id, uid, nil)
	return raw, err
}

// ErrNoMessage is returned for a UID that names no message (any more).
var ErrNoMessage = errors.New("mailstore: no such message")

// WithRaw calls fn with a message exactly as it was stored, holding the
// message's share of the memory budget until fn returns: fn should copy
// out what it needs (to a file for large messages) rather than write to a
// client that may read slowly. The message is read a segment at a time on
// a connection that does not map the database, so reading it costs the
// bytes once, and a segment.
func (db *DB) WithRaw(ctx context.Context, id MailboxID, uid UID, fn func(raw []byte) error) error {
	admit := func(size int64) (func(), error) { return db.budget.Acquire(ctx, size+min(size, segmentSize)) }
	raw, release, err := db.readMessage(ctx, id, uid, admit)
	if err != nil {
		return err
	}
	defer release()
	return fn(raw)
}

// readMessage reads a message's segments; see readSegments for admit.
func (db *DB) readMessage(ctx context.Context, id MailboxID, uid UID, admit func(int64) (func(), error)) ([]byte, func(), error) {
	if _, err := ownedMailbox(ctx, db.r, id); err != nil {
		return nil, nil, fmt.Errorf("read message %d in mailbox %s: %w", uid, id, err)
	}
	raw, release, err := readSegments(ctx, db.text, admit, `SELECT b.size, s.data FROM messages m JOIN bodies b ON b.id = m.body_id
		LEFT JOIN body_segments s ON s.body_id = b.id WHERE m.mailbox_id = ? AND m.uid = ? ORDER BY s.n`, id.row, uid)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNoMessage
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read message %d in mailbox %s: %w", uid, id, err)
	}
	return raw, release, nil
}

// StoreFlags changes the flags of the given messages (sorted ascending);
// messages that no longer exist are skipped.
func (db *DB) StoreFlags(ctx context.Context, id MailboxID, uids []UID, op imap.StoreFlagsOp, flags []string) error {
	_, err := db.StoreFlagsUnchangedSince(ctx, id, uids, op, flags, 0)
	return err
}

// StoreFlagsUnchangedSince is StoreFlags for CONDSTORE's UNCHANGEDSINCE
// (RFC 7162 §3.1.3): messages whose mod-sequence is above unchangedSince
// are left alone and returned, checked in the transaction that changes the
// others. 0 means no condition.
func (db *DB) StoreFlagsUnchangedSince(ctx context.Context, id MailboxID, uids []UID, op imap.StoreFlagsOp, flags []string, unchangedSince uint64) ([]UID, error) {
	arg, err := canonicalFlags(flags)
	if err != nil {
		return nil, fmt.Errorf("store flags: %w", err)
	}
	if len(uids) == 0 {
		return nil, nil
	}
	mailboxID := id.row
	var modified []UID
	err = db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		if _, err := ownedMailbox(ctx, tx, id); err != nil {
			return nil, err
		}
		cur, err := flagsOf(ctx, tx, mailboxID, uids)
		if err != nil {
			return nil, err
		}
		update, err := tx.PrepareContext(ctx, "UPDATE messages SET flags = ? WHERE mailbox_id = ? AND uid = ?")
		if err != nil {
			return nil, err
		}
		defer update.Close()
		c := Change{Kind: ChangeFlags}
		modified = nil // a retried transaction starts over
		for _, m := range cur {
			if unchangedSince != 0 && m.modSeq > unchangedSince {
				modified = append(modified, m.uid)
				continue
			}
			next, err := applyFlags(m.flags, op, arg)
			if err != nil {
				return nil, err
			}
			if len(next) > MaxFlagsPerMessage {
				return nil, ErrTooManyFlags
			}
			if slices.Equal(next, m.flags) {
				continue
			}
			if _, err := update.ExecContext(ctx, joinFlags(next), mailboxID, m.uid); err != nil {
				return nil, err
			}
			c.UIDs = append(c.UIDs, m.uid)
			c.Flags = append(c.Flags, next)
		}
		if len(c.UIDs) == 0 {
			return nil, nil
		}
		return []change{{mailboxID: mailboxID, Change: c}}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store flags in mailbox %s: %w", id, err)
	}
	return modified, nil
}

type uidFlags struct {
	uid    UID
	flags  []string
	modSeq uint64
}

// flagsOf reads the flags of the existing messages among uids (ascending).
func flagsOf(ctx context.Context, q querier, mailboxID int64, uids []UID) ([]uidFlags, error) {
	rows, err := q.QueryContext(ctx, "SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid",
		mailboxID, uids[0], uids[len(uids)-1])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uidFlags
	i := 0
	for rows.Next() {
		var m uidFlags
		var flags string
		if err := rows.Scan(&m.uid, &flags, &m.modSeq); err != nil {
			return nil, err
		}
		for i < len(uids) && uids[i] < m.uid {
			i++
		}
		if i == len(uids) {
			break
		}
		if uids[i] == m.uid {
			m.flags = splitFlags(flags)
			out = append(out, m)
		}
	}
	return out, rows.Err()
}

func allUIDs(ctx context.Context, q querier, mailboxID int64) ([]UID, error) {
	rows, err := q.QueryContext(ctx, "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", mailboxID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var uids []UID
	for rows.Next() {
		var uid UID
		if err := rows.Scan(&uid); err != nil {
			return nil, err
		}
		uids = append(uids, uid)
	}
	return uids, rows.Err()
}

// Expunge removes the messages flagged \Deleted, only among uids (sorted
// ascending) unless uids is nil, and returns the UIDs removed.
func (db *DB) Expunge(ctx context.Context, id MailboxID, uids []UID) ([]UID, error) {
	var gone []UID
	mailboxID := id.row
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		if _, err := ownedMailbox(ctx, tx, id); err != nil {
			return nil, err
		}
		rows, err := tx.QueryContext(ctx, `SELECT uid FROM messages WHERE mailbox_id = ? AND instr(flags, '\Deleted') > 0 ORDER BY uid`, mailboxID)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var uid UID
			if err := rows.Scan(&uid); err != nil {
				rows.Close()
				return nil, err
			}
			if uids == nil || containsUID(uids, uid) {
				gone = append(gone, uid)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		del, err := tx.PrepareContext(ctx, "DELETE FROM messages WHERE mailbox_id = ? AND uid = ?")
		if err != nil {
			return nil, err
		}
		defer del.Close()
		for _, uid := range gone {
			if _, err := del.ExecContext(ctx, mailboxID, uid); err != nil {
				return nil, err
			}
		}
		if len(gone) == 0 {
			return nil, nil
		}
		return []change{{mailboxID: mailboxID, Change: Change{Kind: ChangeExpunged, UIDs: gone}}}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("expunge mailbox %s: %w", id, err)
	}
	return gone, nil
}

func containsUID(sorted []UID, uid UID) bool {
	_, ok := slices.BinarySearch(sorted, uid)
	return ok
}

// Copy copies messages (uids sorted ascending) into another mailbox of the
// same account. The copies are independent messages with their own UIDs and
// flags; only the immutable body is shared.
func (db *DB) Copy(ctx context.Context, id MailboxID, uids []UID, dest string) (Copied, error) {
	var out Copied
	mailboxID := id.row
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		dst, err := destination(ctx, tx, id, dest)
		if err != nil {
			return nil, err
		}
		out.UIDValidity = dst.UIDValidity
		src, err := flagsOf(ctx, tx, mailboxID, orNone(uids))
		if err != nil || len(src) == 0 {
			return nil, err
		}
		first, err := allocateUIDs(ctx, tx, dst.ID.row, len(src))
		if err != nil {
			return nil, err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO messages (mailbox_id, uid, body_id, flags, internal_date, internal_tz)
			SELECT ?, ?, body_id, flags, internal_date, internal_tz FROM messages WHERE mailbox_id = ? AND uid = ?`)
		if err != nil {
			return nil, err
		}
		defer ins.Close()
		c := Change{Kind: ChangeAppended}
		for i, m := range src {
			uid := first + UID(i)
			if _, err := ins.ExecContext(ctx, dst.ID.row, uid, mailboxID, m.uid); err != nil {
				return nil, err
			}
			out.SourceUIDs = append(out.SourceUIDs, m.uid)
			out.DestUIDs = append(out.DestUIDs, uid)
			c.UIDs = append(c.UIDs, uid)
			c.Flags = append(c.Flags, m.flags)
		}
		return []change{{mailboxID: dst.ID.row, Change: c}}, nil
	})
	if err != nil {
		return Copied{}, fmt.Errorf("copy to %q: %w", dest, err)
	}
	return out, nil
}

// Move moves messages (uids sorted ascending) into a mailbox of the same
// account in one transaction: they get new UIDs there and are expunged
// here. Moving into the same mailbox renumbers them, as Dovecot does.
func (db *DB) Move(ctx context.Context, id MailboxID, uids []UID, dest string) (Copied, error) {
	var out Copied
	mailboxID := id.row
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		dst, err := destination(ctx, tx, id, dest)
		if err != nil {
			return nil, err
		}
		out.UIDValidity = dst.UIDValidity
		moved, err := flagsOf(ctx, tx, mailboxID, orNone(uids))
		if err != nil || len(moved) == 0 {
			return nil, err
		}
		src := make([]UID, len(moved))
		for i, m := range moved {
			src[i] = m.uid
		}
		out.SourceUIDs, out.DestUIDs, err = moveMessages(ctx, tx, mailboxID, src, dst.ID.row)
		if err != nil {
			return nil, err
		}
		added := Change{Kind: ChangeAppended, UIDs: out.DestUIDs}
		for _, m := range moved {
			added.Flags = append(added.Flags, m.flags)
		}
		// Expunged first: within one mailbox, a session then hears EXPUNGE
		// and the new EXISTS, as from Dovecot.
		return []change{
			{mailboxID: mailboxID, Change: Change{Kind: ChangeExpunged, UIDs: out.SourceUIDs}},
			{mailboxID: dst.ID.row, Change: added},
		}, nil
	})
	if err != nil {
		return Copied{}, fmt.Errorf("move to %q: %w", dest, err)
	}
	return out, nil
}

// orNone keeps BETWEEN queries valid for an empty UID list.
func orNone(uids []UID) []UID {
	if len(uids) == 0 {
		return []UID{0}
	}
	return uids
}

// destination checks the source mailbox and looks up dest in its account.
func destination(ctx context.Context, tx *sql.Tx, src MailboxID, dest string) (Mailbox, error) {
	if _, err := ownedMailbox(ctx, tx, src); err != nil {
		return Mailbox{}, err
	}
	return mailboxByName(ctx, tx, src.account, dest)
}

// moveMessages re-homes existing messages (src ascending) into destID with
// fresh UIDs.
func moveMessages(ctx context.Context, tx *sql.Tx, srcID int64, src []UID, destID int64) ([]UID, []UID, error) {
	if len(src) == 0 {
		return nil, nil, nil
	}
	first, err := allocateUIDs(ctx, tx, destID, len(src))
	if err != nil {
		return nil, nil, err
	}
	upd, err := tx.PrepareContext(ctx, "UPDATE messages SET mailbox_id = ?, uid = ? WHERE mailbox_id = ? AND uid = ?")
	if err != nil {
		return nil, nil, err
	}
	defer upd.Close()
	dst := make([]UID, len(src))
	for i, uid := range src {
		dst[i] = first + UID(i)
		if _, err := upd.ExecContext(ctx, destID, dst[i], srcID, uid); err != nil {
			return nil, nil, err
		}
	}
	return src, dst, nil
}
