package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/asmtp/asmtp/asmtp/card"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/sqlitedb"
	"github.com/asmtp/asmtp/mailstore/reassembly"
)

// schema is the local database, version 1 (PRAGMA user_version);
// reassemblySchema brings it to version 2 and namingSchema (naming.go) to
// version 3.
//
// contacts.synced_at is the per-topic sync cursor: the client time at which
// the last complete sync of the topic started. It only narrows what is
// asked for; duplicates are told apart by message id (messages) and by the
// hash of the sealed content (seen), never by comparing clocks.
const schema = `
CREATE TABLE contacts (
	id          INTEGER PRIMARY KEY,
	petname     TEXT NOT NULL UNIQUE,
	passport_id BLOB NOT NULL UNIQUE,
	blocks      BLOB NOT NULL,
	shared_key  BLOB NOT NULL,
	topic       BLOB NOT NULL UNIQUE,
	synced_at   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE messages (
	contact     INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
	id          BLOB NOT NULL,
	kind        INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	data        BLOB NOT NULL,
	PRIMARY KEY (contact, id)
);
CREATE INDEX messages_by_id ON messages (id);
CREATE TABLE chunks (
	contact     INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
	id          BLOB NOT NULL,
	idx         INTEGER NOT NULL,
	count       INTEGER NOT NULL,
	total       INTEGER NOT NULL,
	data        BLOB NOT NULL,
	received_at INTEGER NOT NULL,
	PRIMARY KEY (contact, id, idx)
);
CREATE TABLE seen (
	hash    BLOB PRIMARY KEY,
	seen_at INTEGER NOT NULL
);
PRAGMA user_version = 1;
`

// reassemblySchema (version 2) moves the chunks of incomplete messages to
// mailstore/reassembly's tables, the bridge's reassembly, and records the
// messages held as appended there. Chunks held in the old table carried
// no kind, so they are dropped, and the topics they came on are read
// again from the start, with the record of contents seen, to fetch them
// anew: nothing waiting is lost, and messages held stay once.
const reassemblySchema = reassembly.Schema + `
INSERT INTO inbound_delivered (account, sender, message_id, delivered_at)
	SELECT '', c.shared_key, m.id, m.received_at * 1000 FROM messages m JOIN contacts c ON c.id = m.contact;
UPDATE contacts SET synced_at = 0 WHERE id IN (SELECT contact FROM chunks);
DELETE FROM seen WHERE EXISTS (SELECT 1 FROM chunks);
DROP TABLE chunks;
PRAGMA user_version = 2;
`

// reassemblyScope is the one scope of asmtp-cli's reassembly: chunks are
// told apart by their sender's key.
const reassemblyScope = ""

// reassemblyLimits bound the incomplete messages held, as the bridge's
// defaults do; the messages idle longest give way.
var reassemblyLimits = reassembly.Limits{MaxMessages: mail.DefaultMaxPending, MaxBytes: mail.DefaultMaxPendingBytes}

// Retention of the bookkeeping tables.
const (
	// seenRetention outlives the node's message retention (30 days by
	// default), so a query can never bring back content we forgot.
	seenRetention = 90 * 24 * time.Hour
	// chunkRetention drops the chunks of messages that never completed
	// (longer than mail.DefaultTimeout: the client syncs when started).
	chunkRetention = 30 * 24 * time.Hour
)

// db is the local database: contacts, received messages, chunks of
// incomplete messages and the hashes of every topic content handled.
type db struct{ sql *sql.DB }

// contact is someone whose passport was imported under a petname.
type contact struct {
	id        int64
	petname   string
	passport  passport.Hash
	blocks    []byte
	sharedKey keys.SharedKey
	topic     topic.Topic // derived from our shared key and theirs
	syncedAt  time.Time   // zero: never synced

	naming     scheme     // how we reach them (naming.go)
	card       *card.Card // their newest card; nil before one came
	cardSentAt time.Time  // zero: our card never went to them
}

// message is a received message, reassembled.
type message struct {
	contactID  int64
	petname    string
	id         mail.MessageID
	kind       mail.Kind
	receivedAt time.Time
	data       []byte
}

