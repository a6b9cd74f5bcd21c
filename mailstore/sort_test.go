package mailstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestBaseSubject(t *testing.T) {
	for _, tc := range []struct {
		in, base string
		reply    bool
	}{
		{"Hello", "HELLO", false},
		{"  Hello \t world  ", "HELLO WORLD", false},
		{"Re: Hello", "HELLO", true},
		{"RE:re:Fwd: Hello", "HELLO", true},
		{"Re[2]: Hello", "HELLO", true},
		{"[list] Re: Hello", "HELLO", true},
		{"[list] Hello", "HELLO", false},
		{"[list]", "[LIST]", false},          // a blob alone stays: removing it would leave nothing
		{"Hello (fwd)(fwd) ", "HELLO", true}, // trailers
		{"[Fwd: Re: Hello]", "HELLO", true},
		{"[fwd: [fwd: x]]", "X", true},
		{"Re: [list] Fwd: Topic (fwd)", "TOPIC", true},
		{"Reply all", "REPLY ALL", false},
		{"Fw Hello", "FW HELLO", false},
		{"Re:", "", true},
		{"", "", false},
		{"=?utf-8?q?Caf=C3=A9?= time", "CAFé TIME", false}, // encoded words decoded; only ASCII is upper-cased
		{"=?iso-8859-1?q?R=E9?= x", "Ré X", false},
	} {
		base, reply := baseSubject(tc.in)
		if base != tc.base || reply != tc.reply {
			t.Errorf("baseSubject(%q) = %q, %v; want %q, %v", tc.in, base, reply, tc.base, tc.reply)
		}
	}
}

// TestSortKeysBackfill: bodies stored before the sort_keys table get their
// keys at the next Open, so an upgraded store sorts as a new one does.
func TestSortKeysBackfill(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	mustAppend(t, db, "INBOX", []byte("From: zed@x\r\nSubject: Re: b\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <2@x>\r\nReferences: <1@x>\r\n\r\nx\r\n"))
	mustAppend(t, db, "INBOX", []byte("From: amy@x\r\nSubject: a\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nx\r\n"))
	inbox, _ := db.Mailbox(ctx, "alice", "INBOX")
	want := func(db *DB) ([]UID, []Thread) {
		sorted, err := db.Sort(ctx, inbox.ID, &imap.SearchCriteria{}, []imap.SortCriterion{{Key: imap.SortKeyFrom}})
		if err != nil {
			t.Fatal(err)
		}
		threads, err := db.Thread(ctx, inbox.ID, &imap.SearchCriteria{}, imap.ThreadReferences)
		if err != nil {
			t.Fatal(err)
		}
		return sorted, threads
	}
	sorted, threads := want(db)
	if !slices.Equal(sorted, []UID{2, 1}) || len(threads) != 1 || threads[0].UID != 2 || threads[0].Children[0].UID != 1 {
		t.Fatalf("before: sorted %v, threads %+v", sorted, threads)
	}
	if _, err := db.w.ExecContext(ctx, "DELETE FROM sort_keys"); err != nil { // as before the migration
		t.Fatal(err)
	}
	db.Close()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM sort_keys").Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d sort keys after Open (%v), want 2", n, err)
	}
	sorted2, threads2 := want(db)
	if !slices.Equal(sorted, sorted2) || !slices.EqualFunc(threads, threads2, func(a, b Thread) bool { return a.UID == b.UID && len(a.Children) == len(b.Children) }) {
		t.Fatalf("after backfill: sorted %v, threads %+v; want %v, %+v", sorted2, threads2, sorted, threads)
	}
}

// TestSubscriptionsMigration: a store from before the subscriptions table
// keeps its subscriptions (the mailboxes' subscribed column), and from
// then on a deleted mailbox keeps its subscription.
func TestSubscriptionsMigration(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	if _, err := db.CreateMailbox(ctx, "alice", "Lists/go", ""); err != nil {
		t.Fatal(err)
	}
	db.Close()
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	step := migrationMaking(t, "CREATE TABLE IF NOT EXISTS subscriptions")
	// As before the step: subscriptions in the column, Trash unsubscribed
	// and Lists/go subscribed.
	if _, err := old.Exec(fmt.Sprintf(`DROP TABLE subscriptions; UPDATE mailboxes SET subscribed = (name <> 'Trash');
		PRAGMA user_version = %d`, step)); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := []string{"Archive", "Drafts", "INBOX", "Junk", "Lists", "Lists/go", "Sent"}
	if subs, err := db.Subscriptions(ctx, "alice"); err != nil || !slices.Equal(subs, want) {
		t.Fatalf("after migration: %v, %v; want %v", subs, err, want)
	}
	if err := db.DeleteMailbox(ctx, "alice", "Lists/go"); err != nil {
		t.Fatal(err)
	}
	if subs, _ := db.Subscriptions(ctx, "alice"); !slices.Contains(subs, "Lists/go") {
		t.Errorf("deleting Lists/go dropped its subscription: %v", subs)
	}
	if err := db.SetSubscribed(ctx, "alice", "Lists/go", false); err != nil {
		t.Fatal(err)
	}
	if subs, _ := db.Subscriptions(ctx, "alice"); slices.Contains(subs, "Lists/go") {
		t.Errorf("UNSUBSCRIBE of a deleted mailbox's name kept it: %v", subs)
	}
}

// migrationMaking is the index of the migration whose text has s.
func migrationMaking(t *testing.T, s string) int {
	for i, m := range migrations {
		if strings.Contains(m, s) {
			return i
		}
	}
	t.Fatalf("no migration has %q", s)
	return 0
}
