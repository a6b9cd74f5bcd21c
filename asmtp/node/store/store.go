// Package store is the node's persistence: one embedded SQLite database
// (pure-Go modernc.org/sqlite, WAL) holding the gossips the node learned,
// its users' topic registrations, the topic messages it keeps for them with
// a node-assigned monotonic cursor, passports, and the node's last-seen
// time with the catch-up windows it has not finished. The schema lives in
// one list of migrations in this file.
//
// Writes that something is acknowledged on (a user's registration, publish
// or passport) commit with synchronous=FULL before returning. Writes that
// acknowledge nothing (messages relayed from peers, learned gossips, the
// last-seen time and pending catch-ups) go through a second connection
// with synchronous=NORMAL: in WAL mode that survives a crash of the
// process, not of the machine, and it is four times faster (an fsync per
// commit dominates relay throughput). A mutex serialises writers, so
// SQLite never answers SQLITE_BUSY. Cursors are reserved durably a block
// at a time, so a crash that takes relaxed commits never makes the store
// reuse a cursor it handed out (reserveLocked).
//
// Durable message writes are group-committed (AddMessagesDurable): callers
// that arrive while another's commit holds the writer share the next
// transaction and its one fsync, and each returns only after that commit.
// The writers never checkpoint the WAL themselves: a third connection
// checkpoints passively in the background after commits, so acknowledged
// writes neither wait for nor depend on it. The connections, the
// checkpointer and the migrations are internal/sqlitedb's.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/sqlitedb"
)

// migrations are applied in order; PRAGMA user_version records how many
// ran. Append, never edit.
var migrations = []string{
	`CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value INTEGER NOT NULL
	);
	CREATE TABLE gossips (
		id    BLOB PRIMARY KEY,
		time  INTEGER NOT NULL,
		bytes BLOB NOT NULL
	);
	CREATE TABLE registrations (
		user  BLOB NOT NULL,
		topic BLOB NOT NULL,
		PRIMARY KEY (user, topic)
	);
	CREATE TABLE messages (
		cursor      INTEGER PRIMARY KEY AUTOINCREMENT,
		topic       BLOB NOT NULL,
		hash        BLOB NOT NULL,
		content     BLOB NOT NULL,
		received_at INTEGER NOT NULL,
		UNIQUE (topic, hash)
	);
	CREATE INDEX messages_by_topic_cursor ON messages (topic, cursor);
	CREATE INDEX messages_by_topic_time ON messages (topic, received_at);
	CREATE INDEX messages_by_time ON messages (received_at);
	CREATE TABLE passports (
		id         BLOB PRIMARY KEY,
		blocks     BLOB NOT NULL,
		updated_at INTEGER NOT NULL
	);`,
	// catch_ups holds, per registered topic, the start of a catch-up
	// window that has not completed yet (the node's package comment):
	// last_seen may only move past a window once it is recorded here.
	`CREATE TABLE catch_ups (
		topic BLOB PRIMARY KEY,
		since INTEGER NOT NULL
	);`,
	// origin is the node peer a message came from (Origin), local whether
	// a local user published it; fetched holds, per user and topic, the
	// cursor up to which the user has taken the messages for good. Both
	// order what Evict may remove. Messages stored before count as from
	// an unknown peer.
	`ALTER TABLE messages ADD COLUMN origin BLOB;
	ALTER TABLE messages ADD COLUMN local INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE fetched (
		user   BLOB NOT NULL,
		topic  BLOB NOT NULL,
		cursor INTEGER NOT NULL,
		PRIMARY KEY (user, topic)
	);`,
	// Naming v2 (PROTOCOL.md §16): inbox marks a registration of an inbox
	// topic (RegisterInbox), which the node subscribes to outside the
	// settled test and catches up only from named nodes; quiet marks a
	// passport kept without subscribing to its topic (KeepPassport).
	// held names, per topic a local user published on without the node
	// subscribing (PublishTo), the node it is for: the only node the
	// stored messages are pushed and answered to (§16.6, §16.7).
	`ALTER TABLE registrations ADD COLUMN inbox INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE passports ADD COLUMN quiet INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE held (
		topic BLOB PRIMARY KEY,
		node  BLOB NOT NULL,
		addr  TEXT NOT NULL,
		since INTEGER NOT NULL
	);`,
}

