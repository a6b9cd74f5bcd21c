package accounts

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/asmtp/asmtp/mailstore"
)

// Files in the bridge's data directory.
const (
	RegistryFile = "bridge.db" // accounts and address books (Registry)
	MailFile     = "mail.db"   // mailboxes (mailstore)
)

// ChangePollInterval is how often Changes looks for commits by other
// processes.
const ChangePollInterval = 500 * time.Millisecond

// DefaultDataDir is where asmtpd and asmtpd-cli keep the bridge's files:
// a "bridge" directory beside the node database (storage.path). A
// directory of its own can be kept at mode 0700 whatever the operator chose
// for the directory of the node's files.
func DefaultDataDir(storagePath string) string {
	return filepath.Join(filepath.Dir(storagePath), "bridge")
}

// Registry is the bridge's record of accounts and their address books, in
// one SQLite file (WAL, synchronous=FULL). asmtpd and asmtpd-cli open it at
// the same time; SQLite serialises their writes, and Changes tells the
// daemon about the CLI's.
type Registry struct {
	db *sql.DB
}

// migrations are applied in order; PRAGMA user_version counts the applied
// ones. Append new steps, never edit old ones.
var migrations = []string{`
CREATE TABLE meta (
	key TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE accounts (
	name TEXT PRIMARY KEY,                  -- [a-z0-9][a-z0-9._-]*, the IMAP/SMTP user name and mailstore account
	passport_id BLOB NOT NULL UNIQUE,       -- 16 bytes
	passport_blocks BLOB NOT NULL,          -- PassportBlocks
	device_key BLOB NOT NULL UNIQUE,        -- Ed25519 public key, the node user
	sealed_device_seed BLOB NOT NULL,       -- Ed25519 seed, sealed (sealer.go)
	sealed_passport_seed BLOB NOT NULL,     -- passport psk, sealed
	password_hash TEXT NOT NULL,            -- PHC string (password.go)
	created_at INTEGER NOT NULL             -- unix seconds
);
CREATE TABLE contacts (
	account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
	petname TEXT NOT NULL COLLATE NOCASE,
	passport_id BLOB NOT NULL,
	passport_blocks BLOB,                   -- NULL while pending: fetched from the network by the daemon
	shared_key BLOB,                        -- the passport's current shared key
	topic BLOB,                             -- topic.Derive(account's shared key, shared_key)
	added_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (account, passport_id),
	UNIQUE (account, petname),
	CHECK ((passport_blocks IS NULL) = (shared_key IS NULL) AND (shared_key IS NULL) = (topic IS NULL))
);
CREATE INDEX contacts_topic ON contacts(topic);
-- Topics the node should no longer keep for an account (removed contacts,
-- rotated keys). The daemon deregisters them and deletes the rows, so a
-- removal made while it is down is still applied.
CREATE TABLE retired_topics (
	account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
	topic BLOB NOT NULL,
	PRIMARY KEY (account, topic)
) WITHOUT ROWID;
`, `
-- A topic replaced by a contact's shared-key rotation is kept for
-- RotationGrace, so mail the contact sealed with its old key still
-- arrives: passport_id names the contact and shared_key is the replaced
-- key that mail on the topic must be sealed by. Both are NULL for a topic
-- to drop at once (a removed contact), as were all rows written before
-- this step.
ALTER TABLE retired_topics ADD COLUMN passport_id BLOB;
ALTER TABLE retired_topics ADD COLUMN shared_key BLOB;
ALTER TABLE retired_topics ADD COLUMN retired_at INTEGER NOT NULL DEFAULT 0; -- unix seconds
CREATE INDEX retired_topics_passport ON retired_topics(account, passport_id);
`, `
-- The resource name and UID a CardDAV client gave the card of a contact it
-- created (contact_card.go). Without a row, a card is <passport-id>.vcf
-- with UID asmtp-passport-<passport-id>.
CREATE TABLE contact_cards (
	account TEXT NOT NULL,
	passport_id BLOB NOT NULL,
	name TEXT NOT NULL,                     -- e.g. "<uuid>.vcf"
	uid TEXT NOT NULL,
	PRIMARY KEY (account, passport_id),
	UNIQUE (account, name),
	FOREIGN KEY (account, passport_id) REFERENCES contacts(account, passport_id) ON DELETE CASCADE
) WITHOUT ROWID;
`, namingMigration, sentMigration, retiredSeedsMigration}

