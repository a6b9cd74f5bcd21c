package mailstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// segmentSizes are message sizes around the segment boundaries.
var segmentSizes = []int{0, 1, segmentSize - 1, segmentSize, segmentSize + 1, 2*segmentSize + segmentSize/2}

// randomMessage is a message of exactly size bytes (a header when it fits)
// whose body no two segments share.
func randomMessage(t testing.TB, size int) []byte {
	raw := make([]byte, size)
	rand.Read(raw)
	copy(raw, "Subject: s\r\n\r\n")
	return raw
}

// segmentRows reports the number of segments of owner id and the largest.
func segmentRows(t *testing.T, db *DB, table segmentTable, id int64) (n, largest int) {
	t.Helper()
	err := db.r.QueryRow("SELECT count(*), coalesce(max(length(data)), 0) FROM "+table.name+" WHERE "+table.owner+" = ?", id).Scan(&n, &largest)
	if err != nil {
		t.Fatal(err)
	}
	return n, largest
}

// TestSegmentsRoundTrip: messages and queued messages of every size around
// a segment boundary come back byte for byte, in rows of at most a
// segment, and a queued message over the limit is refused.
func TestSegmentsRoundTrip(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	inbox, err := db.Mailbox(ctx, "alice", Inbox)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range segmentSizes {
		raw := randomMessage(t, size)
		a, err := db.Append(ctx, "alice", Inbox, raw, nil, time.Now())
		if err != nil {
			t.Fatalf("append %d bytes: %v", size, err)
		}
		got, err := db.Raw(ctx, inbox.ID, a.UID)
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("message of %d bytes: read %d bytes, %v", size, len(got), err)
		}
		var bodyID int64
		err = db.r.QueryRow("SELECT body_id FROM messages WHERE mailbox_id = ? AND uid = ?", inbox.ID.row, a.UID).Scan(&bodyID)
		if err != nil {
			t.Fatal(err)
		}
		if n, largest := segmentRows(t, db, bodySegments, bodyID); n != (size+segmentSize-1)/segmentSize || largest > segmentSize {
			t.Errorf("message of %d bytes: %d segments, the largest %d bytes", size, n, largest)
		}
		id, err := db.Enqueue(ctx, Submission{Account: "alice", Message: bytes.NewReader(raw), Recipients: []OutboxRecipient{recipient(1, "x")}}, time.Now())
		if err != nil {
			t.Fatalf("enqueue %d bytes: %v", size, err)
		}
		got, release, err := db.OutboxMessageHeld(ctx, NewMemoryBudget(MaxMessageSize, time.Second), id)
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("queued message of %d bytes: read %d bytes, %v", size, len(got), err)
		}
		release()
		if n, largest := segmentRows(t, db, outboxSegments, id); n != (size+segmentSize-1)/segmentSize || largest > segmentSize {
			t.Errorf("queued message of %d bytes: %d segments, the largest %d bytes", size, n, largest)
		}
	}
	_, err = db.Enqueue(ctx, Submission{Account: "alice", Message: bytes.NewReader(make([]byte, MaxMessageSize+1)),
		Recipients: []OutboxRecipient{recipient(1, "x")}}, time.Now())
	if !errors.Is(err, ErrTooBig) {
		t.Errorf("enqueue of MaxMessageSize+1 bytes: %v, want ErrTooBig", err)
	}
}