// Store is the node's database. Its methods are safe for concurrent use.
type Store struct {
	sql     *sqlitedb.DB
	db      *sql.DB    // sql.Durable, synchronous=FULL: acknowledged writes
	relaxed *sql.DB    // sql.Relaxed, synchronous=NORMAL: writes nobody waits on
	read    *sql.DB    // a pool of read-only connections: reads never wait for the writer
	write   sync.Mutex // one writer at a time across both connections

	// size is the bytes of message content stored (Size).
	size atomic.Int64

	// group holds the durable message writes waiting for the next group
	// commit (AddMessagesDurable).
	groupMu sync.Mutex
	group   []*durableAdd
	commits atomic.Int64 // durable group commits made, for tests

	// lastCursor is the largest cursor assigned; reserved the durable
	// bound no cursor handed out exceeds (reserveLocked). Both change
	// only under write.
	lastCursor int64
	reserved   atomic.Int64
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*Store, error) {
	sdb, err := sqlitedb.Open(ctx, path, migrations)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{sql: sdb, db: sdb.Durable, relaxed: sdb.Relaxed}
	if s.read, err = sdb.Readers(ReadConns); err == nil {
		if err = s.loadSize(ctx); err == nil {
			err = s.reserveAtOpen(ctx)
		}
	}
	if err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// Cursor reservation. Relayed messages are committed without fsync
// (Relaxed), and pushed to users at once; a machine crash can roll such
// commits back, and SQLite would then hand their cursors to the next
// messages stored. A user (the bridge) that recorded one of those cursors
// as read would skip the new messages. So cursors are reserved durably a
// block at a time: no cursor is assigned beyond the reserved bound, and
// each open starts numbering past the last bound, which is durable. Every
// cursor a user may have seen is then below every cursor assigned after a
// crash, whatever the crash took. It costs one fsync per cursorBlock
// messages, not one per relayed batch.

const (
	reservedKey = "cursor_reserved"
	// cursorBlock is how many cursors one durable reservation covers;
	// an open skips what the last one left (2^43 opens fit an int64).
	cursorBlock = 1 << 20
)

// reserveAtOpen makes cursors continue past the last reserved bound and
// reserves the next block, in one durable transaction.
func (s *Store) reserveAtOpen(ctx context.Context) error {
	s.write.Lock()
	defer s.write.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("reserve cursors: %w", err)
	}
	defer tx.Rollback()
	var seq, reserved sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'messages'`).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read last cursor: %w", err)
	}
	err = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, reservedKey).Scan(&reserved)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read reserved cursors: %w", err)
	}
	last := max(seq.Int64, reserved.Int64)
	if _, err := tx.ExecContext(ctx, `DELETE FROM sqlite_sequence WHERE name = 'messages'`); err != nil {
		return fmt.Errorf("skip reserved cursors: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq) VALUES ('messages', ?)`, last); err != nil {
		return fmt.Errorf("skip reserved cursors: %w", err)
	}
	if err := setReserved(ctx, tx, last+cursorBlock); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("reserve cursors: %w", err)
	}
	s.lastCursor = last
	s.reserved.Store(last + cursorBlock)
	return nil
}

func setReserved(ctx context.Context, tx *sql.Tx, bound int64) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		reservedKey, bound)
	if err != nil {
		return fmt.Errorf("reserve cursors: %w", err)
	}
	return nil
}

// reserveLocked makes sure the next n cursors are reserved, durably
// reserving another block if not. The caller holds write.
func (s *Store) reserveLocked(ctx context.Context, n int) error {
	if s.lastCursor+int64(n) <= s.reserved.Load() {
		return nil
	}
	bound := s.lastCursor + int64(n) + cursorBlock
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("reserve cursors: %w", err)
	}
	defer tx.Rollback()
	if err := setReserved(ctx, tx, bound); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("reserve cursors: %w", err)
	}
	s.reserved.Store(bound)
	return nil
}

// ReservedCursor returns the durable bound of the cursors assigned: none
// is above it, and none assigned after a crash is at or below it.
func (s *Store) ReservedCursor() int64 { return s.reserved.Load() }

// noteCursor records c as assigned. The caller holds write.
func (s *Store) noteCursor(c int64) {
	s.lastCursor = max(s.lastCursor, c)
}

// ReadConns is the size of the read-only connection pool: in WAL mode
// they read the last commit while the writer writes, so a dedupe lookup
// or a catch-up answer never queues behind a commit (and its fsync).
const ReadConns = 4

// loadSize reads the stored content size once; writes keep it current.
func (s *Store) loadSize(ctx context.Context) error {
	var n int64
	if err := s.read.QueryRowContext(ctx, `SELECT coalesce(sum(length(content)), 0) FROM messages`).Scan(&n); err != nil {
		return fmt.Errorf("read stored size: %w", err)
	}
	s.size.Store(n)
	return nil
}

// Size is the bytes of message content stored (the database file is
// somewhat larger: indexes, free pages, the WAL).
func (s *Store) Size() int64 { return s.size.Load() }

// Sync says whether a write must survive a machine crash once it returns.
type Sync bool

const (
	// Durable writes are fsynced before returning: use them for anything
	// acknowledged to a user.
	Durable Sync = true
	// Relaxed writes survive a crash of the process, not of the machine.
	Relaxed Sync = false
)

