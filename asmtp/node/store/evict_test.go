package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// Evict removes what no user waits for, oldest first, and never a peer's
// message a registered user has not fetched; Size follows every write and
// survives a reopen; Origin names the peer a message came from.
func TestEvictOrder(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "node.db")
	s := open(t, path)
	user := keys.PublicKey{0xaa}
	peer := keys.PublicKey{0xbb}
	mine, theirs, orphan := topic.Topic{1}, topic.Topic{2}, topic.Topic{3}
	for _, tp := range []topic.Topic{mine, theirs} {
		if err := s.Register(ctx, user, tp); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Unix(1_700_000_000, 0)
	kb := make([]byte, 1000)
	msgs := []struct {
		name  string
		tp    topic.Topic
		from  keys.PublicKey
		at    int
		evict bool
	}{
		{"peer's, fetched", theirs, peer, 1, true},
		{"peer's, not fetched", theirs, peer, 0, false},
		{"own publication", mine, keys.PublicKey{}, 3, true},
		{"topic nobody registers", orphan, peer, 4, true},
		{"peer's, newest, not fetched", theirs, peer, 5, false},
	}
	var cursors []int64
	for i, m := range msgs {
		added, err := s.AddMessages(ctx, []NewMessage{{Topic: m.tp, Hash: [32]byte{byte(i)}, Content: kb, ReceivedAt: base.Add(time.Duration(m.at) * time.Second), Origin: m.from}})
		if err != nil || len(added) != 1 {
			t.Fatal(added, err)
		}
		cursors = append(cursors, added[0].Cursor)
	}
	if got := s.Size(); got != int64(len(msgs)*len(kb)) {
		t.Fatalf("Size %d, want %d", got, len(msgs)*len(kb))
	}
	// The user fetched the first message of theirs only.
	if err := s.SetFetched(ctx, user, theirs, cursors[0]); err != nil {
		t.Fatal(err)
	}
	if from, size, ok, err := s.Origin(ctx, cursors[0]); err != nil || !ok || from != peer || size != len(kb) {
		t.Fatalf("Origin of a peer's message: %v %v %v %v", from, size, ok, err)
	}
	if _, _, ok, err := s.Origin(ctx, cursors[2]); err != nil || ok {
		t.Fatalf("Origin of an own publication: %v %v", ok, err)
	}
	freed, err := s.Evict(ctx, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if freed != 3*int64(len(kb)) {
		t.Errorf("freed %d bytes, want %d", freed, 3*len(kb))
	}
	for i, m := range msgs {
		left, err := s.MessagesAfter(ctx, m.tp, cursors[i]-1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if kept := len(left) == 1 && left[0].Cursor == cursors[i]; kept == m.evict {
			t.Errorf("%s: kept %v after Evict, want %v", m.name, kept, !m.evict)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	if got := s.Size(); got != 2*int64(len(kb)) {
		t.Errorf("Size after reopen %d, want %d", got, 2*len(kb))
	}
}

// Reads go through the read pool: they answer while the writer is held
// (a long commit, a checkpoint) instead of queueing behind it.
func TestReadsDoNotWaitForTheWriter(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "node.db"))
	if _, err := s.AddMessages(ctx, []NewMessage{{Topic: topic.Topic{1}, Content: []byte("x"), ReceivedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	s.write.Lock()
	defer s.write.Unlock()
	tx, err := s.db.BeginTx(ctx, nil) // the durable writer holds SQLite's write lock too
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if ok, err := s.HasMessage(rctx, topic.Topic{1}, [32]byte{}); err != nil || !ok {
		t.Fatalf("HasMessage while the writer is busy: %v %v", ok, err)
	}
	if ms, err := s.MessagesSince(rctx, topic.Topic{1}, time.Time{}, 10); err != nil || len(ms) != 1 {
		t.Fatalf("MessagesSince while the writer is busy: %v %v", ms, err)
	}
}
