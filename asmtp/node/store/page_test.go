package store

import (
	"context"
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

// TestDurableCursor: a relaxed commit does not move the durable cursor, a
// Sync or a durable commit does, and a reopened store counts what it found
// as durable.
func TestDurableCursor(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "node.db")
	s := open(t, path)
	tp := topic.Topic{8}
	added, err := s.AddMessages(ctx, []NewMessage{{Topic: tp, Hash: [32]byte{1}, Content: []byte("a"), ReceivedAt: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	relaxed := added[0].Cursor
	if d := s.DurableCursor(); d >= relaxed {
		t.Fatalf("durable cursor %d after a relaxed commit of cursor %d", d, relaxed)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if d := s.DurableCursor(); d != relaxed {
		t.Fatalf("durable cursor %d after Sync, want %d", d, relaxed)
	}
	m, _, err := s.AddMessage(ctx, Durable, tp, [32]byte{2}, []byte("b"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if d := s.DurableCursor(); d != m.Cursor {
		t.Fatalf("durable cursor %d after a durable add, want %d", d, m.Cursor)
	}
	if _, err := s.AddMessages(ctx, []NewMessage{{Topic: tp, Hash: [32]byte{3}, Content: []byte("c"), ReceivedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	if d := s.DurableCursor(); d != m.Cursor+1 {
		t.Fatalf("durable cursor %d after reopening, want %d", d, m.Cursor+1)
	}
}
