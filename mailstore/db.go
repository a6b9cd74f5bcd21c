package mailstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/asmtp/asmtp/internal/sqlitedb"
)

// DB is the SQLite-backed Store (internal/sqlitedb). It holds one writer
// connection (two: one commits without fsync, see writeRelaxed),
// serialised by writeMu so that watchers are told of changes in commit
// order, and pools of read-only connections that WAL lets run beside the
// writer; the WAL is checkpointed in the background.
type DB struct {
	sql     *sqlitedb.DB
	w       *sql.DB // sql.Durable
	relaxed *sql.DB // sql.Relaxed: the writer without fsync at commit, for writeRelaxed
	r       *sql.DB
	text    *sql.DB // reads message text for SEARCH, without mmap: see Search

	writeMu  sync.Mutex                      // one write transaction at a time; also guards watchers
	watchers map[int64]map[*watcher]struct{} // by mailbox ID

	budget   *MemoryBudget // see budget.go
	spoolDir string        // where AppendFrom spools messages: the database's directory
}

type watcher struct{ fn func(Change) }

// migrations are applied in order (sqlitedb.Open); PRAGMA user_version
// counts the applied ones. Append new steps, never edit old ones.
var migrations = []string{`
CREATE TABLE accounts (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	last_uid_validity INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE mailboxes (
	id INTEGER PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	special_use TEXT NOT NULL DEFAULT '',
	uid_validity INTEGER NOT NULL,
	uid_next INTEGER NOT NULL DEFAULT 1,
	subscribed INTEGER NOT NULL DEFAULT 1,
	UNIQUE (account_id, name)
);
-- One row per distinct stored body; COPY shares it, so it is kept while any
-- message refers to it (trigger below). Small, hot columns only: FETCH
-- ENVELOPE reads this table without touching the large ones.
CREATE TABLE bodies (
	id INTEGER PRIMARY KEY,
	size INTEGER NOT NULL,
	sent_day INTEGER,           -- day of the Date: header as YYYYMMDD in its own zone, NULL if absent or unparsable
	envelope BLOB NOT NULL,     -- binary, see envelope.go
	structure BLOB NOT NULL     -- JSON, see cache.go
);
CREATE TABLE body_data (
	body_id INTEGER PRIMARY KEY REFERENCES bodies(id) ON DELETE CASCADE,
	header_text TEXT NOT NULL,  -- decoded header fields, lower case, one "name: value" a line
	body_text TEXT NOT NULL,    -- decoded text parts, lower case
	raw BLOB NOT NULL           -- the message exactly as received; last, so reads of the columns before it skip its overflow pages
);
CREATE TABLE messages (
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid INTEGER NOT NULL,
	body_id INTEGER NOT NULL REFERENCES bodies(id),
	flags TEXT NOT NULL DEFAULT '',   -- canonical flags separated by spaces
	internal_date INTEGER NOT NULL,   -- unix seconds
	internal_tz INTEGER NOT NULL,     -- zone offset in seconds
	PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX messages_body ON messages(body_id);
CREATE TRIGGER messages_drop_body AFTER DELETE ON messages
WHEN NOT EXISTS (SELECT 1 FROM messages WHERE body_id = OLD.body_id)
BEGIN
	DELETE FROM bodies WHERE id = OLD.body_id;
END;
`, `
-- Outbound queue (outbox.go): each message submitted over SMTP once, and one
-- row per recipient until it is delivered or bounced.
CREATE TABLE outbox (
	id INTEGER PRIMARY KEY,
	account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
	envelope_from TEXT NOT NULL,
	raw BLOB NOT NULL,                -- the copy every recipient gets (Bcc removed)
	queued_at INTEGER NOT NULL        -- unix milliseconds
);
CREATE TABLE outbox_recipients (
	outbox_id INTEGER NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
	passport BLOB NOT NULL,           -- 16 bytes: whom the address names
	address TEXT NOT NULL,            -- as the client wrote it in RCPT TO
	message_id BLOB NOT NULL,         -- 16 bytes, drawn once: every attempt reuses it
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,    -- unix milliseconds
	last_error TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (outbox_id, passport)
) WITHOUT ROWID;
CREATE INDEX outbox_recipients_due ON outbox_recipients(next_attempt);
-- Inbound reassembly (reassembly.go): chunks of messages not yet complete,
-- the messages already delivered (replays are ignored) and how far each
-- topic has been read.
CREATE TABLE inbound_chunks (
	account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
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
	account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
	sender BLOB NOT NULL,
	message_id BLOB NOT NULL,
	delivered_at INTEGER NOT NULL,    -- unix milliseconds
	PRIMARY KEY (account, sender, message_id)
) WITHOUT ROWID;
CREATE INDEX inbound_delivered_age ON inbound_delivered(account, delivered_at);
CREATE TABLE inbound_cursors (
	account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
	topic BLOB NOT NULL,
	cursor INTEGER NOT NULL,
	PRIMARY KEY (account, topic)
) WITHOUT ROWID;
`, `
-- When the sender was told its mail is delayed (outbox.go, DeliveryDelayed):
-- unix milliseconds, 0 while not.
ALTER TABLE outbox_recipients ADD COLUMN warned_at INTEGER NOT NULL DEFAULT 0;
`, `
-- When every chunk of the message was stored on the node while no other
-- holder of the recipient's topic was known (outbox.go, DeliveryHanded):
-- unix milliseconds, 0 while not. Such a row is not published again; it
-- waits for a holder to be seen.
ALTER TABLE outbox_recipients ADD COLUMN handed_at INTEGER NOT NULL DEFAULT 0;
`, `
-- Mailbox ids are never reused: a plain INTEGER PRIMARY KEY hands a deleted
-- mailbox's id (the largest) to the next mailbox created, and a session that
-- still had the old one selected would reach the new one, of any account.
-- insertMailbox takes ids from this counter instead (AUTOINCREMENT would
-- need the table rebuilt, which its foreign keys make unsafe in a
-- transaction). Ids handed out before this migration cannot be told apart;
-- the counter starts past the largest in use.
CREATE TABLE mailbox_ids (last INTEGER NOT NULL);
INSERT INTO mailbox_ids (last) SELECT coalesce(max(id), 0) FROM mailboxes;
`, `
-- CONDSTORE and QRESYNC (modseq.go): every message has the mod-sequence of
-- its last change and every mailbox the highest it handed out; existing
-- messages and mailboxes start at 1. Expunged messages leave a tombstone
-- with the mod-sequence of their expunge, at most MaxTombstones a mailbox;
-- vanished_floor is the highest mod-sequence of a tombstone dropped to keep
-- that bound (0: none dropped), below which VANISHED is answered
-- conservatively.
ALTER TABLE mailboxes ADD COLUMN highest_modseq INTEGER NOT NULL DEFAULT 1;
ALTER TABLE mailboxes ADD COLUMN vanished_floor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN modseq INTEGER NOT NULL DEFAULT 1;
CREATE TABLE expunged (
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	modseq INTEGER NOT NULL,
	uid INTEGER NOT NULL,
	PRIMARY KEY (mailbox_id, modseq, uid)
) WITHOUT ROWID;
`, `
-- Message bodies and queued messages in segments of at most 1 MiB
-- (segment.go): SQLite copies a value it binds or reads in full, so whole
-- 25 MiB blobs cost 25 MiB of its memory per write and per read. Existing
-- blobs are cut into segments here; the outbox keeps the size it can no
-- longer take from length(raw).
CREATE TABLE body_segments (
	body_id INTEGER NOT NULL REFERENCES bodies(id) ON DELETE CASCADE,
	n INTEGER NOT NULL,
	data BLOB NOT NULL,
	PRIMARY KEY (body_id, n)
);
CREATE TABLE outbox_segments (
	outbox_id INTEGER NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
	n INTEGER NOT NULL,
	data BLOB NOT NULL,
	PRIMARY KEY (outbox_id, n)
);
WITH RECURSIVE seg(id, n, size) AS (
	SELECT body_id, 0, length(raw) FROM body_data WHERE length(raw) > 0
	UNION ALL SELECT id, n + 1, size FROM seg WHERE (n + 1) * 1048576 < size
)
INSERT INTO body_segments (body_id, n, data)
SELECT seg.id, seg.n, substr(d.raw, seg.n * 1048576 + 1, 1048576) FROM seg JOIN body_data d ON d.body_id = seg.id;
ALTER TABLE body_data DROP COLUMN raw;
ALTER TABLE outbox ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE outbox SET size = length(raw);
WITH RECURSIVE seg(id, n, size) AS (
	SELECT id, 0, size FROM outbox WHERE size > 0
	UNION ALL SELECT id, n + 1, size FROM seg WHERE (n + 1) * 1048576 < size
)
INSERT INTO outbox_segments (outbox_id, n, data)
SELECT seg.id, seg.n, substr(o.raw, seg.n * 1048576 + 1, 1048576) FROM seg JOIN outbox o ON o.id = seg.id;
ALTER TABLE outbox DROP COLUMN raw;
`, `
-- SORT and THREAD keys of each body (sortkeys.go), computed at insert; the
-- bodies stored before this step get theirs at Open (backfillSortKeys).
CREATE TABLE IF NOT EXISTS sort_keys (
	body_id INTEGER PRIMARY KEY REFERENCES bodies(id) ON DELETE CASCADE,
	sent_date INTEGER,          -- Date: as unix seconds, NULL if absent or unparsable
	subject TEXT NOT NULL,      -- base subject (RFC 5256), ASCII upper case
	reply INTEGER NOT NULL,     -- the subject marks a reply or forward
	from_key TEXT NOT NULL,     -- first From mailbox (local part), ASCII upper case
	to_key TEXT NOT NULL,
	cc_key TEXT NOT NULL,
	message_id TEXT NOT NULL,   -- lower case, without <>; '' if none
	refs TEXT NOT NULL          -- References (else the first In-Reply-To), lower case, space separated
);
`, `
-- Subscriptions are names, not mailboxes: deleting a subscribed mailbox
-- keeps its subscription (RFC 3501 §6.3.9), and LIST shows it \NonExistent.
-- mailboxes.subscribed is no longer read.
CREATE TABLE IF NOT EXISTS subscriptions (
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	name TEXT NOT NULL,
	PRIMARY KEY (account_id, name)
) WITHOUT ROWID;
INSERT OR IGNORE INTO subscriptions (account_id, name) SELECT account_id, name FROM mailboxes WHERE subscribed;
`}