// conn returns the connection writes of the given durability go through.
func (s *Store) conn(sync Sync) *sql.DB {
	if sync == Durable {
		return s.db
	}
	return s.relaxed
}

// exec runs one write statement.
func (s *Store) exec(ctx context.Context, sync Sync, query string, args ...any) (sql.Result, error) {
	s.write.Lock()
	defer s.write.Unlock()
	defer s.committed()
	return s.conn(sync).ExecContext(ctx, query, args...)
}

// committed wakes the checkpointer after a write transaction (committed
// or not: a spare checkpoint is cheap).
func (s *Store) committed() { s.sql.Committed() }

// Close closes the database. The last connection to close checkpoints the
// whole WAL.
func (s *Store) Close() error { return s.sql.Close() }

// --- node state ---

const lastSeenKey = "last_seen"

// LastSeen returns the last time the node recorded itself as running, or
// the zero time if it never did.
func (s *Store) LastSeen(ctx context.Context) (time.Time, error) {
	var unix int64
	err := s.read.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, lastSeenKey).Scan(&unix)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read last seen: %w", err)
	}
	return time.Unix(unix, 0), nil
}

// SetLastSeen records t as the last time the node was running.
func (s *Store) SetLastSeen(ctx context.Context, t time.Time) error {
	_, err := s.exec(ctx, Relaxed,
		`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		lastSeenKey, t.Unix())
	if err != nil {
		return fmt.Errorf("write last seen: %w", err)
	}
	return nil
}

const bucketBitsKey = "bucket_bits"

// BucketBits returns the recorded intro-bucket width, 0 if none.
func (s *Store) BucketBits(ctx context.Context) (int, error) {
	var b int
	err := s.read.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, bucketBitsKey).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read bucket width: %w", err)
	}
	return b, nil
}

// SetBucketBits records the intro-bucket width.
func (s *Store) SetBucketBits(ctx context.Context, b int) error {
	_, err := s.exec(ctx, Durable,
		`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		bucketBitsKey, b)
	if err != nil {
		return fmt.Errorf("write bucket width: %w", err)
	}
	return nil
}

// PendingCatchUp is a topic whose catch-up from Since on has not
// completed.
type PendingCatchUp struct {
	Topic topic.Topic
	Since time.Time // second precision
}

// SaveRunState records lastSeen as the last time the node was running and
// makes pending the set of unfinished catch-ups, in one transaction: a
// reader never sees last_seen advanced without the windows still owed
// before it.
func (s *Store) SaveRunState(ctx context.Context, lastSeen time.Time, pending []PendingCatchUp) error {
	s.write.Lock()
	defer s.write.Unlock()
	defer s.committed()
	tx, err := s.relaxed.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save run state: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM catch_ups`); err != nil {
		return fmt.Errorf("save pending catch-ups: %w", err)
	}
	for _, p := range pending {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO catch_ups (topic, since) VALUES (?, ?)
			 ON CONFLICT (topic) DO UPDATE SET since = min(since, excluded.since)`,
			p.Topic[:], p.Since.Unix())
		if err != nil {
			return fmt.Errorf("save pending catch-up of %s: %w", p.Topic, err)
		}
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		lastSeenKey, lastSeen.Unix())
	if err != nil {
		return fmt.Errorf("write last seen: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save run state: %w", err)
	}
	return nil
}

