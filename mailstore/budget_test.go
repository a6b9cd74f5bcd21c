package mailstore

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestMemoryBudgetSpent: while other requests hold the budget, Append,
// AppendFrom and a text SEARCH fail with ErrBusy after the wait, and
// succeed once it is free; a message larger than the whole budget is
// stored when it runs alone.
func TestMemoryBudgetSpent(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	db.SetMemoryBudget(1<<20, 50*time.Millisecond)
	mustAppend(t, db, "INBOX", msg("first", "findme"))
	inbox := uidsMailbox(t, db, "INBOX")
	calls := []struct {
		name string
		call func() error
	}{
		{"Append", func() error {
			_, err := db.Append(ctx, "alice", "INBOX", msg("a", "x"), nil, time.Time{})
			return err
		}},
		{"AppendFrom", func() error {
			raw := msg("b", "x")
			_, err := db.AppendFrom(ctx, "alice", "INBOX", strings.NewReader(string(raw)), int64(len(raw)), nil, time.Time{})
			return err
		}},
		{"Search BODY", func() error {
			uids, err := db.Search(ctx, inbox, &imap.SearchCriteria{Body: []string{"findme"}})
			if err == nil && len(uids) != 1 {
				return errors.New("search found nothing")
			}
			return err
		}},
	}
	release, err := db.budget.Acquire(ctx, 1<<20) // another request holds it all
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		start := time.Now()
		if err := c.call(); !errors.Is(err, ErrBusy) {
			t.Errorf("%s with the budget spent: %v, want ErrBusy", c.name, err)
		}
		if waited := time.Since(start); waited < 50*time.Millisecond {
			t.Errorf("%s gave up after %v, before the 50 ms wait", c.name, waited)
		}
	}
	release()
	for _, c := range calls {
		if err := c.call(); err != nil {
			t.Errorf("%s with the budget free: %v", c.name, err)
		}
	}
	big := msg("big", strings.Repeat("x", 2<<20)) // costs 4 MiB of a 1 MiB budget
	if _, err := db.Append(ctx, "alice", "INBOX", big, nil, time.Time{}); err != nil {
		t.Errorf("message over the budget, alone: %v", err)
	}
}

// TestAppendFromSpool: the spool file goes away whether the APPEND
// succeeds or its literal is cut short, and Open removes files a crash
// left behind.
func TestAppendFromSpool(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	dir := filepath.Dir(path)
	spooled := func() []string {
		l, _ := filepath.Glob(filepath.Join(dir, spoolPattern))
		return l
	}
	raw := msg("spooled", strings.Repeat("y", 100<<10))
	a, err := db.AppendFrom(ctx, "alice", "INBOX", strings.NewReader(string(raw)), int64(len(raw)), nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.Raw(ctx, a.MailboxID, a.UID); err != nil || string(got) != string(raw) {
		t.Fatalf("stored %d bytes, %v; want the %d sent", len(got), err, len(raw))
	}
	_, err = db.AppendFrom(ctx, "alice", "INBOX", strings.NewReader(string(raw[:1000])), int64(len(raw)), nil, time.Time{})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut-short literal: %v, want io.ErrUnexpectedEOF", err)
	}
	if st, _ := db.Status(ctx, "alice", "INBOX"); st.Messages != 1 {
		t.Errorf("INBOX has %d messages after a cut-short APPEND, want 1", st.Messages)
	}
	if l := spooled(); len(l) != 0 {
		t.Errorf("spool files left: %v", l)
	}
	db.Close()
	left := filepath.Join(dir, "mailstore-append-123.tmp")
	if err := os.WriteFile(left, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db2.Close()
	if l := spooled(); len(l) != 0 {
		t.Errorf("spool files a crash left survive Open: %v", l)
	}
}
