package mailstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

func recipient(b byte, addr string) OutboxRecipient {
	r := OutboxRecipient{Address: addr}
	r.Passport[0], r.MessageID[0] = b, b+100
	return r
}

func TestOutboxLifecycle(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000)
	raw := msg("queued", "body")
	sub := Submission{Account: "alice", From: "alice@asmtp", Message: bytes.NewReader(raw),
		Recipients: []OutboxRecipient{recipient(1, "one@asmtp"), recipient(2, "two@asmtp")}}
	id, err := db.Enqueue(ctx, sub, now)
	if err != nil {
		t.Fatal(err)
	}

	// The queue is durable: a second handle on the file (as after a
	// restart) sees it.
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	due, err := db2.DueDeliveries(ctx, now, 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("DueDeliveries = %v, %v; want 2", due, err)
	}
	if due[0].OutboxID != id || due[0].MessageID != sub.Recipients[0].MessageID || due[0].From != "alice@asmtp" || !due[0].QueuedAt.Equal(now) {
		t.Fatalf("due[0] = %+v, want the first recipient as submitted", due[0])
	}
	if got, err := db.OutboxMessage(ctx, id); err != nil || string(got) != string(raw) {
		t.Fatalf("OutboxMessage = %q, %v", got, err)
	}

	later := now.Add(time.Minute)
	if err := db.DeliveryDeferred(ctx, due[0], later, "no route"); err != nil {
		t.Fatal(err)
	}
	if due, _ := db.DueDeliveries(ctx, now, 10); len(due) != 1 || due[0].Address != "two@asmtp" {
		t.Fatalf("after deferring one: due %+v, want only two@asmtp", due)
	}
	if next, ok, err := db.NextDelivery(ctx); err != nil || !ok || !next.Equal(now) {
		t.Fatalf("NextDelivery = %v, %v, %v; want %v", next, ok, err, now)
	}
	soon := now.Add(time.Second)
	if err := db.DeliveryPostponed(ctx, due[1], soon); err != nil {
		t.Fatal(err)
	}
	if q, _ := db.Outbox(ctx, "alice"); q[1].Attempts != 0 || !q[1].NextAttempt.Equal(soon) {
		t.Fatalf("postponed: %+v; want no attempt counted, next at %v", q[1], soon)
	}
	if err := db.DeliverySucceeded(ctx, due[1]); err != nil {
		t.Fatal(err)
	}
	if err := db.DeliverySucceeded(ctx, due[1]); !errors.Is(err, ErrNotQueued) {
		t.Fatalf("second DeliverySucceeded: %v, want ErrNotQueued", err)
	}
	left, err := db.Outbox(ctx, "alice")
	if err != nil || len(left) != 1 || left[0].Attempts != 1 || left[0].LastError != "no route" || !left[0].NextAttempt.Equal(later) {
		t.Fatalf("Outbox = %+v, %v; want one deferred recipient", left, err)
	}

	// Giving up stores the bounce in INBOX in the same transaction, and
	// the message goes with its last recipient.
	inbox, err := db.Mailbox(ctx, "alice", Inbox)
	if err != nil {
		t.Fatal(err)
	}
	changes := make(chan Change, 4)
	_, stop, err := db.Watch(ctx, inbox.ID, func(c Change) { changes <- c })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	a, err := db.DeliveryFailed(ctx, left[0], msg("bounce", "it failed"), later)
	if err != nil {
		t.Fatal(err)
	}
	if c := <-changes; c.Kind != ChangeAppended || c.UIDs[0] != a.UID {
		t.Fatalf("watch saw %+v, want the bounce appended", c)
	}
	if got, err := db.Raw(ctx, inbox.ID, a.UID); err != nil || string(got) != string(msg("bounce", "it failed")) {
		t.Fatalf("bounce in INBOX: %q, %v", got, err)
	}
	if _, err := db.OutboxMessage(ctx, id); !errors.Is(err, ErrNotQueued) {
		t.Fatalf("message after its last recipient: %v, want ErrNotQueued", err)
	}
	if _, ok, _ := db.NextDelivery(ctx); ok {
		t.Fatal("NextDelivery reports work in an empty outbox")
	}
	if _, err := db.DeliveryFailed(ctx, left[0], msg("bounce", "again"), later); !errors.Is(err, ErrNotQueued) {
		t.Fatalf("bouncing twice: %v, want ErrNotQueued", err)
	}
	if st, _ := db.Status(ctx, "alice", Inbox); st.Messages != 1 {
		t.Fatalf("INBOX has %d messages after a refused second bounce, want 1", st.Messages)
	}
}