// PendingCatchUps returns the unfinished catch-ups SaveRunState recorded.
func (s *Store) PendingCatchUps(ctx context.Context) ([]PendingCatchUp, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT topic, since FROM catch_ups ORDER BY topic`)
	if err != nil {
		return nil, fmt.Errorf("read pending catch-ups: %w", err)
	}
	defer rows.Close()
	var ps []PendingCatchUp
	for rows.Next() {
		var p PendingCatchUp
		var t []byte
		var unix int64
		if err := rows.Scan(&t, &unix); err != nil {
			return nil, fmt.Errorf("read pending catch-ups: %w", err)
		}
		if err := fixed(p.Topic[:], t, "catch-up topic"); err != nil {
			return nil, err
		}
		p.Since = time.Unix(unix, 0)
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pending catch-ups: %w", err)
	}
	return ps, nil
}

// --- gossips ---

// Gossip is a peer's signed gossip as the node last accepted it.
type Gossip struct {
	ID    keys.PublicKey
	Time  uint32
	Bytes []byte
}

// ReplaceGossips makes gs the stored gossips, in one transaction: the node
// saves the profiles of its current views, so the table stays as small as
// the views however many peers come and go.
func (s *Store) ReplaceGossips(ctx context.Context, gs []Gossip) error {
	s.write.Lock()
	defer s.write.Unlock()
	defer s.committed()
	tx, err := s.relaxed.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save gossips: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM gossips`); err != nil {
		return fmt.Errorf("save gossips: %w", err)
	}
	for _, g := range gs {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO gossips (id, time, bytes) VALUES (?, ?, ?)
			 ON CONFLICT (id) DO UPDATE SET time = excluded.time, bytes = excluded.bytes
			 WHERE excluded.time > gossips.time`,
			g.ID[:], g.Time, g.Bytes)
		if err != nil {
			return fmt.Errorf("save gossip of %s: %w", g.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save gossips: %w", err)
	}
	return nil
}

// Gossips returns every stored gossip.
func (s *Store) Gossips(ctx context.Context) ([]Gossip, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, time, bytes FROM gossips ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read gossips: %w", err)
	}
	defer rows.Close()
	var gs []Gossip
	for rows.Next() {
		var g Gossip
		var id []byte
		if err := rows.Scan(&id, &g.Time, &g.Bytes); err != nil {
			return nil, fmt.Errorf("read gossips: %w", err)
		}
		if err := fixed(g.ID[:], id, "gossip id"); err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read gossips: %w", err)
	}
	return gs, nil
}

// --- registrations ---

// Registration is a local user's interest in a topic.
type Registration struct {
	User  keys.PublicKey
	Topic topic.Topic
	Inbox bool // registered as a naming-v2 inbox (RegisterInbox)
}

// Register records that user registered t. Registering twice is not an
// error; it keeps the registration's kind (Inbox) as first recorded.
func (s *Store) Register(ctx context.Context, user keys.PublicKey, t topic.Topic) error {
	return s.register(ctx, user, t, false)
}

// RegisterInbox is Register for an inbox topic (Registration.Inbox).
func (s *Store) RegisterInbox(ctx context.Context, user keys.PublicKey, t topic.Topic) error {
	return s.register(ctx, user, t, true)
}

func (s *Store) register(ctx context.Context, user keys.PublicKey, t topic.Topic, inbox bool) error {
	_, err := s.exec(ctx, Durable,
		`INSERT INTO registrations (user, topic, inbox) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, user[:], t[:], inbox)
	if err != nil {
		return fmt.Errorf("register %s for %s: %w", t, user, err)
	}
	return nil
}

// Deregister removes user's registration of t, if any.
func (s *Store) Deregister(ctx context.Context, user keys.PublicKey, t topic.Topic) error {
	_, err := s.exec(ctx, Durable, `DELETE FROM registrations WHERE user = ? AND topic = ?`, user[:], t[:])
	if err != nil {
		return fmt.Errorf("deregister %s for %s: %w", t, user, err)
	}
	return nil
}

