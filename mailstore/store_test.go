package mailstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func openTest(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mail.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.CreateAccount(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	return db, path
}

func msg(subject, body string) []byte {
	return []byte("From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: " + subject +
		"\r\nDate: Mon, 02 Jan 2006 15:04:05 -0700\r\nMessage-ID: <" + subject + "@x>\r\n\r\n" + body + "\r\n")
}

func mustAppend(t *testing.T, db *DB, mailbox string, raw []byte, flags ...string) Appended {
	t.Helper()
	a, err := db.Append(context.Background(), "alice", mailbox, raw, flags, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func uidsOf(t *testing.T, db *DB, mailboxID MailboxID) []UID {
	t.Helper()
	snap, stop, err := db.Watch(context.Background(), mailboxID, func(Change) {})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	return snap.UIDs
}

func TestCreateAccountMailboxes(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	mbs, err := db.Mailboxes(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	seen := map[uint32]bool{}
	for _, mb := range mbs {
		got[mb.Name] = mb.SpecialUse
		if mb.UIDValidity == 0 || seen[mb.UIDValidity] || mb.UIDNext != 1 || !mb.Subscribed {
			t.Errorf("mailbox %+v: want fresh distinct UIDVALIDITY, UIDNEXT 1, subscribed", mb)
		}
		seen[mb.UIDValidity] = true
	}
	want := map[string]string{"INBOX": "", "Sent": `\Sent`, "Drafts": `\Drafts`, "Trash": `\Trash`, "Junk": `\Junk`, "Archive": `\Archive`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("mailboxes = %v, want %v", got, want)
	}
	if err := db.CreateAccount(ctx, "alice"); !errors.Is(err, ErrAccountExists) {
		t.Errorf("second CreateAccount: %v, want ErrAccountExists", err)
	}
	if _, err := db.Mailboxes(ctx, "nobody"); !errors.Is(err, ErrNoAccount) {
		t.Errorf("Mailboxes(nobody): %v, want ErrNoAccount", err)
	}
}

func TestUIDsNeverReusedAndStableAcrossReopen(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	var uids []UID
	for i := range 3 {
		uids = append(uids, mustAppend(t, db, "INBOX", msg(fmt.Sprint("m", i), "x"), `\Deleted`).UID)
	}
	if !slices.Equal(uids, []UID{1, 2, 3}) {
		t.Fatalf("UIDs = %v", uids)
	}
	if _, err := db.Expunge(ctx, uidsMailbox(t, db, "INBOX"), nil); err != nil {
		t.Fatal(err)
	}
	a := mustAppend(t, db, "INBOX", msg("after", "x"))
	if a.UID != 4 {
		t.Fatalf("UID after expunge = %d, want 4 (never reuse)", a.UID)
	}
	before, _ := db.Mailbox(ctx, "alice", "INBOX")
	db.Close()

	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	after, err := db2.Mailbox(ctx, "alice", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("after reopen %+v, before %+v", after, before)
	}
	if got := uidsOf(t, db2, after.ID); !slices.Equal(got, []UID{4}) {
		t.Errorf("UIDs after reopen = %v", got)
	}
}

func uidsMailbox(t *testing.T, db *DB, name string) MailboxID {
	t.Helper()
	mb, err := db.Mailbox(context.Background(), "alice", name)
	if err != nil {
		t.Fatal(err)
	}
	return mb.ID
}

func TestDeleteRecreateChangesUIDValidity(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	first, err := db.CreateMailbox(ctx, "alice", "Work", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteMailbox(ctx, "alice", "Work"); err != nil {
		t.Fatal(err)
	}
	second, err := db.CreateMailbox(ctx, "alice", "Work", "")
	if err != nil {
		t.Fatal(err)
	}
	if second.UIDValidity <= first.UIDValidity {
		t.Errorf("UIDVALIDITY %d after re-create, was %d", second.UIDValidity, first.UIDValidity)
	}
}

func TestMailboxHierarchy(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	if _, err := db.CreateMailbox(ctx, "alice", "a/b/c", ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"create existing", func() error { _, err := db.CreateMailbox(ctx, "alice", "a/b", ""); return err }, ErrMailboxExists},
		{"create inbox other case", func() error { _, err := db.CreateMailbox(ctx, "alice", "inbox", ""); return err }, ErrMailboxExists},
		{"bad name", func() error { _, err := db.CreateMailbox(ctx, "alice", "a//b", ""); return err }, ErrBadName},
		{"wildcard", func() error { _, err := db.CreateMailbox(ctx, "alice", "a*", ""); return err }, ErrBadName},
		{"delete parent", func() error { return db.DeleteMailbox(ctx, "alice", "a") }, ErrHasChildren},
		{"delete inbox", func() error { return db.DeleteMailbox(ctx, "alice", "INBOX") }, ErrInboxDelete},
		{"rename into itself", func() error { return db.RenameMailbox(ctx, "alice", "a", "a/x") }, ErrBadName},
		{"rename missing", func() error { return db.RenameMailbox(ctx, "alice", "zz", "yy") }, ErrNoMailbox},
		{"rename onto existing", func() error { return db.RenameMailbox(ctx, "alice", "a/b", "Sent") }, ErrMailboxExists},
	}
	for _, tt := range tests {
		if err := tt.op(); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	c, _ := db.Mailbox(ctx, "alice", "a/b/c")
	if err := db.RenameMailbox(ctx, "alice", "a", "x/y"); err != nil {
		t.Fatal(err)
	}
	moved, err := db.Mailbox(ctx, "alice", "x/y/b/c")
	if err != nil {
		t.Fatal(err)
	}
	if moved.ID != c.ID || moved.UIDValidity != c.UIDValidity {
		t.Errorf("renamed child %+v lost identity of %+v", moved, c)
	}
	for _, name := range []string{"x", "x/y", "x/y/b"} {
		if _, err := db.Mailbox(ctx, "alice", name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRenameInboxMovesMessages(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	mustAppend(t, db, "INBOX", msg("one", "x"), `\Seen`)
	mustAppend(t, db, "INBOX", msg("two", "x"))
	if err := db.RenameMailbox(ctx, "alice", "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	inbox, _ := db.Status(ctx, "alice", "INBOX")
	old, _ := db.Status(ctx, "alice", "Old")
	if inbox.Messages != 0 || old.Messages != 2 || old.Unseen != 1 {
		t.Errorf("INBOX %+v, Old %+v", inbox, old)
	}
}

func TestStoreFlags(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	id := uidsMailbox(t, db, "INBOX")
	tests := []struct {
		start []string
		op    imap.StoreFlagsOp
		arg   []string
		want  string
	}{
		{nil, imap.StoreFlagsAdd, []string{`\seen`, "Work"}, `\Seen Work`},
		{[]string{`\Seen`, "Work"}, imap.StoreFlagsAdd, []string{"work", `\Flagged`}, `\Seen \Flagged Work`},
		{[]string{`\Seen`, "Work"}, imap.StoreFlagsDel, []string{"WORK"}, `\Seen`},
		{[]string{`\Seen`, "Work"}, imap.StoreFlagsSet, []string{`\Draft`}, `\Draft`},
		{[]string{`\Seen`}, imap.StoreFlagsSet, nil, ``},
	}
	for i, tt := range tests {
		a := mustAppend(t, db, "INBOX", msg(fmt.Sprint("f", i), "x"), tt.start...)
		if err := db.StoreFlags(ctx, id, []UID{a.UID}, tt.op, tt.arg); err != nil {
			t.Fatal(err)
		}
		var got string
		db.Fetch(ctx, id, []UID{a.UID}, func(m MessageMeta) error { got = strings.Join(m.Flags, " "); return nil })
		if got != tt.want {
			t.Errorf("%v %v %v = %q, want %q", tt.start, tt.op, tt.arg, got, tt.want)
		}
	}
	for _, bad := range [][]string{{`\Bogus`}, {"a b"}, {"x(y"}} {
		if err := db.StoreFlags(ctx, id, []UID{1}, imap.StoreFlagsAdd, bad); !errors.Is(err, ErrBadFlag) {
			t.Errorf("flags %q: %v, want ErrBadFlag", bad, err)
		}
	}
}

func TestCopyIsIndependentMoveRenumbers(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	inbox := uidsMailbox(t, db, "INBOX")
	for i := range 3 {
		mustAppend(t, db, "INBOX", msg(fmt.Sprint("c", i), "body"), `\Seen`)
	}
	mustAppend(t, db, "Archive", msg("already", "x"))

	c, err := db.Copy(ctx, inbox, []UID{1, 3, 99}, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.SourceUIDs, []UID{1, 3}) || !slices.Equal(c.DestUIDs, []UID{2, 3}) {
		t.Fatalf("copy = %+v", c)
	}
	// Deleting the originals leaves the copies intact.
	db.StoreFlags(ctx, inbox, []UID{1, 2, 3}, imap.StoreFlagsAdd, []string{`\Deleted`})
	if gone, _ := db.Expunge(ctx, inbox, []UID{1, 3}); !slices.Equal(gone, []UID{1, 3}) {
		t.Fatalf("expunged %v, want [1 3] (UID EXPUNGE subset)", gone)
	}
	archive := uidsMailbox(t, db, "Archive")
	raw, err := db.Raw(ctx, archive, 3)
	if err != nil || !strings.Contains(string(raw), "Subject: c2") {
		t.Fatalf("copy after original expunged: %q, %v", raw, err)
	}
	var flags []string
	db.Fetch(ctx, archive, []UID{2}, func(m MessageMeta) error { flags = m.Flags; return nil })
	if !slices.Equal(flags, []string{`\Seen`}) {
		t.Errorf("copied flags %v", flags)
	}

	m, err := db.Move(ctx, inbox, []UID{2}, "Trash")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.SourceUIDs, []UID{2}) || !slices.Equal(m.DestUIDs, []UID{1}) {
		t.Errorf("move = %+v", m)
	}
	if got := uidsOf(t, db, inbox); len(got) != 0 {
		t.Errorf("INBOX after move: %v", got)
	}
	forged := MailboxID{account: "mallory", row: inbox.row}
	if _, err := db.Copy(ctx, forged, []UID{1}, "INBOX"); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("copy across accounts: %v", err)
	}
}

func TestBodiesFreedWhenLastReferenceGoes(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	inbox := uidsMailbox(t, db, "INBOX")
	mustAppend(t, db, "INBOX", msg("shared", "x"), `\Deleted`)
	if _, err := db.Copy(ctx, inbox, []UID{1}, "Archive"); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		db.r.QueryRow("SELECT count(*) FROM bodies").Scan(&n)
		return n
	}
	db.Expunge(ctx, inbox, nil)
	if n := count(); n != 1 {
		t.Errorf("bodies after expunging one of two references = %d, want 1", n)
	}
	if err := db.DeleteMailbox(ctx, "alice", "Archive"); err != nil {
		t.Fatal(err)
	}
	var data int
	db.r.QueryRow("SELECT count(*) FROM body_data").Scan(&data)
	if n := count(); n != 0 || data != 0 {
		t.Errorf("bodies/body_data after deleting last reference = %d/%d, want 0/0", n, data)
	}
}

func TestWatchSeesChangesInCommitOrder(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	inbox := uidsMailbox(t, db, "INBOX")
	mustAppend(t, db, "INBOX", msg("pre", "x"))
	var mu sync.Mutex
	var got []string
	snap, stop, err := db.Watch(ctx, inbox, func(c Change) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%d%v%v%v", c.Kind, c.UIDs, c.Flags, c.Origin))
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(snap.UIDs, []UID{1}) {
		t.Fatalf("snapshot %v", snap.UIDs)
	}
	mustAppend(t, db, "INBOX", msg("new", "x"), "$label")
	db.StoreFlags(WithOrigin(ctx, "s1"), inbox, []UID{1, 2}, imap.StoreFlagsAdd, []string{`\Deleted`})
	db.Expunge(ctx, inbox, nil)
	db.DeleteMailbox(ctx, "alice", "Junk") // another mailbox: not seen
	stop()
	mustAppend(t, db, "INBOX", msg("after stop", "x"))
	want := []string{
		"1[2][[$label]]<nil>",
		`2[1 2][[\Deleted] [\Deleted $label]]s1`,
		"3[1 2][]<nil>",
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes\n got %q\nwant %q", got, want)
	}
}

func TestSearch(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	inbox := uidsMailbox(t, db, "INBOX")
	date := func(s string) time.Time { d, _ := time.Parse("2006-01-02", s); return d }
	db.Append(ctx, "alice", "INBOX", msg("alpha", "Hello World"), []string{`\Seen`}, date("2024-01-10"))
	db.Append(ctx, "alice", "INBOX", []byte("Subject: =?iso-8859-1?q?caf=E9?=\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"+
		"Content-Transfer-Encoding: quoted-printable\r\n\r\nd=E9j=E0 vu\r\n"), nil, date("2024-02-10"))
	db.Append(ctx, "alice", "INBOX", []byte("Subject: big\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"+
		"Content-Type: text/plain\r\n\r\nneedle in text\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\nneedle in binary\r\n--b--\r\n"+
		strings.Repeat("x", 2000)), []string{"Work"}, date("2024-03-10"))
	tests := []struct {
		name string
		c    imap.SearchCriteria
		want []UID
	}{
		{"all", imap.SearchCriteria{}, []UID{1, 2, 3}},
		{"seen", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, []UID{1}},
		{"unseen", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []UID{2, 3}},
		{"keyword any case", imap.SearchCriteria{Flag: []imap.Flag{"work"}}, []UID{3}},
		{"body case-insensitive", imap.SearchCriteria{Body: []string{"WORLD"}}, []UID{1}},
		{"body decoded latin-1", imap.SearchCriteria{Body: []string{"déjà"}}, []UID{2}},
		{"subject decoded", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "café"}}}, []UID{2}},
		{"header exists", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID"}}}, []UID{1}},
		{"text in header", imap.SearchCriteria{Text: []string{"bob@example"}}, []UID{1}},
		{"text skips binary parts", imap.SearchCriteria{Text: []string{"needle in binary"}}, nil},
		{"text in text part", imap.SearchCriteria{Text: []string{"needle in text"}}, []UID{3}},
		{"larger", imap.SearchCriteria{Larger: 1000}, []UID{3}},
		{"smaller", imap.SearchCriteria{Smaller: 143}, []UID{2}}, // sizes 145, 140, >2000
		{"since", imap.SearchCriteria{Since: date("2024-02-10")}, []UID{2, 3}},
		{"before", imap.SearchCriteria{Before: date("2024-02-10")}, []UID{1}},
		{"sent before (no Date: never matches)", imap.SearchCriteria{SentBefore: date("2030-01-01")}, []UID{1}},
		{"uid", imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(2, 3)}}, []UID{2, 3}},
		{"not", imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagSeen}}}}, []UID{2, 3}},
		{"or", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Body: []string{"hello"}}, {Larger: 1000}}}}, []UID{1, 3}},
	}
	for _, tt := range tests {
		got, err := db.Search(ctx, inbox, &tt.c)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	_, err := db.Search(ctx, inbox, &imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(1)}})
	if !errors.Is(err, ErrNotUIDCriteria) {
		t.Errorf("seq criteria: %v", err)
	}
}