// OpenRegistry opens (creating if needed) the registry in dataDir, which
// is created with mode 0700; the database file and its WAL are 0600.
func OpenRegistry(ctx context.Context, dataDir string) (*Registry, error) {
	path, err := prepareDataFile(dataDir, RegistryFile)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	r := &Registry{db: db}
	if err := r.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("registry %s: %w", path, err)
	}
	return r, nil
}

// OpenMailstore opens the mailstore in dataDir with the same file modes as
// OpenRegistry.
func OpenMailstore(ctx context.Context, dataDir string) (*mailstore.DB, error) {
	path, err := prepareDataFile(dataDir, MailFile)
	if err != nil {
		return nil, err
	}
	return mailstore.Open(ctx, path)
}

// prepareDataFile makes dataDir (0700) and the file name in it (0600)
// before SQLite opens it: SQLite creates the WAL and shared-memory files
// with the database file's mode.
func prepareDataFile(dataDir, name string) (string, error) {
	if dataDir == "" || strings.ContainsAny(dataDir, "?#") {
		return "", fmt.Errorf("bridge data directory %q: must be non-empty and contain no '?' or '#'", dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("bridge data directory: %w", err)
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("bridge data directory: %w", err)
	}
	path := filepath.Join(dataDir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("bridge data file: %w", err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return "", fmt.Errorf("bridge data file: %w", err)
	}
	return path, nil
}

func (r *Registry) migrate(ctx context.Context) error {
	var version int
	if err := r.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program (%d)", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		err := r.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return nil
}

// Close closes the database.
func (r *Registry) Close() error { return r.db.Close() }

// inTx runs fn in a write transaction (BEGIN IMMEDIATE) and commits it.
func (r *Registry) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Changes returns a channel that receives a value after the registry
// changes (accounts or contacts added, removed or updated, passwords
// reset), by this process or another one such as asmtpd-cli. It polls
// SQLite's PRAGMA data_version every ChangePollInterval on a connection of
// its own: that number moves whenever another connection commits, and
// costs one tiny query to read. Notifications coalesce: one value may
// stand for several commits, so receivers re-read what they need. When
// polling fails the channel is sent a value too (re-reading is always
// safe). The channel is closed when ctx is done.
//
// A unix control socket would notify sooner, but only while the daemon
// listens; polling also needs no protocol and nothing to clean up after a
// crash, and the daemon re-reads everything at start anyway.
func (r *Registry) Changes(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	notify := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	// The baseline is read before Changes returns, so that no commit after
	// the caller's first read can be missed.
	conn, last, err := r.dataVersion(ctx, nil)
	if err != nil {
		notify()
	}
	go func() {
		defer close(ch)
		defer func() {
			if conn != nil {
				conn.Close()
			}
		}()
		t := time.NewTicker(ChangePollInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var v int64
			if conn, v, err = r.dataVersion(ctx, conn); err != nil {
				notify()
				continue
			}
			if v != last {
				notify()
			}
			last = v
		}
	}()
	return ch
}

// dataVersion reads PRAGMA data_version on conn, opening a connection
// when conn is nil. On error the connection is closed and nil returned.
func (r *Registry) dataVersion(ctx context.Context, conn *sql.Conn) (*sql.Conn, int64, error) {
	var err error
	if conn == nil {
		if conn, err = r.db.Conn(ctx); err != nil {
			return nil, 0, err
		}
	}
	var v int64
	if err = conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
		conn.Close()
		return nil, 0, err
	}
	return conn, v, nil
}

// isUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY
// constraint failure.
func isUniqueViolation(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// unixTime reads a stored unix-seconds column.
func unixTime(s int64) time.Time { return time.Unix(s, 0).UTC() }