// Registrations returns every registration.
func (s *Store) Registrations(ctx context.Context) ([]Registration, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT user, topic, inbox FROM registrations ORDER BY user, topic`)
	if err != nil {
		return nil, fmt.Errorf("read registrations: %w", err)
	}
	defer rows.Close()
	var rs []Registration
	for rows.Next() {
		var r Registration
		var user, t []byte
		if err := rows.Scan(&user, &t, &r.Inbox); err != nil {
			return nil, fmt.Errorf("read registrations: %w", err)
		}
		if err := errors.Join(fixed(r.User[:], user, "user"), fixed(r.Topic[:], t, "topic")); err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read registrations: %w", err)
	}
	return rs, nil
}

// --- topic messages ---

// Message is a stored topic message.
type Message struct {
	Cursor     int64 // node-assigned, strictly increasing, never reused
	Topic      topic.Topic
	Content    []byte
	ReceivedAt time.Time // node clock, second precision
}

// AddMessage stores a message under its dedupe hash unless one with the
// same (topic, hash) is already stored. It returns the stored message and
// whether it was added by this call. A Durable one is group-committed
// (AddMessagesDurable).
func (s *Store) AddMessage(ctx context.Context, sync Sync, t topic.Topic, hash [32]byte, content []byte, receivedAt time.Time) (Message, bool, error) {
	if sync == Durable {
		ms, err := s.AddMessagesDurable(ctx, []NewMessage{{Topic: t, Hash: hash, Content: content, ReceivedAt: receivedAt}})
		if err != nil {
			return Message{}, false, err
		}
		return ms[0], ms[0].Cursor != 0, nil
	}
	m := Message{Topic: t, Content: content, ReceivedAt: time.Unix(receivedAt.Unix(), 0)}
	s.write.Lock()
	defer s.write.Unlock()
	defer s.committed()
	if err := s.reserveLocked(ctx, 1); err != nil {
		return m, false, err
	}
	nm := NewMessage{Topic: t, Hash: hash, Content: content, ReceivedAt: receivedAt}
	err := s.relaxed.QueryRowContext(ctx, insertMessage, nm.args()...).Scan(&m.Cursor)
	if errors.Is(err, sql.ErrNoRows) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("store message on %x: %w", t[:4], err)
	}
	s.size.Add(int64(len(content)))
	s.noteCursor(m.Cursor)
	return m, true, nil
}

// durableAdd is one AddMessagesDurable call waiting for a group commit.
type durableAdd struct {
	ms   []NewMessage
	out  []Message
	err  error
	done chan struct{} // closed once out and err are set
}

// AddMessagesDurable stores ms and fsyncs them before returning, skipping
// those already stored (by topic and hash). It returns one Message per
// element of ms, in order; a message that was already stored has Cursor 0
// (cursors start at 1).
//
// Calls are group-committed: the caller that takes the writer commits, in
// one transaction and one fsync, its own messages and those of every call
// that queued meanwhile; they return together, each after the commit that
// holds its messages. A failed commit fails every call in it. The commit
// does not stop for the context of any one caller: it carries the others'
// messages too.
func (s *Store) AddMessagesDurable(ctx context.Context, ms []NewMessage) ([]Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store messages: %w", err)
	}
	req := &durableAdd{ms: ms, done: make(chan struct{})}
	s.groupMu.Lock()
	s.group = append(s.group, req)
	s.groupMu.Unlock()

	s.write.Lock()
	defer s.write.Unlock()
	select {
	case <-req.done: // committed by the previous holder of the writer
		return req.out, req.err
	default:
	}
	s.groupMu.Lock()
	reqs := s.group
	s.group = nil
	s.groupMu.Unlock()
	// Every request taken is answered before the writer is released, so a
	// caller that gets the writer next finds its answer (above) or is still
	// queued and commits itself.
	err := s.commitDurable(context.WithoutCancel(ctx), reqs)
	s.committed()
	for _, r := range reqs {
		if err != nil {
			r.out, r.err = nil, err
		}
		close(r.done)
	}
	return req.out, req.err
}

// commitDurable stores the messages of reqs in one synchronous=FULL
// transaction, setting each request's out. The caller holds the writer.
func (s *Store) commitDurable(ctx context.Context, reqs []*durableAdd) error {
	if err := s.reserveLocked(ctx, countMessages(reqs)); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store messages: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, insertMessage)
	if err != nil {
		return fmt.Errorf("store messages: %w", err)
	}
	defer stmt.Close()
	var added int64
	for _, r := range reqs {
		r.out = make([]Message, len(r.ms))
		for i, m := range r.ms {
			r.out[i] = Message{Topic: m.Topic, Content: m.Content, ReceivedAt: time.Unix(m.ReceivedAt.Unix(), 0)}
			err := stmt.QueryRowContext(ctx, m.args()...).Scan(&r.out[i].Cursor)
			if errors.Is(err, sql.ErrNoRows) {
				continue // already stored: Cursor stays 0
			}
			if err != nil {
				return fmt.Errorf("store message on %x: %w", m.Topic[:4], err)
			}
			added += int64(len(m.Content))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store messages (%d in one commit): %w", countMessages(reqs), err)
	}
	s.size.Add(added)
	s.commits.Add(1)
	for _, r := range reqs {
		for _, m := range r.out {
			s.noteCursor(m.Cursor)
		}
	}
	return nil
}

func countMessages(reqs []*durableAdd) int {
	n := 0
	for _, r := range reqs {
		n += len(r.ms)
	}
	return n
}

// NewMessage is a message to store with AddMessages.
type NewMessage struct {
	Topic      topic.Topic
	Hash       [32]byte // dedupe key
	Content    []byte
	ReceivedAt time.Time
	// Origin is the node peer the message came from; zero for a local
	// user's publication.
	Origin keys.PublicKey
}

// insertMessage stores a NewMessage (args) unless it is stored already.
const insertMessage = `INSERT INTO messages (topic, hash, content, received_at, origin, local) VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT (topic, hash) DO NOTHING RETURNING cursor`

// args are insertMessage's arguments.
func (m NewMessage) args() []any {
	if m.Origin == (keys.PublicKey{}) {
		return []any{m.Topic[:], m.Hash[:], m.Content, m.ReceivedAt.Unix(), nil, 1}
	}
	return []any{m.Topic[:], m.Hash[:], m.Content, m.ReceivedAt.Unix(), m.Origin[:], 0}
}

// AddMessages stores messages in one relaxed transaction, skipping those
// already stored, and returns the ones it added with their cursors. One
// commit for many messages is what keeps relaying fast.
func (s *Store) AddMessages(ctx context.Context, ms []NewMessage) ([]Message, error) {
	s.write.Lock()
	defer s.write.Unlock()
	defer s.committed()
	if err := s.reserveLocked(ctx, len(ms)); err != nil {
		return nil, err
	}
	tx, err := s.relaxed.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store messages: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, insertMessage)
	if err != nil {
		return nil, fmt.Errorf("store messages: %w", err)
	}
	defer stmt.Close()
	var added []Message
	for _, m := range ms {
		var cursor int64
		err := stmt.QueryRowContext(ctx, m.args()...).Scan(&cursor)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store message on %x: %w", m.Topic[:4], err)
		}
		added = append(added, Message{Cursor: cursor, Topic: m.Topic, Content: m.Content, ReceivedAt: time.Unix(m.ReceivedAt.Unix(), 0)})
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store messages: %w", err)
	}
	for _, m := range added {
		s.size.Add(int64(len(m.Content)))
		s.noteCursor(m.Cursor)
	}
	return added, nil
}

// HasMessage reports whether a message with this dedupe hash is stored on t.
func (s *Store) HasMessage(ctx context.Context, t topic.Topic, hash [32]byte) (bool, error) {
	var one int
	err := s.read.QueryRowContext(ctx, `SELECT 1 FROM messages WHERE topic = ? AND hash = ?`, t[:], hash[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up message on %x: %w", t[:4], err)
	}
	return true, nil
}

// MessagesAfter returns up to limit messages of t with a cursor greater
// than after, oldest first.
func (s *Store) MessagesAfter(ctx context.Context, t topic.Topic, after int64, limit int) ([]Message, error) {
	return s.MessagesAfterPage(ctx, t, after, limit, 0)
}

// MessagesAfterPage is MessagesAfter that also stops once the contents
// read reach maxBytes (0: no byte bound); see MessagesPage.
func (s *Store) MessagesAfterPage(ctx context.Context, t topic.Topic, after int64, limit, maxBytes int) ([]Message, error) {
	return s.messages(ctx, t, maxBytes, `SELECT cursor, content, received_at FROM messages
		WHERE topic = ? AND cursor > ? ORDER BY cursor LIMIT ?`, after, limit)
}

// MessagesSince returns up to limit messages of t received at or after
// since (second precision), oldest first (in cursor order).
func (s *Store) MessagesSince(ctx context.Context, t topic.Topic, since time.Time, limit int) ([]Message, error) {
	return s.MessagesSinceAfter(ctx, t, since, 0, limit)
}

// MessagesSinceAfter is MessagesSince restricted to cursors greater than
// after: the next page of a MessagesSince answer whose last message had
// cursor after. Paging by cursor rather than by time is exact however many
// messages share a second, and a message stored between two pages comes
// in a later page (its cursor is larger) even if its receive time is not.
func (s *Store) MessagesSinceAfter(ctx context.Context, t topic.Topic, since time.Time, after int64, limit int) ([]Message, error) {
	return s.MessagesPage(ctx, t, since, after, limit, 0)
}

// MessagesPage is MessagesSinceAfter that also stops once the contents
// read reach maxBytes (0: no byte bound), so that a page of big messages
// stays small in memory; it holds at least one message if any is left.
// The page is short of limit exactly when it is the last one, or when it
// reached maxBytes: callers page on while either is full (PageFull).
func (s *Store) MessagesPage(ctx context.Context, t topic.Topic, since time.Time, after int64, limit, maxBytes int) ([]Message, error) {
	return s.messages(ctx, t, maxBytes, `SELECT cursor, content, received_at FROM messages
		WHERE topic = ? AND received_at >= ? AND cursor > ? ORDER BY cursor LIMIT ?`, since.Unix(), after, limit)
}

// PageFull reports whether a MessagesPage answer may have a next page: it
// reached limit messages or maxBytes (when positive) of content.
func PageFull(ms []Message, limit, maxBytes int) bool {
	if len(ms) >= limit {
		return true
	}
	size := 0
	for _, m := range ms {
		size += len(m.Content)
	}
	return maxBytes > 0 && size >= maxBytes
}

// messages runs query for t's messages, stopping after the row that brings
// the contents read to maxBytes (when positive).
func (s *Store) messages(ctx context.Context, t topic.Topic, maxBytes int, query string, args ...any) ([]Message, error) {
	rows, err := s.read.QueryContext(ctx, query, append([]any{t[:]}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("read messages of %x: %w", t[:4], err)
	}
	defer rows.Close()
	var ms []Message
	size := 0
	for rows.Next() {
		m := Message{Topic: t}
		var unix int64
		if err := rows.Scan(&m.Cursor, &m.Content, &unix); err != nil {
			return nil, fmt.Errorf("read messages of %x: %w", t[:4], err)
		}
		m.ReceivedAt = time.Unix(unix, 0)
		ms = append(ms, m)
		if size += len(m.Content); maxBytes > 0 && size >= maxBytes {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read messages of %x: %w", t[:4], err)
	}
	return ms, nil
}

// DeleteMessagesBefore deletes messages received before t (retention) and
// returns how many went.
func (s *Store) DeleteMessagesBefore(ctx context.Context, t time.Time) (int64, error) {
	n, _, err := s.deleteMessages(ctx, `DELETE FROM messages WHERE received_at < ? RETURNING length(content)`, t.Unix())
	if err != nil {
		return 0, fmt.Errorf("expire messages: %w", err)
	}
	return n, nil
}

// deleteMessages runs a DELETE … RETURNING length(content) and returns
// how many messages and content bytes went.
func (s *Store) deleteMessages(ctx context.Context, query string, args ...any) (count, bytes int64, err error) {
	s.write.Lock()
	defer s.write.Unlock()
	defer s.committed()
	rows, err := s.relaxed.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return count, bytes, err
		}
		count, bytes = count+1, bytes+n
	}
	s.size.Add(-bytes)
	return count, bytes, rows.Err()
}

// Evict deletes up to need bytes of message content that no local user
// still waits for, oldest first (by receive time), and returns how many
// bytes went. Evictable are, in one order by age: messages of topics no
// user registers any more, local users' own publications (kept only to
// answer other nodes' catch-ups), and messages every user registering
// their topic has fetched (SetFetched). A message from a peer that a user
// has not fetched is never evicted: when only those are left, Evict frees
// less than need and the caller refuses new messages from peers instead.
func (s *Store) Evict(ctx context.Context, need int64) (int64, error) {
	const batch = 256
	var freed int64
	for freed < need {
		n, b, err := s.deleteMessages(ctx, `DELETE FROM messages WHERE cursor IN (
			SELECT m.cursor FROM messages m
			WHERE m.local = 1 OR m.cursor <= coalesce((
				SELECT min(coalesce(f.cursor, 0)) FROM registrations r
				LEFT JOIN fetched f ON f.user = r.user AND f.topic = r.topic
				WHERE r.topic = m.topic), 9223372036854775807)
			ORDER BY m.received_at, m.cursor LIMIT ?)
			RETURNING length(content)`, batch)
		if err != nil {
			return freed, fmt.Errorf("evict messages: %w", err)
		}
		freed += b
		if n < batch {
			break
		}
	}
	return freed, nil
}

// SetFetched records that user has taken the messages of t up to cursor
// for good (the bridge saved them in its mailstore): Evict may remove
// them. The recorded cursor only moves forward.
func (s *Store) SetFetched(ctx context.Context, user keys.PublicKey, t topic.Topic, cursor int64) error {
	_, err := s.exec(ctx, Relaxed, `INSERT INTO fetched (user, topic, cursor) VALUES (?, ?, ?)
		ON CONFLICT (user, topic) DO UPDATE SET cursor = max(cursor, excluded.cursor)`, user[:], t[:], cursor)
	if err != nil {
		return fmt.Errorf("record fetched cursor of %s on %x: %w", user, t[:4], err)
	}
	return nil
}

// Origin returns the node peer the message at cursor came from and the
// size of its content; false if there is no such message or a local user
// published it.
func (s *Store) Origin(ctx context.Context, cursor int64) (keys.PublicKey, int, bool, error) {
	var id keys.PublicKey
	var b []byte
	var size int
	err := s.read.QueryRowContext(ctx, `SELECT origin, length(content) FROM messages WHERE cursor = ?`, cursor).Scan(&b, &size)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && b == nil) {
		return id, 0, false, nil
	}
	if err != nil {
		return id, 0, false, fmt.Errorf("read origin of message %d: %w", cursor, err)
	}
	if err := fixed(id[:], b, "message origin"); err != nil {
		return id, 0, false, err
	}
	return id, size, true, nil
}

// --- held publications (naming v2) ---

// Held is a topic a local user publishes on for one node: the recipient's,
// named by the user (a contact card).
type Held struct {
	Topic topic.Topic
	Node  keys.PublicKey
	Addr  string    // where to dial Node
	Since time.Time // the first publication since the record was made
}

// PutHeld records (durably) whom t's publications are for; a record for t
// already there is replaced, keeping the earlier Since.
func (s *Store) PutHeld(ctx context.Context, h Held) error {
	_, err := s.exec(ctx, Durable, `INSERT INTO held (topic, node, addr, since) VALUES (?, ?, ?, ?)
		ON CONFLICT (topic) DO UPDATE SET node = excluded.node, addr = excluded.addr, since = min(since, excluded.since)`,
		h.Topic[:], h.Node[:], h.Addr, h.Since.Unix())
	if err != nil {
		return fmt.Errorf("record held topic %x: %w", h.Topic[:4], err)
	}
	return nil
}

// HeldFor returns the record of t, if any.
func (s *Store) HeldFor(ctx context.Context, t topic.Topic) (Held, bool, error) {
	h := Held{Topic: t}
	var node []byte
	var since int64
	err := s.read.QueryRowContext(ctx, `SELECT node, addr, since FROM held WHERE topic = ?`, t[:]).Scan(&node, &h.Addr, &since)
	if errors.Is(err, sql.ErrNoRows) {
		return h, false, nil
	}
	if err == nil {
		err = fixed(h.Node[:], node, "held node")
	}
	if err != nil {
		return h, false, fmt.Errorf("read held topic %x: %w", t[:4], err)
	}
	h.Since = time.Unix(since, 0)
	return h, true, nil
}

// HeldSince returns the records made at or after since, oldest first.
func (s *Store) HeldSince(ctx context.Context, since time.Time) ([]Held, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT topic, node, addr, since FROM held WHERE since >= ? ORDER BY since`, since.Unix())
	if err != nil {
		return nil, fmt.Errorf("read held topics: %w", err)
	}
	defer rows.Close()
	var out []Held
	for rows.Next() {
		var h Held
		var t, node []byte
		var at int64
		if err := rows.Scan(&t, &node, &h.Addr, &at); err != nil {
			return nil, fmt.Errorf("read held topics: %w", err)
		}
		if err := errors.Join(fixed(h.Topic[:], t, "held topic"), fixed(h.Node[:], node, "held node")); err != nil {
			return nil, err
		}
		h.Since = time.Unix(at, 0)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read held topics: %w", err)
	}
	return out, nil
}