// openDB opens, creating if needed, the database at path (mode 0600).
func openDB(ctx context.Context, path string) (*db, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	f.Close()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_txlock", "immediate")
	s, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s.SetMaxOpenConns(1)
	d := &db{sql: s}
	if err := d.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return d, nil
}

func (d *db) close() error { return d.sql.Close() }

func (d *db) migrate(ctx context.Context) error {
	var version int
	if err := d.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	steps := []string{schema, reassemblySchema, namingSchema}
	if version > len(steps) {
		return fmt.Errorf("database version %d is newer than this asmtp-cli (%d)", version, len(steps))
	}
	for v, script := range steps[version:] {
		if err := d.migrateStep(ctx, script); err != nil {
			return fmt.Errorf("migrate to version %d: %w", version+v+1, err)
		}
	}
	return nil
}

func (d *db) migrateStep(ctx context.Context, script string) error {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, script); err != nil {
		return err
	}
	return tx.Commit()
}

// addContact stores a new contact; petname and passport must be new.
func (d *db) addContact(ctx context.Context, c contact) error {
	_, err := d.sql.ExecContext(ctx, `INSERT INTO contacts (petname, passport_id, blocks, shared_key, topic) VALUES (?, ?, ?, ?, ?)`,
		c.petname, c.passport[:], c.blocks, c.sharedKey[:], c.topic[:])
	if err != nil {
		return fmt.Errorf("add contact %s: %w", c.petname, err)
	}
	return nil
}

const contactColumns = `id, petname, passport_id, blocks, shared_key, topic, synced_at,
	scheme, card_seed, card_node, card_addr, card_issued, card_sent_at`

func scanContact(row interface{ Scan(...any) error }) (contact, error) {
	var (
		c                      contact
		id, shared, topicBytes []byte
		synced                 int64
		n                      namingRow
	)
	if err := row.Scan(&c.id, &c.petname, &id, &c.blocks, &shared, &topicBytes, &synced,
		&n.scheme, &n.seed, &n.node, &n.addr, &n.issued, &n.sentAt); err != nil {
		return c, err
	}
	n.fill(&c)
	if len(id) != passport.HashSize || len(shared) != keys.PublicKeySize || len(topicBytes) != topic.Size {
		return c, fmt.Errorf("contact %s: corrupt row", c.petname)
	}
	c.passport, c.sharedKey, c.topic = passport.Hash(id), keys.SharedKey(shared), topic.Topic(topicBytes)
	if synced > 0 {
		c.syncedAt = time.Unix(synced, 0)
	}
	return c, nil
}

// contacts returns every contact, by petname.
func (d *db) contacts(ctx context.Context) ([]contact, error) {
	cs, err := sqlitedb.Select(ctx, d.sql, scanContact, `SELECT `+contactColumns+` FROM contacts ORDER BY petname`)
	if err != nil {
		return nil, fmt.Errorf("list contacts: %w", err)
	}
	return cs, nil
}