// Open opens (creating if needed) the store in the SQLite file at path and
// brings its schema up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	sdb, err := sqlitedb.Open(ctx, path, migrations, "foreign_keys(1)")
	if err != nil {
		return nil, fmt.Errorf("mailstore: %w", err)
	}
	db := &DB{sql: sdb, w: sdb.Durable, relaxed: sdb.Relaxed, watchers: make(map[int64]map[*watcher]struct{}),
		budget: NewMemoryBudget(DefaultMemoryBudget, DefaultBudgetWait), spoolDir: filepath.Dir(path)}
	removeSpooled(db.spoolDir)
	if db.r, err = sdb.Readers(8, "cache_size(-16384)", "mmap_size(268435456)"); err == nil {
		db.text, err = sdb.Readers(textReaders, "cache_size(-2048)", "mmap_size(0)")
	}
	if err != nil {
		sdb.Close()
		return nil, fmt.Errorf("mailstore: %w", err)
	}
	if err := db.backfillSortKeys(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("mailstore: open %s: %w", path, err)
	}
	return db, nil
}

// textReaders is how many connections read message text for SEARCH at
// once. They map no memory: every one of the read pool's connections maps
// the file on its own, and SEARCH BODY reading megabytes of text through
// them grew the resident set by the text times the connections.
const textReaders = 4