func TestEnqueueRefuses(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	many := make([]OutboxRecipient, MaxOutboxRecipients+1)
	for i := range many {
		many[i].Passport[0], many[i].Passport[1] = byte(i), byte(i>>8)
	}
	for _, c := range []struct {
		name string
		s    Submission
	}{
		{"no recipients", Submission{Account: "alice", Message: bytes.NewReader(msg("a", "b"))}},
		{"unknown account", Submission{Account: "nobody", Message: bytes.NewReader(msg("a", "b")), Recipients: []OutboxRecipient{recipient(1, "x")}}},
		{"too many recipients", Submission{Account: "alice", Message: bytes.NewReader(msg("a", "b")), Recipients: many}},
		{"same recipient twice", Submission{Account: "alice", Message: bytes.NewReader(msg("a", "b")), Recipients: []OutboxRecipient{recipient(1, "x"), recipient(1, "y")}}},
		{"too big", Submission{Account: "alice", Message: bytes.NewReader(make([]byte, MaxMessageSize+1)), Recipients: []OutboxRecipient{recipient(1, "x")}}},
	} {
		if _, err := db.Enqueue(ctx, c.s, time.Now()); err == nil {
			t.Errorf("%s: Enqueue succeeded", c.name)
		}
	}
	if items, err := db.Outbox(ctx, "alice"); err != nil || len(items) != 0 {
		t.Fatalf("after refused submissions the outbox holds %+v, %v", items, err)
	}
}

// TestDeliveryDelayed: the delay report is stored with the mark that the
// recipient was warned, once: a second report is refused and not stored.
func TestDeliveryDelayed(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	now := time.UnixMilli(1_700_000_000_000)
	sub := Submission{Account: "alice", From: "alice@asmtp", Message: bytes.NewReader(msg("late", "body")), Recipients: []OutboxRecipient{recipient(1, "one@asmtp")}}
	if _, err := db.Enqueue(ctx, sub, now); err != nil {
		t.Fatal(err)
	}
	q, err := db.Outbox(ctx, "alice")
	if err != nil || len(q) != 1 || !q[0].WarnedAt.IsZero() {
		t.Fatalf("Outbox = %+v, %v; want one recipient not warned", q, err)
	}
	later := now.Add(4 * time.Hour)
	if _, err := db.DeliveryDelayed(ctx, q[0], msg("delayed", "still trying"), later); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeliveryDelayed(ctx, q[0], msg("delayed", "again"), later); !errors.Is(err, ErrNotQueued) {
		t.Fatalf("second delay report: %v, want ErrNotQueued", err)
	}
	if q, err := db.Outbox(ctx, "alice"); err != nil || len(q) != 1 || !q[0].WarnedAt.Equal(later) {
		t.Fatalf("Outbox = %+v, %v; want the recipient warned at %v", q, err, later)
	}
	if st, _ := db.Status(ctx, "alice", Inbox); st.Messages != 1 {
		t.Fatalf("INBOX has %d messages, want the one report", st.Messages)
	}

	// Handed to the node: the first time is kept, each check counted.
	for i, at := range []time.Time{now.Add(time.Minute), now.Add(time.Hour)} {
		if err := db.DeliveryHanded(ctx, q[0], at, at.Add(time.Minute), "no holder"); err != nil {
			t.Fatal(err)
		}
		got, err := db.Outbox(ctx, "alice")
		if err != nil || len(got) != 1 || !got[0].HandedAt.Equal(now.Add(time.Minute)) || got[0].Attempts != i+1 ||
			!got[0].NextAttempt.Equal(at.Add(time.Minute)) || got[0].LastError != "no holder" {
			t.Fatalf("after DeliveryHanded %d: %+v, %v", i+1, got, err)
		}
	}
}

// TestNextDeliveryIgnoresOrphans: a recipient row whose message was
// deleted by hand (the SQLite shell does not enforce foreign keys) is
// never due, so NextDelivery must not report it either: the delivery
// worker would wait for it, find nothing due and start again at once,
// forever.
func TestNextDeliveryIgnoresOrphans(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	now := time.UnixMilli(1_700_000_000_000)
	if _, err := db.Enqueue(ctx, Submission{Account: "alice", Message: bytes.NewReader(msg("gone", "body")), Recipients: []OutboxRecipient{recipient(1, "one@asmtp")}}, now); err != nil {
		t.Fatal(err)
	}
	shell, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer shell.Close()
	if _, err := shell.Exec("DELETE FROM outbox"); err != nil {
		t.Fatal(err)
	}
	if due, err := db.DueDeliveries(ctx, now, 10); err != nil || len(due) != 0 {
		t.Fatalf("DueDeliveries = %+v, %v; want none", due, err)
	}
	if next, ok, err := db.NextDelivery(ctx); err != nil || ok {
		t.Fatalf("NextDelivery = %v, %v, %v; want nothing queued", next, ok, err)
	}
}
