package mailstore

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func chunk(sender, id byte, index, count uint16, data string) InboundChunk {
	c := InboundChunk{Kind: 1, Index: index, Count: count, Total: uint32(count) * 100, Data: []byte(data)}
	c.Sender[0], c.ID[0] = sender, id
	return c
}

var roomy = ReassemblyLimits{MaxMessages: 8, MaxBytes: 1 << 20}

func TestReassemblyStatuses(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	now := time.Now()
	steps := []struct {
		name string
		c    InboundChunk
		want ChunkStatus
		held int
	}{
		{"first chunk", chunk(1, 1, 2, 3, "cc"), ChunkHeld, 1},
		{"duplicate", chunk(1, 1, 2, 3, "cc"), ChunkDuplicate, 1},
		{"same id, other sender: another message", chunk(2, 1, 0, 3, "xx"), ChunkHeld, 1},
		{"second chunk", chunk(1, 1, 0, 3, "aa"), ChunkHeld, 2},
		{"last chunk", chunk(1, 1, 1, 3, "bb"), ChunkComplete, 3},
		{"duplicate of a complete, undelivered message", chunk(1, 1, 1, 3, "bb"), ChunkComplete, 3},
	}
	for _, s := range steps {
		res, err := db.AddChunk(ctx, "alice", s.c, now, roomy)
		if err != nil || res.Status != s.want || res.Held != s.held {
			t.Fatalf("%s: %+v, %v; want %v with %d held", s.name, res, err, s.want, s.held)
		}
	}
	bad := chunk(1, 1, 0, 4, "aa")
	if _, err := db.AddChunk(ctx, "alice", bad, now, roomy); !errors.Is(err, ErrChunkMismatch) {
		t.Fatalf("chunk with another count: %v, want ErrChunkMismatch", err)
	}

	// A crash here leaves a complete message undelivered: it is found.
	done, err := db.CompleteMessages(ctx, "alice")
	if err != nil || len(done) != 1 || done[0].ID[0] != 1 || done[0].Sender[0] != 1 {
		t.Fatalf("CompleteMessages = %+v, %v; want sender 1's message", done, err)
	}
	chunks, err := db.Chunks(ctx, "alice", done[0].Sender, done[0].ID)
	if err != nil || len(chunks) != 3 {
		t.Fatalf("Chunks = %d, %v", len(chunks), err)
	}
	var joined []byte
	for _, c := range chunks {
		joined = append(joined, c.Data...)
	}
	if string(joined) != "aabbcc" {
		t.Fatalf("chunks joined = %q, want them by index", joined)
	}

	raw := msg("reassembled", string(joined))
	a, delivered, err := db.AppendInbound(ctx, "alice", done[0].Sender, done[0].ID, nil, raw, now)
	if err != nil || !delivered {
		t.Fatalf("AppendInbound = %v, %v", delivered, err)
	}
	if got, _ := db.Raw(ctx, a.MailboxID, a.UID); !bytes.Equal(got, raw) {
		t.Fatalf("INBOX holds %q", got)
	}
	if _, delivered, err := db.AppendInbound(ctx, "alice", done[0].Sender, done[0].ID, nil, raw, now); err != nil || delivered {
		t.Fatalf("second AppendInbound = %v, %v; want nothing done", delivered, err)
	}
	if res, err := db.AddChunk(ctx, "alice", chunk(1, 1, 0, 3, "aa"), now, roomy); err != nil || res.Status != ChunkReplay {
		t.Fatalf("chunk after delivery: %+v, %v; want a replay", res, err)
	}
	if left, _ := db.Chunks(ctx, "alice", done[0].Sender, done[0].ID); len(left) != 0 {
		t.Fatalf("%d chunks left after delivery", len(left))
	}
	if st, _ := db.Status(ctx, "alice", Inbox); st.Messages != 1 {
		t.Fatalf("INBOX has %d messages, want 1", st.Messages)
	}
}

func TestReassemblyLimitsAndExpiry(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	t0 := time.Now()
	lim := ReassemblyLimits{MaxMessages: 2, MaxBytes: 10}
	add := func(c InboundChunk, at time.Time) ChunkResult {
		t.Helper()
		res, err := db.AddChunk(ctx, "alice", c, at, lim)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	add(chunk(1, 1, 0, 2, "aa"), t0)
	add(chunk(1, 2, 0, 2, "bb"), t0.Add(time.Second))
	if res := add(chunk(1, 3, 0, 2, "cc"), t0.Add(2*time.Second)); len(res.Evicted) != 1 || res.Evicted[0].ID[0] != 1 {
		t.Fatalf("third message with room for two: evicted %+v, want message 1 (idle longest)", res.Evicted)
	}
	// 2+2 bytes held; a 7-byte chunk of message 3 exceeds 10 and evicts
	// message 2, never message 3 itself.
	if res := add(chunk(1, 3, 1, 2, "ccccccc"), t0.Add(3*time.Second)); len(res.Evicted) != 1 || res.Evicted[0].ID[0] != 2 || res.Status != ChunkComplete {
		t.Fatalf("over the byte limit: %+v; want message 2 evicted and message 3 complete", res)
	}

	add(chunk(2, 9, 0, 2, "z"), t0.Add(10*time.Second))
	expired, err := db.ExpireChunks(ctx, "alice", t0.Add(5*time.Second))
	if err != nil || len(expired) != 1 || expired[0].ID[0] != 3 || expired[0].Held != 2 || expired[0].Count != 2 {
		t.Fatalf("ExpireChunks = %+v, %v; want message 3 only", expired, err)
	}
	recent := chunk(2, 9, 0, 2, "z")
	if left, _ := db.Chunks(ctx, "alice", recent.Sender, recent.ID); len(left) != 1 {
		t.Fatalf("the recent message lost its chunk: %d left", len(left))
	}
}

func TestDeliveredMemoryAndCursors(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	t0 := time.Now()
	for i := range 5 {
		c := chunk(1, byte(i), 0, 1, "x")
		if _, ok, err := db.AppendInbound(ctx, "alice", c.Sender, c.ID, nil, msg("m", "x"), t0.Add(time.Duration(i)*time.Second)); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	n, err := db.ForgetAppended(ctx, "alice", 2)
	if err != nil || n != 3 {
		t.Fatalf("ForgetAppended = %d, %v; want the 3 oldest forgotten", n, err)
	}
	for i, want := range []bool{false, false, false, true, true} {
		c := chunk(1, byte(i), 0, 1, "x")
		if got, err := db.IsAppended(ctx, "alice", c.Sender, c.ID); err != nil || got != want {
			t.Errorf("message %d remembered: %v, %v; want %v", i, got, err, want)
		}
	}

	topic := []byte("0123456789abcdef0123456789abcdef")
	if c, err := db.InboundCursor(ctx, "alice", topic); err != nil || c != 0 {
		t.Fatalf("fresh cursor = %d, %v", c, err)
	}
	for _, set := range []int64{7, 3} {
		if err := db.SetInboundCursors(ctx, "alice", map[string]int64{string(topic): set}); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := db.InboundCursor(ctx, "alice", topic); c != 7 {
		t.Fatalf("cursor = %d after setting 7 then 3, want 7 (never backwards)", c)
	}
}
