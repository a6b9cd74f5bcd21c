package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
)

// TestMessagesPage pages a topic with both bounds: every message once, in
// cursor order, no page over its count or (beyond its last message) its
// bytes, and the last page the only one PageFull calls final.
func TestMessagesPage(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "node.db"))
	tp := topic.Topic{7}
	base := time.Unix(1_700_000_000, 0)
	var batch []NewMessage
	for i := range 50 {
		batch = append(batch, NewMessage{Topic: tp, Hash: [32]byte{byte(i), 1}, Content: make([]byte, 1000+i), ReceivedAt: base})
	}
	if _, err := s.AddMessages(ctx, batch); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name            string
		limit, maxBytes int
	}{
		{"count bound", 7, 0},
		{"byte bound", 100, 4500},
		{"both", 3, 10_000},
		{"one page", 100, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var after int64
			seen := 0
			for pages := 0; ; pages++ {
				if pages > len(batch) {
					t.Fatal("paging does not end")
				}
				ms, err := s.MessagesPage(ctx, tp, base, after, c.limit, c.maxBytes)
				if err != nil {
					t.Fatal(err)
				}
				size := 0
				for i, m := range ms {
					if m.Cursor <= after || len(m.Content) != 1000+seen {
						t.Fatalf("page %d message %d: cursor %d after %d, %d bytes, want message %d", pages, i, m.Cursor, after, len(m.Content), seen)
					}
					if c.maxBytes > 0 && i > 0 && size >= c.maxBytes {
						t.Fatalf("page %d goes on after %d bytes, bound %d", pages, size, c.maxBytes)
					}
					size += len(m.Content)
					after = m.Cursor
					seen++
				}
				if len(ms) > c.limit {
					t.Fatalf("page %d: %d messages, limit %d", pages, len(ms), c.limit)
				}
				if !PageFull(ms, c.limit, c.maxBytes) {
					break
				}
			}
			if seen != len(batch) {
				t.Fatalf("paged %d messages, want %d", seen, len(batch))
			}
		})
	}
}

// ★ TestCursorsNotReusedAfterPowerLoss emulates a power cut: the files
// as they were at the store's last fsync (a copy taken right after Open,
// before any relaxed commit) come back, though relaxed commits handed out
// cursors after it. The store reopened from them must number past every
// cursor handed out before the cut; reusing one would make a user that
// recorded it as read skip the new message. Without the reservation the
// first new message took cursor 1 again.
func TestCursorsNotReusedAfterPowerLoss(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "node.db")
	tp := topic.Topic{8}
	add := func(s *Store, i int) int64 {
		t.Helper()
		added, err := s.AddMessages(ctx, []NewMessage{{Topic: tp, Hash: [32]byte{byte(i), 2}, Content: []byte{byte(i)}, ReceivedAt: time.Now()}})
		if err != nil || len(added) != 1 {
			t.Fatalf("add: %v", err)
		}
		return added[0].Cursor
	}
	for round := range 3 {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		durable := snapshotFiles(t, path) // what is on disk after Open's fsync
		var handedOut int64
		for i := range 5 {
			handedOut = add(s, 10*round+i)
			if handedOut > s.ReservedCursor() {
				t.Fatalf("cursor %d handed out beyond the reserved bound %d", handedOut, s.ReservedCursor())
			}
		}
		// The power cut: the process is gone, the relaxed commits with it.
		s.Close()
		restoreFiles(t, path, durable)
		s, err = Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if c := add(s, 10*round+9); c <= handedOut {
			t.Fatalf("round %d: after the power cut the store assigned cursor %d again (handed out up to %d)", round, c, handedOut)
		}
		s.Close()
	}
}

// snapshotFiles returns the database's files as they are now.
func snapshotFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if err == nil {
			files[suffix] = b
		}
	}
	return files
}

// restoreFiles puts a snapshot back, dropping what came after it.
func restoreFiles(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	for suffix, b := range files {
		if err := os.WriteFile(path+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