func TestAppendLimits(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	if _, err := db.Append(ctx, "alice", "INBOX", make([]byte, MaxMessageSize+1), nil, time.Time{}); !errors.Is(err, ErrTooBig) {
		t.Errorf("oversized: %v", err)
	}
	if _, err := db.Append(ctx, "alice", "Nope", msg("x", "y"), nil, time.Time{}); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("missing mailbox: %v", err)
	}
	many := make([]string, MaxFlagsPerMessage+1)
	for i := range many {
		many[i] = fmt.Sprint("k", i)
	}
	if _, err := db.Append(ctx, "alice", "INBOX", msg("x", "y"), many, time.Time{}); !errors.Is(err, ErrTooManyFlags) {
		t.Errorf("too many flags: %v", err)
	}
}

func TestInternalDateKeepsZone(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	want := time.Date(2023, 5, 6, 7, 8, 9, 0, time.FixedZone("", -7*3600))
	a, err := db.Append(ctx, "alice", "INBOX", msg("d", "x"), nil, want)
	if err != nil {
		t.Fatal(err)
	}
	db.Fetch(ctx, a.MailboxID, []UID{a.UID}, func(m MessageMeta) error {
		if !m.InternalDate.Equal(want) || m.InternalDate.Format("-0700") != "-0700" || m.Size != int64(len(msg("d", "x"))) {
			t.Errorf("INTERNALDATE %v size %d", m.InternalDate, m.Size)
		}
		return nil
	})
}