// TestSegmentsGoWithTheirOwner: a body's segments stay while a copy of
// the message is in some mailbox and go with the last; a queued message's
// go with its last recipient.
func TestSegmentsGoWithTheirOwner(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	count := func(table segmentTable) (n int) {
		db.r.QueryRow("SELECT count(*) FROM " + table.name).Scan(&n)
		return n
	}
	inbox, err := db.Mailbox(ctx, "alice", Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateMailbox(ctx, "alice", "copies", ""); err != nil {
		t.Fatal(err)
	}
	a, err := db.Append(ctx, "alice", Inbox, randomMessage(t, 2*segmentSize+1), []string{`\Deleted`}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	copied, err := db.Copy(ctx, inbox.ID, []UID{a.UID}, "copies")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Expunge(ctx, inbox.ID, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(bodySegments); n != 3 {
		t.Errorf("%d segments while a copy is left, want 3", n)
	}
	if err := db.DeleteMailbox(ctx, "alice", "copies"); err != nil {
		t.Fatal(err)
	}
	if n := count(bodySegments); n != 0 || len(copied.DestUIDs) != 1 {
		t.Errorf("%d segments after the last copy went (%d copied), want 0", n, len(copied.DestUIDs))
	}

	now := time.Now()
	sub := Submission{Account: "alice", Message: bytes.NewReader(randomMessage(t, segmentSize+1)),
		Recipients: []OutboxRecipient{recipient(1, "one"), recipient(2, "two")}}
	if _, err := db.Enqueue(ctx, sub, now); err != nil {
		t.Fatal(err)
	}
	due, err := db.DueDeliveries(ctx, now, 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("due %v, %v", due, err)
	}
	for i, it := range due {
		if err := db.DeliverySucceeded(ctx, it); err != nil {
			t.Fatal(err)
		}
		if n, want := count(outboxSegments), []int{2, 0}[i]; n != want {
			t.Errorf("%d segments queued after %d of 2 recipients, want %d", n, i+1, want)
		}
	}
}

// TestSegmentsMigration: a store written by the schema before segments,
// with whole blobs in body_data.raw and outbox.raw, opens with every
// message and queued message readable as it was, in segments.
func TestSegmentsMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old := openSchemaAt(t, path, segmentMigration(t))
	if _, err := old.Exec(`INSERT INTO accounts (id, name) VALUES (1, 'alice');
		INSERT INTO mailboxes (id, account_id, name, uid_validity, uid_next) VALUES (1, 1, 'INBOX', 7, 100);
		INSERT INTO mailbox_ids (last) VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	want := map[UID][]byte{}
	for i, size := range segmentSizes {
		raw := randomMessage(t, size)
		uid := UID(i + 1)
		want[uid] = raw
		for _, q := range []string{
			"INSERT INTO bodies (id, size, envelope, structure) VALUES (?1, length(?2), x'', x'')",
			"INSERT INTO body_data (body_id, header_text, body_text, raw) VALUES (?1, '', '', ?2)",
			"INSERT INTO messages (mailbox_id, uid, body_id, internal_date, internal_tz) VALUES (1, ?1, ?1, 0, 0)",
			"INSERT INTO outbox (id, account, envelope_from, raw, queued_at) VALUES (?1, 'alice', 'a', ?2, 0)",
		} {
			if _, err := old.Exec(q, uid, raw); err != nil {
				t.Fatal(err)
			}
		}
	}
	old.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	inbox, err := db.Mailbox(ctx, "alice", Inbox)
	if err != nil {
		t.Fatal(err)
	}
	for uid, raw := range want {
		if got, err := db.Raw(ctx, inbox.ID, uid); err != nil || !bytes.Equal(got, raw) {
			t.Errorf("message %d of %d bytes: read %d bytes, %v", uid, len(raw), len(got), err)
		}
		if got, err := db.OutboxMessage(ctx, int64(uid)); err != nil || !bytes.Equal(got, raw) {
			t.Errorf("queued message %d of %d bytes: read %d bytes, %v", uid, len(raw), len(got), err)
		}
		if n, largest := segmentRows(t, db, bodySegments, int64(uid)); n != (len(raw)+segmentSize-1)/segmentSize || largest > segmentSize {
			t.Errorf("message of %d bytes: %d segments, the largest %d bytes", len(raw), n, largest)
		}
	}
}

// segmentMigration is the number of migrations before the one that makes
// segments.
func segmentMigration(t *testing.T) int {
	for i, m := range migrations {
		if strings.Contains(m, "CREATE TABLE body_segments") {
			return i
		}
	}
	t.Fatal("no migration makes body_segments")
	return 0
}