// Close closes the database. Watchers get no further changes.
func (db *DB) Close() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	return db.sql.Close()
}

// change is a Change waiting for its transaction to commit.
type change struct {
	mailboxID int64
	Change
}

// write runs fn in one write transaction and, once it has committed
// durably, tells the watchers about the changes fn reported.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) ([]change, error)) error {
	return db.writeOn(ctx, db.w, fn)
}

// writeRelaxed is write without the fsync at commit: the transaction
// survives a crash of the process but not of the machine, unless a later
// write commits (that fsync covers the whole WAL before it). Only for what
// can be rebuilt from elsewhere until such a write.
func (db *DB) writeRelaxed(ctx context.Context, fn func(tx *sql.Tx) ([]change, error)) error {
	return db.writeOn(ctx, db.relaxed, fn)
}

func (db *DB) writeOn(ctx context.Context, conn *sql.DB, fn func(tx *sql.Tx) ([]change, error)) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	defer db.sql.Committed()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	changes, err := fn(tx)
	if err == nil {
		err = stampModSeqs(ctx, tx, changes)
	}
	if err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	origin := originOf(ctx)
	for _, c := range changes {
		c.Origin = origin
		for w := range db.watchers[c.mailboxID] {
			w.fn(c.Change)
		}
		if c.Kind == ChangeMailboxDeleted {
			delete(db.watchers, c.mailboxID)
		}
	}
	return nil
}

// Watch returns the current state of a mailbox and calls fn with every change
// committed after it, in commit order, until the returned stop function is
// called. fn runs while the store's write lock is held: it must be quick,
// must not block, and must not call the store.
func (db *DB) Watch(ctx context.Context, id MailboxID, fn func(Change)) (Snapshot, func(), error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	var snap Snapshot
	mb, err := ownedMailbox(ctx, db.r, id)
	if err != nil {
		return snap, nil, fmt.Errorf("watch mailbox %s: %w", id, err)
	}
	snap.Mailbox = mb
	mailboxID := id.row
	rows, err := db.r.QueryContext(ctx, "SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? ORDER BY uid", mailboxID)
	if err != nil {
		return snap, nil, fmt.Errorf("watch mailbox %d: %w", mailboxID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var uid UID
		var flags string
		var modSeq uint64
		if err := rows.Scan(&uid, &flags, &modSeq); err != nil {
			return snap, nil, fmt.Errorf("watch mailbox %d: %w", mailboxID, err)
		}
		snap.UIDs = append(snap.UIDs, uid)
		snap.Flags = append(snap.Flags, splitFlags(flags))
		snap.ModSeqs = append(snap.ModSeqs, modSeq)
	}
	if err := rows.Err(); err != nil {
		return snap, nil, fmt.Errorf("watch mailbox %d: %w", mailboxID, err)
	}
	w := &watcher{fn: fn}
	if db.watchers[mailboxID] == nil {
		db.watchers[mailboxID] = make(map[*watcher]struct{})
	}
	db.watchers[mailboxID][w] = struct{}{}
	stop := func() {
		db.writeMu.Lock()
		defer db.writeMu.Unlock()
		delete(db.watchers[mailboxID], w)
		if len(db.watchers[mailboxID]) == 0 {
			delete(db.watchers, mailboxID)
		}
	}
	return snap, stop, nil
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}