// FetchItems reads only the cached columns asked for, and each message
// keeps its own internal date zone although Fetch reuses zones between
// messages.
func TestFetchItems(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	zones := []int{-7 * 3600, -7 * 3600, 2 * 3600, -7 * 3600}
	var uids []UID
	var mailbox MailboxID
	for i, offset := range zones {
		date := time.Date(2023, 5, 6, 7, 8, 9, 0, time.FixedZone("", offset))
		a, err := db.Append(ctx, "alice", "INBOX", msg(fmt.Sprint("s", i), "x"), []string{`\Seen`}, date)
		if err != nil {
			t.Fatal(err)
		}
		uids, mailbox = append(uids, a.UID), a.MailboxID
	}
	tests := []struct {
		name  string
		items MetaItems
	}{
		{"none", MetaItems{}},
		{"flags", MetaItems{Flags: true}},
		{"envelope", MetaItems{Envelope: true}},
		{"structure", MetaItems{Structure: true}},
		{"all", MetaItems{Flags: true, Envelope: true, Structure: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := 0
			err := db.FetchItems(ctx, mailbox, uids, tt.items, func(m MessageMeta) error {
				if tt.items.Flags != (len(m.Flags) == 1 && m.Flags[0] == `\Seen`) {
					t.Errorf("message %d: flags %q, asked %v", i, m.Flags, tt.items.Flags)
				}
				if _, offset := m.InternalDate.Zone(); offset != zones[i] {
					t.Errorf("message %d: zone offset %d, want %d", i, offset, zones[i])
				}
				env, err := m.Envelope()
				if tt.items.Envelope != (err == nil) {
					t.Errorf("message %d: envelope error %v, asked %v", i, err, tt.items.Envelope)
				}
				if err == nil && env.Subject != fmt.Sprint("s", i) {
					t.Errorf("message %d: subject %q", i, env.Subject)
				}
				if _, err := m.BodyStructure(); tt.items.Structure != (err == nil) {
					t.Errorf("message %d: structure error %v, asked %v", i, err, tt.items.Structure)
				}
				i++
				return nil
			})
			if err != nil || i != len(uids) {
				t.Fatalf("fetched %d of %d: %v", i, len(uids), err)
			}
		})
	}
}