// DeleteHeldBefore forgets the records made before t (their messages have
// expired).
func (s *Store) DeleteHeldBefore(ctx context.Context, t time.Time) error {
	if _, err := s.exec(ctx, Relaxed, `DELETE FROM held WHERE since < ?`, t.Unix()); err != nil {
		return fmt.Errorf("expire held topics: %w", err)
	}
	return nil
}

// --- passports ---

// PutPassport stores (or replaces) the PassportBlocks of passport id, as
// one whose topic the node subscribes to (PassportIDs). The caller
// validates and merges the blocks.
func (s *Store) PutPassport(ctx context.Context, id passport.Hash, blocks []byte, now time.Time) error {
	return s.putPassport(ctx, id, blocks, now, false)
}

// PutQuietPassport is PutPassport for a passport kept without subscribing
// to its topic (naming v2). A passport stored either way takes the kind of
// the latest put.
func (s *Store) PutQuietPassport(ctx context.Context, id passport.Hash, blocks []byte, now time.Time) error {
	return s.putPassport(ctx, id, blocks, now, true)
}

func (s *Store) putPassport(ctx context.Context, id passport.Hash, blocks []byte, now time.Time, quiet bool) error {
	_, err := s.exec(ctx, Durable,
		`INSERT INTO passports (id, blocks, updated_at, quiet) VALUES (?, ?, ?, ?)
		 ON CONFLICT (id) DO UPDATE SET blocks = excluded.blocks, updated_at = excluded.updated_at, quiet = excluded.quiet`,
		id[:], blocks, now.Unix(), quiet)
	if err != nil {
		return fmt.Errorf("store passport %s: %w", id, err)
	}
	return nil
}

