// Package sqlitedb opens an embedded SQLite database (pure-Go
// modernc.org/sqlite) the way the node store and the mailstore both keep
// theirs: in WAL mode, with two writer connections, pools of read-only
// connections, a background checkpointer and numbered migrations.
//
//   - Durable commits with synchronous=FULL: an fsync per commit, for
//     what is acknowledged to someone.
//   - Relaxed commits with synchronous=NORMAL: in WAL mode that survives a
//     crash of the process, not of the machine (until a later durable
//     commit fsyncs the whole WAL), and is several times faster.
//   - Each writer is one connection, and BEGIN takes the write lock at
//     once (_txlock=immediate). The caller serialises the two writers
//     with a mutex of its own (it usually guards more than the commit), so
//     SQLite never answers SQLITE_BUSY halfway through a transaction.
//   - Read pools (Readers) are query-only: in WAL mode they read the last
//     commit while a writer writes, so a read never queues behind a commit
//     and its fsync.
//   - The writers never checkpoint the WAL (wal_autocheckpoint(0)):
//     SQLite would do it inside whichever commit crossed its threshold,
//     copying megabytes and fsyncing the database file before that commit
//     could return. A third connection checkpoints passively in the
//     background after commits (Committed); a checkpoint moves data
//     already committed to the WAL, so acknowledged writes never wait for
//     it nor depend on it.
//   - Migrations are SQL scripts applied in order, each in its own
//     transaction with PRAGMA user_version set to its number, so a crash
//     between two leaves the database at a known step. Callers keep their
//     list beside their schema; append, never edit.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// common are the pragmas of every connection: a writer holding the lock
// makes others wait up to 10 s rather than fail, and WAL lets readers and
// the checkpointer run beside the writer.
const common = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"

// writer are the pragmas of the two writers (see the package comment).
const writer = "&_pragma=wal_autocheckpoint(0)&_txlock=immediate"

// CheckpointSpacing is the least time between two checkpoints: each
// copies what the commits since the previous one appended to the WAL.
const CheckpointSpacing = 50 * time.Millisecond

// DB is an open database: its two writers, the read pools opened with
// Readers, and the checkpointer.
type DB struct {
	// Durable is the writer whose commits are fsynced before they return.
	Durable *sql.DB
	// Relaxed is the writer whose commits are not (see the package comment).
	Relaxed *sql.DB

	path    string
	pragmas string // the caller's, on every connection
	readers []*sql.DB

	checkpointer *sql.DB
	wake         chan struct{} // a commit happened: checkpoint soon
	stop, done   chan struct{}
	stopOnce     sync.Once
}

// Open opens (creating if needed) the database at path, applies the
// migrations it has not had yet, and starts the checkpointer. pragmas
// (such as "foreign_keys(1)") are set on every connection.
func Open(ctx context.Context, path string, migrations []string, pragmas ...string) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open %q: path must be non-empty and contain no '?' or '#'", path)
	}
	db := &DB{path: path, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	for _, p := range pragmas {
		db.pragmas += "&_pragma=" + p
	}
	var err error
	if db.Durable, err = db.open(writer+"&_pragma=synchronous(FULL)", 1); err != nil {
		return nil, err
	}
	if err := migrate(ctx, db.Durable, migrations); err != nil {
		db.Durable.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if db.Relaxed, err = db.open(writer+"&_pragma=synchronous(NORMAL)", 1); err != nil {
		db.Durable.Close()
		return nil, err
	}
	// synchronous=FULL makes the checkpointer fsync the WAL before copying
	// and the database file after (NORMAL would do the same for a
	// checkpoint; FULL states the intent).
	if db.checkpointer, err = db.open("&_pragma=synchronous(FULL)", 1); err != nil {
		db.Relaxed.Close()
		db.Durable.Close()
		return nil, err
	}
	go db.checkpointLoop()
	return db, nil
}

// Readers opens a pool of up to n query-only connections with the given
// extra pragmas (cache and mmap sizes, say). Close closes it.
func (db *DB) Readers(n int, pragmas ...string) (*sql.DB, error) {
	dsn := "&_pragma=query_only(1)"
	for _, p := range pragmas {
		dsn += "&_pragma=" + p
	}
	r, err := db.open(dsn, n)
	if err != nil {
		return nil, err
	}
	db.readers = append(db.readers, r)
	return r, nil
}

// open opens a pool of up to n connections with the common pragmas, the
// caller's and dsn's, and checks that one connects.
func (db *DB) open(dsn string, n int) (*sql.DB, error) {
	c, err := sql.Open("sqlite", db.path+"?"+common+db.pragmas+dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", db.path, err)
	}
	c.SetMaxOpenConns(n)
	c.SetMaxIdleConns(n)
	c.SetConnMaxIdleTime(0)
	if err := c.Ping(); err != nil {
		c.Close()
		return nil, fmt.Errorf("open %s: %w", db.path, err)
	}
	return c, nil
}

// Committed wakes the checkpointer after a write transaction (committed
// or not: a spare checkpoint is cheap). It never blocks.
func (db *DB) Committed() {
	select {
	case db.wake <- struct{}{}:
	default:
	}
}

// checkpointLoop copies the WAL into the database file after commits, at
// most once per CheckpointSpacing, beside the writers: a passive
// checkpoint takes no write lock, so commits (and their fsyncs) go on
// while it copies. A checkpoint that cannot finish (a reader still uses
// old frames) is done again after the next commit; SQLite restarts the
// WAL from its start once a checkpoint has copied all of it, which keeps
// the file from growing.
func (db *DB) checkpointLoop() {
	defer close(db.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-db.wake:
		}
		// An error (SQLITE_BUSY from a concurrent checkpoint, I/O) loses
		// nothing: the frames stay in the WAL and the next run copies them.
		db.checkpointer.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		t.Reset(CheckpointSpacing)
		select {
		case <-db.stop:
			return
		case <-t.C:
		}
	}
}

// Close stops the checkpointer and closes every connection; the last to
// close checkpoints the whole WAL. The caller makes sure no write is
// under way.
func (db *DB) Close() error {
	db.stopOnce.Do(func() { close(db.stop) })
	<-db.done
	var errs []error
	for _, r := range db.readers {
		errs = append(errs, r.Close())
	}
	errs = append(errs, db.checkpointer.Close(), db.Relaxed.Close(), db.Durable.Close())
	return errors.Join(errs...)
}

// migrate applies the migrations past the database's user_version, each
// in its own transaction that also records its number.
func migrate(ctx context.Context, w *sql.DB, migrations []string) error {
	var version int
	if err := w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program (%d)", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if err := migrateStep(ctx, w, i+1, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return nil
}

func migrateStep(ctx context.Context, w *sql.DB, version int, script string) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, script); err != nil {
		return err
	}
	// PRAGMA does not take bound parameters; the value is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
		return err
	}
	return tx.Commit()
}
