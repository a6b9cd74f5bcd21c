package reassembly

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// On a database that has only Schema (as asmtp-cli's), a message is
// reassembled, appended once, its copies ignored as replays, and chunks
// of a message that never completes expire. The mailstore's tests cover
// the limits.
func TestOnSchemaAlone(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(Schema); err != nil {
		t.Fatal(err)
	}
	lim := Limits{MaxMessages: 2, MaxBytes: 1 << 10}
	t0 := time.Unix(1700000000, 0)
	chunk := func(id byte, index uint16) Chunk {
		return Chunk{Sender: [32]byte{1}, ID: [16]byte{id}, Kind: 1, Index: index, Count: 2, Total: 4, Data: []byte{id, id}}
	}
	steps := []struct {
		name string
		c    Chunk
		want Status
	}{
		{"first chunk", chunk(1, 1), ChunkHeld},
		{"again", chunk(1, 1), ChunkDuplicate},
		{"another message", chunk(2, 0), ChunkHeld},
		{"last chunk", chunk(1, 0), ChunkComplete},
	}
	for _, s := range steps {
		if res, err := Add(ctx, db, "", s.c, t0, lim); err != nil || res.Status != s.want {
			t.Fatalf("%s: %+v, %v; want %v", s.name, res, err, s.want)
		}
	}
	if done, err := Complete(ctx, db, ""); err != nil || len(done) != 1 || done[0].ID[0] != 1 {
		t.Fatalf("Complete: %+v, %v", done, err)
	}
	if cs, err := Chunks(ctx, db, "", [32]byte{1}, [16]byte{1}); err != nil || len(cs) != 2 || cs[0].Index != 0 {
		t.Fatalf("Chunks: %+v, %v", cs, err)
	}
	for i, want := range []bool{true, false} {
		if ok, err := MarkAppended(ctx, db, "", [32]byte{1}, [16]byte{1}, t0); err != nil || ok != want {
			t.Fatalf("MarkAppended #%d: %v, %v; want %v", i+1, ok, err, want)
		}
	}
	if n, err := Held(ctx, db, "", [32]byte{1}, [16]byte{1}); err != nil || n != 0 {
		t.Fatalf("chunks held once appended: %d, %v", n, err)
	}
	if res, err := Add(ctx, db, "", chunk(1, 1), t0, lim); err != nil || res.Status != ChunkReplay {
		t.Fatalf("a copy once appended: %+v, %v; want a replay", res, err)
	}
	dropped, err := Expire(ctx, db, "", t0.Add(time.Second))
	if err != nil || len(dropped) != 1 || dropped[0].ID[0] != 2 || dropped[0].Held != 1 {
		t.Fatalf("Expire: %+v, %v; want message 2", dropped, err)
	}
	if n, err := ForgetAppended(ctx, db, "", 1); err != nil || n != 0 {
		t.Fatalf("ForgetAppended keeping 1 of 1: %d, %v", n, err)
	}
}