// contactByTopic finds the contact a topic belongs to.
func (d *db) contactByTopic(ctx context.Context, t topic.Topic) (contact, bool, error) {
	c, err := scanContact(d.sql.QueryRowContext(ctx, `SELECT `+contactColumns+` FROM contacts WHERE topic = ?`, t[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("contact of topic %s: %w", t, err)
	}
	return c, true, nil
}

// contactByPassport finds a contact by passport id.
func (d *db) contactByPassport(ctx context.Context, id passport.Hash) (contact, bool, error) {
	c, err := scanContact(d.sql.QueryRowContext(ctx, `SELECT `+contactColumns+` FROM contacts WHERE passport_id = ?`, id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("contact %s: %w", id, err)
	}
	return c, true, nil
}

// findContact resolves what a user typed: a petname, a passport id in
// hex, or a pseudo-address "<passport id>@asmtp".
func (d *db) findContact(ctx context.Context, name string) (contact, error) {
	c, err := scanContact(d.sql.QueryRowContext(ctx, `SELECT `+contactColumns+` FROM contacts WHERE petname = ?`, name))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("contact %s: %w", name, err)
	}
	if id, perr := passport.ParseHash(strings.TrimSuffix(strings.ToLower(name), "@"+addressDomain)); perr == nil {
		c, ok, err := d.contactByPassport(ctx, id)
		if err != nil || ok {
			return c, err
		}
	}
	return c, fmt.Errorf("no contact %q: import their passport with --import-passport FILE --name PETNAME (see `asmtp-cli contacts`)", name)
}

// setSyncedAt records that a complete sync of the contact's topic started at t.
func (d *db) setSyncedAt(ctx context.Context, contactID int64, t time.Time) error {
	if _, err := d.sql.ExecContext(ctx, `UPDATE contacts SET synced_at = ? WHERE id = ?`, t.Unix(), contactID); err != nil {
		return fmt.Errorf("save sync cursor: %w", err)
	}
	return nil
}

const messageColumns = `m.contact, c.petname, m.id, m.kind, m.received_at, m.data`

func scanMessage(row interface{ Scan(...any) error }) (message, error) {
	var (
		m        message
		id       []byte
		kind     int
		received int64
	)
	if err := row.Scan(&m.contactID, &m.petname, &id, &kind, &received, &m.data); err != nil {
		return m, err
	}
	if len(id) != mail.IDSize {
		return m, fmt.Errorf("message of %s: corrupt id", m.petname)
	}
	m.id, m.kind, m.receivedAt = mail.MessageID(id), mail.Kind(kind), time.Unix(received, 0)
	return m, nil
}

// messages returns the received messages, oldest first: all of them, or
// a contact's when contactID is not 0.
func (d *db) messages(ctx context.Context, contactID int64) ([]message, error) {
	ms, err := sqlitedb.Select(ctx, d.sql, scanMessage, `SELECT `+messageColumns+` FROM messages m JOIN contacts c ON c.id = m.contact
		WHERE ? = 0 OR m.contact = ? ORDER BY m.received_at, m.rowid`, contactID, contactID)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	return ms, nil
}

// messageByID finds a message by its id or an unambiguous prefix of it
// (at least 4 hex characters).
func (d *db) messageByID(ctx context.Context, prefix string) (message, error) {
	prefix = strings.ToLower(strings.TrimSpace(prefix))
	if len(prefix) < 4 || len(prefix) > 2*mail.IDSize || strings.Trim(prefix, "0123456789abcdef") != "" {
		return message{}, fmt.Errorf("message id %q: want 4 to %d hex characters", prefix, 2*mail.IDSize)
	}
	found, err := sqlitedb.Select(ctx, d.sql, scanMessage, `SELECT `+messageColumns+` FROM messages m JOIN contacts c ON c.id = m.contact
		WHERE lower(hex(m.id)) LIKE ? LIMIT 2`, prefix+"%")
	if err != nil {
		return message{}, fmt.Errorf("message %s: %w", prefix, err)
	}
	switch len(found) {
	case 0:
		return message{}, fmt.Errorf("no message %s (see `asmtp-cli list`)", prefix)
	case 1:
		return found[0], nil
	}
	return message{}, fmt.Errorf("message id %s is ambiguous: type more of it", prefix)
}

// countMessages returns how many messages each contact has.
func (d *db) countMessages(ctx context.Context) (map[int64]int, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT contact, count(*) FROM messages GROUP BY contact`)
	if err != nil {
		return nil, fmt.Errorf("count messages: %w", err)
	}
	defer rows.Close()
	counts := make(map[int64]int)
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count messages: %w", err)
		}
		counts[id] = n
	}
	return counts, rows.Err()
}

// seen reports whether a topic content (by hash) was handled before.
func (d *db) seen(ctx context.Context, hash [32]byte) (bool, error) {
	var one int
	err := d.sql.QueryRowContext(ctx, `SELECT 1 FROM seen WHERE hash = ?`, hash[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("seen: %w", err)
	}
	return true, nil
}

// markSeen records topic contents (by hash) as handled: received, sent by
// us, or rejected.
func (d *db) markSeen(ctx context.Context, now time.Time, hashes ...[32]byte) error {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("mark seen: %w", err)
	}
	defer tx.Rollback()
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO seen (hash, seen_at) VALUES (?, ?)`, h[:], now.Unix()); err != nil {
			return fmt.Errorf("mark seen: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("mark seen: %w", err)
	}
	return nil
}

// addChunk records an opened chunk from contact c in one transaction: the
// content's hash is marked seen, and the chunk either completes a message,
// which is stored, or waits in chunks. It returns the message when this
// chunk made a new one; a message already stored (a resend, a chunk seen
// again) gives nil.
func (d *db) addChunk(ctx context.Context, c contact, hash [32]byte, ch mail.Chunk, now time.Time) (*message, error) {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store chunk: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO seen (hash, seen_at) VALUES (?, ?)`, hash[:], now.Unix()); err != nil {
		return nil, fmt.Errorf("store chunk: %w", err)
	}
	m, err := joinChunk(ctx, tx, c, ch, now)
	if err != nil && !errors.Is(err, mail.ErrMalformed) {
		return nil, fmt.Errorf("store chunk %d/%d of %s: %w", ch.Index+1, ch.Count, ch.ID, err)
	}
	// A malformed chunk is rejected but still marked seen.
	if cerr := tx.Commit(); cerr != nil {
		return nil, fmt.Errorf("store chunk: %w", cerr)
	}
	if err != nil {
		return nil, fmt.Errorf("chunk %d/%d of %s: %w", ch.Index+1, ch.Count, ch.ID, err)
	}
	return m, nil
}

// joinChunk adds ch to the chunks of its message (mailstore/reassembly)
// and, once all are there, stores the message, recorded as appended so
// that copies are ignored. A chunk that disagrees with the others is
// mail.ErrMalformed.
func joinChunk(ctx context.Context, tx *sql.Tx, c contact, ch mail.Chunk, now time.Time) (*message, error) {
	full := mail.Message{Sender: ch.Sender, ID: ch.ID, Kind: ch.Kind, Data: ch.Data}
	if ch.Count > 1 {
		res, err := reassembly.Add(ctx, tx, reassemblyScope, reassembly.Chunk{Sender: ch.Sender, ID: ch.ID,
			Kind: uint8(ch.Kind), Index: ch.Index, Count: ch.Count, Total: ch.Total, Data: ch.Data}, now, reassemblyLimits)
		if errors.Is(err, reassembly.ErrMismatch) {
			return nil, fmt.Errorf("%w: %v", mail.ErrMalformed, err)
		}
		if err != nil || res.Status != reassembly.ChunkComplete {
			return nil, err
		}
		if full, err = joinHeld(ctx, tx, ch); err != nil {
			return nil, err
		}
	}
	if full.Data == nil {
		full.Data = []byte{}
	}
	if appended, err := reassembly.MarkAppended(ctx, tx, reassemblyScope, ch.Sender, ch.ID, now); err != nil || !appended {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO messages (contact, id, kind, received_at, data) VALUES (?, ?, ?, ?, ?)`,
		c.id, full.ID[:], int(full.Kind), now.Unix(), full.Data); err != nil {
		return nil, err
	}
	return &message{contactID: c.id, petname: c.petname, id: full.ID, kind: full.Kind, receivedAt: time.Unix(now.Unix(), 0), data: full.Data}, nil
}

// joinHeld joins the chunks held for ch's message.
func joinHeld(ctx context.Context, tx *sql.Tx, ch mail.Chunk) (mail.Message, error) {
	held, err := reassembly.Chunks(ctx, tx, reassemblyScope, ch.Sender, ch.ID)
	if err != nil {
		return mail.Message{}, err
	}
	parts := make([]mail.Chunk, len(held))
	for i, p := range held {
		parts[i] = mail.Chunk{Sender: p.Sender, ID: p.ID, Kind: mail.Kind(p.Kind), Index: p.Index, Count: p.Count, Total: p.Total, Data: p.Data}
		if parts[i].Data == nil {
			parts[i].Data = []byte{}
		}
	}
	return mail.Join(parts)
}

// prune forgets old seen hashes and chunks of messages that never completed.
func (d *db) prune(ctx context.Context, now time.Time) error {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM seen WHERE seen_at < ?`, now.Add(-seenRetention).Unix()); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if _, err := reassembly.Expire(ctx, tx, reassemblyScope, now.Add(-chunkRetention)); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	return nil
}
