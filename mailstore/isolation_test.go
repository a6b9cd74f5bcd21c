package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestMailboxIDsRefuseOtherAccounts plays the cross-account attack on the
// store: alice keeps the ID of a mailbox she deleted, bob creates a mailbox
// and fills it, and every call taking a MailboxID, given alice's stale ID
// or one naming bob's mailbox under alice's account, finds nothing and
// changes nothing of bob's.
func TestMailboxIDsRefuseOtherAccounts(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	zz, err := db.CreateMailbox(ctx, "alice", "zz", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteMailbox(ctx, "alice", "zz"); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateAccount(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	bobs, err := db.CreateMailbox(ctx, "bob", "secret", "")
	if err != nil {
		t.Fatal(err)
	}
	if bobs.ID.row == zz.ID.row {
		t.Fatalf("bob's new mailbox reuses the id %d of alice's deleted one", zz.ID.row)
	}
	for i := range 3 {
		if _, err := db.Append(ctx, "bob", "secret", msg(fmt.Sprint("bob", i), "the password is hunter2"), []string{`\Deleted`}, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	bobInbox, _ := db.Mailbox(ctx, "bob", "INBOX")
	all := []UID{1, 2, 3}
	for name, id := range map[string]MailboxID{
		"stale":                   zz.ID,
		"bob's under alice":       {account: "alice", row: bobs.ID.row},
		"bob's INBOX under alice": {account: "alice", row: bobInbox.ID.row},
		"zero":                    {},
	} {
		calls := []struct {
			op  string
			err error
		}{
			{"Watch", func() error { _, _, err := db.Watch(ctx, id, func(Change) {}); return err }()},
			{"Fetch", db.Fetch(ctx, id, all, func(MessageMeta) error { return errors.New("fetched") })},
			{"Raw", func() error { _, err := db.Raw(ctx, id, 1); return err }()},
			{"Search", func() error {
				_, err := db.Search(ctx, id, &imap.SearchCriteria{Body: []string{"hunter2"}})
				return err
			}()},
			{"StoreFlags", db.StoreFlags(ctx, id, all, imap.StoreFlagsAdd, []string{`\Deleted`})},
			{"Copy", func() error { _, err := db.Copy(ctx, id, all, "INBOX"); return err }()},
			{"Move", func() error { _, err := db.Move(ctx, id, all, "INBOX"); return err }()},
			{"Expunge", func() error { _, err := db.Expunge(ctx, id, nil); return err }()},
		}
		for _, c := range calls {
			if !errors.Is(c.err, ErrNoMailbox) {
				t.Errorf("%s with the %s ID: %v, want ErrNoMailbox", c.op, name, c.err)
			}
		}
	}
	if got := uidsOf(t, db, bobs.ID); len(got) != 3 {
		t.Errorf("bob's mailbox holds %v, want his 3 messages", got)
	}
}

// TestMailboxIDsNotReused checks the counter across deletes, a reopen, and
// the migration of a store made before it (whose counter starts past the
// largest id in use: ids freed before cannot be known).
func TestMailboxIDsNotReused(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	seen := map[int64]bool{}
	for i := range 5 {
		mb, err := db.CreateMailbox(ctx, "alice", "box", "")
		if err != nil {
			t.Fatal(err)
		}
		if seen[mb.ID.row] {
			t.Fatalf("round %d: id %d reused", i, mb.ID.row)
		}
		seen[mb.ID.row] = true
		if err := db.DeleteMailbox(ctx, "alice", "box"); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	// A store from before the counter, with mailboxes 1 and 2 left of 3.
	path := filepath.Join(t.TempDir(), "old.db")
	old := openSchemaAt(t, path, counterMigration(t))
	if _, err := old.Exec(`INSERT INTO accounts (id, name) VALUES (1, 'alice');
		INSERT INTO mailboxes (id, account_id, name, uid_validity) VALUES (1, 1, 'INBOX', 1), (2, 1, 'a', 1), (3, 1, 'b', 1);
		DELETE FROM mailboxes WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mb, err := db.CreateMailbox(ctx, "alice", "after", "")
	if err != nil {
		t.Fatal(err)
	}
	var maxID int64
	db.r.QueryRow("SELECT max(id) FROM mailboxes WHERE id <> ?", mb.ID.row).Scan(&maxID)
	if mb.ID.row <= maxID {
		t.Errorf("after migration the new mailbox got id %d (largest other %d)", mb.ID.row, maxID)
	}
}

// openSchemaAt makes a store at path with only the first version
// migrations applied, as an older program left it, and opens it without
// migrating further.
func openSchemaAt(t *testing.T, path string, version int) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	for _, m := range migrations[:version] {
		if _, err := db.Exec(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
		t.Fatal(err)
	}
	return db
}

// counterMigration is the index of the migration that makes mailbox_ids.
func counterMigration(t *testing.T) int {
	for i, m := range migrations {
		if strings.Contains(m, "CREATE TABLE mailbox_ids") {
			return i
		}
	}
	t.Fatal("no migration makes mailbox_ids")
	return 0
}