// Passport returns the stored PassportBlocks of id, and whether it is known.
func (s *Store) Passport(ctx context.Context, id passport.Hash) ([]byte, bool, error) {
	var blocks []byte
	err := s.read.QueryRowContext(ctx, `SELECT blocks FROM passports WHERE id = ?`, id[:]).Scan(&blocks)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read passport %s: %w", id, err)
	}
	return blocks, true, nil
}

// PassportIDs returns the ids of the stored passports whose topic the node
// subscribes to: all but the quiet ones (PutQuietPassport).
func (s *Store) PassportIDs(ctx context.Context) ([]passport.Hash, error) {
	return s.passportIDs(ctx, `SELECT id FROM passports WHERE quiet = 0 ORDER BY id`)
}

func (s *Store) passportIDs(ctx context.Context, query string) ([]passport.Hash, error) {
	rows, err := s.read.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("read passport ids: %w", err)
	}
	defer rows.Close()
	var ids []passport.Hash
	for rows.Next() {
		var id passport.Hash
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("read passport ids: %w", err)
		}
		if err := fixed(id[:], b, "passport id"); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read passport ids: %w", err)
	}
	return ids, nil
}

// AllPassportIDs returns the ids of every stored passport, quiet or not.
func (s *Store) AllPassportIDs(ctx context.Context) ([]passport.Hash, error) {
	return s.passportIDs(ctx, `SELECT id FROM passports ORDER BY id`)
}

// fixed copies a fixed-size column value, refusing a wrong length (a
// corrupted or foreign database).
func fixed(dst, src []byte, what string) error {
	if len(src) != len(dst) {
		return fmt.Errorf("stored %s: %d bytes, want %d", what, len(src), len(dst))
	}
	copy(dst, src)
	return nil
}
