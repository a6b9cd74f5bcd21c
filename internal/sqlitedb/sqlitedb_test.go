package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/internal/wait"
)

var testMigrations = []string{
	`CREATE TABLE a (x INTEGER)`,
	`CREATE TABLE b (y BLOB)`,
}

func open(t *testing.T, path string, migrations []string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path, migrations, "foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func pragma(t *testing.T, c *sql.DB, name string) string {
	t.Helper()
	var v string
	if err := c.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

// Each connection has the pragmas the package comment promises, the
// caller's included.
func TestConnectionPragmas(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "x.db"), testMigrations)
	r, err := db.Readers(2, "cache_size(-2048)")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		conn   *sql.DB
		pragma string
		want   string
	}{
		{"durable synchronous", db.Durable, "synchronous", "2"}, // FULL
		{"relaxed synchronous", db.Relaxed, "synchronous", "1"}, // NORMAL
		{"durable autocheckpoint", db.Durable, "wal_autocheckpoint", "0"},
		{"relaxed autocheckpoint", db.Relaxed, "wal_autocheckpoint", "0"},
		{"journal", db.Durable, "journal_mode", "wal"},
		{"caller's pragma", db.Relaxed, "foreign_keys", "1"},
		{"reader query only", r, "query_only", "1"},
		{"reader's own pragma", r, "cache_size", "-2048"},
		{"reader caller's pragma", r, "foreign_keys", "1"},
	}
	for _, tt := range tests {
		if got := pragma(t, tt.conn, tt.pragma); got != tt.want {
			t.Errorf("%s: PRAGMA %s = %s, want %s", tt.name, tt.pragma, got, tt.want)
		}
	}
	if _, err := r.Exec(`INSERT INTO a VALUES (1)`); err == nil {
		t.Error("a reader wrote")
	}
}

// Migrations run once each, in order, recording their number; a database
// from a newer program is refused; a failing step leaves the ones before
// it applied.
func TestMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	db := open(t, path, testMigrations[:1])
	if v := pragma(t, db.Durable, "user_version"); v != "1" {
		t.Fatalf("user_version %s after one migration", v)
	}
	db.Close()
	db = open(t, path, testMigrations) // the first is not run again: it would fail
	if v := pragma(t, db.Durable, "user_version"); v != "2" {
		t.Fatalf("user_version %s after two migrations", v)
	}
	db.Close()
	if _, err := Open(ctx, path, testMigrations[:1]); err == nil || !strings.Contains(err.Error(), "newer than this program") {
		t.Fatalf("open by an older program: %v", err)
	}
	bad := append(testMigrations[:2:2], `CREATE TABLE c (z)`, `NOT SQL`)
	if _, err := Open(ctx, path, bad); err == nil || !strings.Contains(err.Error(), "migration 4") {
		t.Fatalf("failing migration: %v", err)
	}
	db = open(t, path, bad[:3])
	if v := pragma(t, db.Durable, "user_version"); v != "3" {
		t.Fatalf("user_version %s after a failed fourth migration, want 3", v)
	}
	for _, p := range []string{"", "a?b", "a#b"} {
		if _, err := Open(ctx, p, testMigrations); err == nil {
			t.Errorf("path %q opened", p)
		}
	}
}

// Commits do not checkpoint, even past SQLite's default threshold (1000
// pages); the background checkpointer does, once woken: the WAL's content
// then reaches the database file.
func TestBackgroundCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db := open(t, path, testMigrations)
	fileSize := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	blob := make([]byte, 64<<10)
	for range 80 { // 5 MiB
		if _, err := db.Durable.Exec(`INSERT INTO b VALUES (?)`, blob); err != nil {
			t.Fatal(err)
		}
	}
	if n := fileSize(); n >= 1<<20 {
		t.Fatalf("database file %d bytes after commits alone: a commit checkpointed", n)
	}
	db.Committed()
	var size int64
	wait.Until(t, 5*time.Second, "the WAL checkpointed into the database file", func() bool {
		size = fileSize()
		return size >= 5<<20
	}, func() string { return fmt.Sprintf("database file %d bytes after 5 MiB of commits", size) })
}

// TestSelect reads rows in order, gives nil for none, and fails on a
// query that does not run or a row scan refuses.
func TestSelect(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "c.db"),
		[]string{"CREATE TABLE n (v INTEGER); INSERT INTO n VALUES (1), (2), (3);"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	scanInt := func(r Row) (int, error) {
		var v int
		err := r.Scan(&v)
		return v, err
	}
	for _, c := range []struct {
		query   string
		want    []int
		wantErr bool
	}{
		{"SELECT v FROM n WHERE v > ? ORDER BY v", []int{2, 3}, false},
		{"SELECT v FROM n WHERE v > ? + 9", nil, false},
		{"SELECT 'x' WHERE ? = 1", nil, true},
		{"SELECT v FROM missing WHERE v = ?", nil, true},
	} {
		got, err := Select(t.Context(), db.Durable, scanInt, c.query, 1)
		if (err != nil) != c.wantErr || !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, %v; want %v (error: %v)", c.query, got, err, c.want, c.wantErr)
		}
	}
}
