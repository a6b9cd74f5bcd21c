package mailstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// modSeqMigration is the index of the migration that adds mod-sequences.
func modSeqMigration(t *testing.T) int {
	t.Helper()
	for i, m := range migrations {
		if strings.Contains(m, "ADD COLUMN highest_modseq") {
			return i
		}
	}
	t.Fatal("no mod-sequence migration")
	return 0
}

// TestModSeqMigrationStampsExistingMessages builds a store at the schema
// before mod-sequences, with messages, and opens it: every message and
// mailbox gets mod-sequence 1, and the next change is above it.
func TestModSeqMigrationStampsExistingMessages(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mail.db")
	raw, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	before := modSeqMigration(t)
	for _, m := range migrations[:before] {
		if _, err := raw.Exec(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		fmt.Sprintf("PRAGMA user_version = %d", before),
		"INSERT INTO accounts (id, name) VALUES (1, 'alice')",
		"INSERT INTO mailboxes (id, account_id, name, uid_validity, uid_next) VALUES (1, 1, 'INBOX', 7, 3)",
		"INSERT INTO bodies (id, size, envelope, structure) VALUES (1, 1, x'', '{}')",
		"INSERT INTO messages (mailbox_id, uid, body_id, flags, internal_date, internal_tz) VALUES (1, 1, 1, '', 0, 0), (1, 2, 1, '\\Seen', 0, 0)",
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mb, err := db.Mailbox(ctx, "alice", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	snap, stop, err := db.Watch(ctx, mb.ID, func(Change) {})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if mb.HighestModSeq != 1 || !slices.Equal(snap.ModSeqs, []uint64{1, 1}) {
		t.Fatalf("after migration: HIGHESTMODSEQ %d, message modseqs %v; want 1 and [1 1]", mb.HighestModSeq, snap.ModSeqs)
	}
	if err := db.StoreFlags(ctx, mb.ID, []UID{2}, imap.StoreFlagsAdd, []string{"$Junk"}); err != nil {
		t.Fatal(err)
	}
	if mb, _ = db.Mailbox(ctx, "alice", "INBOX"); mb.HighestModSeq != 2 {
		t.Fatalf("after a flag change: HIGHESTMODSEQ %d, want 2", mb.HighestModSeq)
	}
}

// TestEveryChangeTakesTheNextModSeq checks that append, flag change, copy,
// move and expunge each raise HIGHESTMODSEQ by one in the same commit, that
// the watchers see the change's mod-sequence and that the messages carry it.
func TestEveryChangeTakesTheNextModSeq(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	inbox := uidsMailbox(t, db, "INBOX")
	var seen []Change
	_, stop, err := db.Watch(ctx, inbox, func(c Change) { seen = append(seen, c) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	highest := func() uint64 {
		mb, err := db.Mailbox(ctx, "alice", "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		return mb.HighestModSeq
	}
	start := highest()
	steps := []struct {
		name string
		do   func() error
	}{
		{"append", func() error { _, err := db.Append(ctx, "alice", "INBOX", msg("a", "x"), nil, time.Time{}); return err }},
		{"append", func() error { _, err := db.Append(ctx, "alice", "INBOX", msg("b", "x"), nil, time.Time{}); return err }},
		{"flags", func() error { return db.StoreFlags(ctx, inbox, []UID{1, 2}, imap.StoreFlagsAdd, []string{`\Deleted`}) }},
		{"copy in", func() error { _, err := db.Copy(ctx, inbox, []UID{1}, "INBOX"); return err }},
		{"expunge", func() error { _, err := db.Expunge(ctx, inbox, []UID{1}); return err }},
	}
	for i, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		want := start + uint64(i) + 1
		if got := highest(); got != want {
			t.Fatalf("after %s: HIGHESTMODSEQ %d, want %d", step.name, got, want)
		}
		if last := seen[len(seen)-1]; last.ModSeq != want {
			t.Fatalf("after %s: change told with modseq %d, want %d", step.name, last.ModSeq, want)
		}
	}
	snap, stop2, err := db.Watch(ctx, inbox, func(Change) {})
	if err != nil {
		t.Fatal(err)
	}
	stop2()
	// UID 2 last changed at the flag step, UID 3 (the copy) at the copy.
	if !slices.Equal(snap.UIDs, []UID{2, 3}) || !slices.Equal(snap.ModSeqs, []uint64{start + 3, start + 4}) {
		t.Fatalf("messages %v with modseqs %v", snap.UIDs, snap.ModSeqs)
	}
	vanished, complete, err := db.Vanished(ctx, inbox, start+4)
	if err != nil || !complete || !slices.Equal(vanished, []UID{1}) {
		t.Fatalf("Vanished since %d = %v, %v, %v; want [1], complete", start+4, vanished, complete, err)
	}
	if vanished, _, _ := db.Vanished(ctx, inbox, start+5); len(vanished) != 0 {
		t.Fatalf("Vanished since the expunge = %v, want none", vanished)
	}
}

// TestTombstonesAreBounded expunges more messages than MaxTombstones: the
// oldest tombstones go and Vanished says its answer for older mod-sequences
// is incomplete, while recent ones stay exact.
func TestTombstonesAreBounded(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	inbox := uidsMailbox(t, db, "INBOX")
	n := MaxTombstones + 10
	uids := make([]UID, n)
	for i := range uids {
		uids[i] = UID(i + 1)
	}
	// Tombstones need messages to expunge; fake them cheaply in SQL.
	if _, err := db.w.ExecContext(ctx, `INSERT INTO bodies (id, size, envelope, structure) VALUES (1000000, 1, x'', '{}')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO messages (mailbox_id, uid, body_id, flags, internal_date, internal_tz) SELECT ?, i, 1000000, '\Deleted', 0, 0 FROM n`,
		n, inbox.row); err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.ExecContext(ctx, "UPDATE mailboxes SET uid_next = ? WHERE id = ?", n+1, inbox.row); err != nil {
		t.Fatal(err)
	}
	mb, _ := db.Mailbox(ctx, "alice", "INBOX")
	before := mb.HighestModSeq
	if _, err := db.Expunge(ctx, inbox, uids[:20]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Expunge(ctx, inbox, uids[20:]); err != nil {
		t.Fatal(err)
	}
	var count int
	if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM expunged WHERE mailbox_id = ?", inbox.row).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count > MaxTombstones {
		t.Fatalf("%d tombstones kept, bound %d", count, MaxTombstones)
	}
	if _, complete, _ := db.Vanished(ctx, inbox, before); complete {
		t.Fatal("Vanished since before the dropped tombstones claims to be complete")
	}
	vanished, complete, err := db.Vanished(ctx, inbox, before+1)
	if err != nil || !complete || len(vanished) != n-20 {
		t.Fatalf("Vanished since the first expunge: %d UIDs, complete %v, %v; want %d, complete", len(vanished), complete, err, n-20)
	}
}
