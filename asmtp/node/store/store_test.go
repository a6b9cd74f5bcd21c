package store

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMessages(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "node.db"))
	t1, t2 := topic.Topic{1}, topic.Topic{2}
	base := time.Unix(1_700_000_000, 0)
	adds := []struct {
		topic   topic.Topic
		hash    byte
		at      time.Duration
		wantNew bool
	}{
		{t1, 1, 0, true},
		{t1, 2, time.Second, true},
		{t1, 1, 2 * time.Second, false}, // same (topic, hash): duplicate
		{t2, 1, 3 * time.Second, true},  // same hash, other topic: new
		{t1, 3, 4 * time.Second, true},
	}
	var last int64
	for i, a := range adds {
		m, added, err := s.AddMessage(ctx, Durable, a.topic, [32]byte{a.hash}, []byte{a.hash}, base.Add(a.at))
		if err != nil {
			t.Fatal(err)
		}
		if added != a.wantNew {
			t.Fatalf("add %d: added %v, want %v", i, added, a.wantNew)
		}
		if added {
			if m.Cursor <= last {
				t.Fatalf("add %d: cursor %d not above %d", i, m.Cursor, last)
			}
			last = m.Cursor
		}
	}

	queries := []struct {
		name string
		get  func() ([]Message, error)
		want []byte // contents in order
	}{
		{"after 0", func() ([]Message, error) { return s.MessagesAfter(ctx, t1, 0, 10) }, []byte{1, 2, 3}},
		{"after 0 limit 2", func() ([]Message, error) { return s.MessagesAfter(ctx, t1, 0, 2) }, []byte{1, 2}},
		{"other topic", func() ([]Message, error) { return s.MessagesAfter(ctx, t2, 0, 10) }, []byte{1}},
		{"since +1s", func() ([]Message, error) { return s.MessagesSince(ctx, t1, base.Add(time.Second), 10) }, []byte{2, 3}},
		{"since future", func() ([]Message, error) { return s.MessagesSince(ctx, t1, base.Add(time.Hour), 10) }, nil},
	}
	for _, q := range queries {
		ms, err := q.get()
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for _, m := range ms {
			got = append(got, m.Content...)
		}
		if !bytes.Equal(got, q.want) {
			t.Errorf("%s: got %v, want %v", q.name, got, q.want)
		}
	}

	ms, _ := s.MessagesAfter(ctx, t1, 0, 10)
	after, err := s.MessagesAfter(ctx, t1, ms[0].Cursor, 10)
	if err != nil || len(after) != 2 {
		t.Fatalf("after first cursor: %d messages, %v", len(after), err)
	}
	// Pages of a MessagesSince answer: since and cursor both bound them.
	pages := []struct {
		name  string
		since time.Time
		after int64
		limit int
		want  []byte
	}{
		{"next page of since base", base, ms[0].Cursor, 1, []byte{2}},
		{"last page of since base", base, ms[1].Cursor, 10, []byte{3}},
		{"since still applies", base.Add(2 * time.Second), ms[0].Cursor, 10, []byte{3}},
		{"past the end", base, ms[2].Cursor, 10, nil},
	}
	for _, p := range pages {
		page, err := s.MessagesSinceAfter(ctx, t1, p.since, p.after, p.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for _, m := range page {
			got = append(got, m.Content...)
		}
		if !bytes.Equal(got, p.want) {
			t.Errorf("%s: got %v, want %v", p.name, got, p.want)
		}
	}

	n, err := s.DeleteMessagesBefore(ctx, base.Add(2*time.Second))
	if err != nil || n != 2 {
		t.Fatalf("expire: deleted %d, %v; want 2", n, err)
	}
	m, added, err := s.AddMessage(ctx, Relaxed, t1, [32]byte{9}, []byte{9}, base.Add(5*time.Second))
	if err != nil || !added || m.Cursor <= last {
		t.Fatalf("cursor after expiry: %d (last %d), added %v, %v", m.Cursor, last, added, err)
	}
}

func TestAddMessagesBatch(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "node.db"))
	tp := topic.Topic{1}
	now := time.Unix(1_700_000_000, 0)
	if _, _, err := s.AddMessage(ctx, Durable, tp, [32]byte{1}, []byte{1}, now); err != nil {
		t.Fatal(err)
	}
	batch := []NewMessage{
		{tp, [32]byte{1}, []byte{1}, now, keys.PublicKey{}}, // already stored
		{tp, [32]byte{2}, []byte{2}, now, keys.PublicKey{}},
		{tp, [32]byte{2}, []byte{2}, now, keys.PublicKey{}}, // twice in the batch
		{tp, [32]byte{3}, []byte{3}, now, keys.PublicKey{}},
	}
	added, err := s.AddMessages(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 2 || added[0].Content[0] != 2 || added[1].Content[0] != 3 || added[0].Cursor >= added[1].Cursor {
		t.Fatalf("added %+v, want messages 2 and 3 in order", added)
	}
	for _, c := range []struct {
		hash byte
		want bool
	}{{1, true}, {2, true}, {3, true}, {4, false}} {
		if got, err := s.HasMessage(ctx, tp, [32]byte{c.hash}); err != nil || got != c.want {
			t.Errorf("has %d: %v %v, want %v", c.hash, got, err, c.want)
		}
	}
}

func TestReplaceGossips(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "node.db"))
	g := func(id byte, time uint32) Gossip {
		return Gossip{ID: keys.PublicKey{id}, Time: time, Bytes: []byte{id, byte(time)}}
	}
	steps := []struct {
		save []Gossip
		want []Gossip
	}{
		{[]Gossip{g(1, 10), g(2, 10)}, []Gossip{g(1, 10), g(2, 10)}},
		{[]Gossip{g(2, 20), g(3, 5)}, []Gossip{g(2, 20), g(3, 5)}}, // 1 left the views
		{[]Gossip{g(3, 5), g(3, 4)}, []Gossip{g(3, 5)}},            // the newer of two wins
		{nil, nil},
	}
	for i, st := range steps {
		if err := s.ReplaceGossips(ctx, st.save); err != nil {
			t.Fatal(err)
		}
		got, err := s.Gossips(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(st.want) {
			t.Fatalf("step %d: %+v, want %+v", i, got, st.want)
		}
		for j := range got {
			if got[j].ID != st.want[j].ID || got[j].Time != st.want[j].Time || !bytes.Equal(got[j].Bytes, st.want[j].Bytes) {
				t.Fatalf("step %d: %+v, want %+v", i, got, st.want)
			}
		}
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "node.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	user, tp, pid := keys.PublicKey{1}, topic.Topic{2}, passport.Hash{3}
	seen := time.Unix(1_700_000_123, 0)
	steps := []error{
		s.Register(ctx, user, tp),
		s.Register(ctx, user, tp),
		s.Register(ctx, user, topic.Topic{4}),
		s.Deregister(ctx, user, topic.Topic{4}),
		s.PutPassport(ctx, pid, []byte("old"), seen),
		s.PutPassport(ctx, pid, []byte("blocks"), seen),
		s.SetLastSeen(ctx, seen),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	s.Close()

	s = open(t, path) // runs the migrations again: must be a no-op
	rs, err := s.Registrations(ctx)
	if err != nil || len(rs) != 1 || rs[0] != (Registration{User: user, Topic: tp}) {
		t.Errorf("registrations: %+v, %v", rs, err)
	}
	blocks, ok, err := s.Passport(ctx, pid)
	if err != nil || !ok || string(blocks) != "blocks" {
		t.Errorf("passport: %q %v %v", blocks, ok, err)
	}
	if _, ok, _ := s.Passport(ctx, passport.Hash{9}); ok {
		t.Error("unknown passport reported as stored")
	}
	ids, err := s.PassportIDs(ctx)
	if err != nil || len(ids) != 1 || ids[0] != pid {
		t.Errorf("passport ids: %v %v", ids, err)
	}
	got, err := s.LastSeen(ctx)
	if err != nil || !got.Equal(seen) {
		t.Errorf("last seen: %v %v, want %v", got, err, seen)
	}

	// Naming v2: an inbox registration and a quiet passport keep their
	// kind; a quiet passport is not among the subscribed ones until a
	// plain put.
	inbox, quiet := topic.Topic{0xbb}, passport.Hash{7}
	if err := errors.Join(s.RegisterInbox(ctx, user, inbox), s.PutQuietPassport(ctx, quiet, []byte("q"), seen)); err != nil {
		t.Fatal(err)
	}
	if rs, err := s.Registrations(ctx); err != nil || !slices.Contains(rs, Registration{User: user, Topic: inbox, Inbox: true}) {
		t.Errorf("registrations after RegisterInbox: %+v, %v", rs, err)
	}
	if ids, err := s.PassportIDs(ctx); err != nil || slices.Contains(ids, quiet) {
		t.Errorf("passport ids with a quiet one: %v %v", ids, err)
	}
	if b, ok, err := s.Passport(ctx, quiet); err != nil || !ok || string(b) != "q" {
		t.Errorf("quiet passport: %q %v %v", b, ok, err)
	}
	if err := s.PutPassport(ctx, quiet, []byte("q"), seen); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.PassportIDs(ctx); err != nil || !slices.Contains(ids, quiet) {
		t.Errorf("passport ids after a plain put: %v %v", ids, err)
	}
}

// SaveRunState moves the last-seen time and replaces the owed catch-ups
// in one go.
func TestRunState(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "node.db")
	s := open(t, path)
	t1, t2 := topic.Topic{1}, topic.Topic{2}
	base := time.Unix(1_700_000_000, 0)
	steps := []struct {
		seen    time.Time
		pending []PendingCatchUp
	}{
		{base, []PendingCatchUp{{t1, base.Add(-time.Hour)}, {t2, base.Add(-2 * time.Hour)}}},
		{base.Add(time.Minute), []PendingCatchUp{{t2, base.Add(-2 * time.Hour)}}}, // t1 completed
		{base.Add(2 * time.Minute), nil},                                          // all completed
	}
	for i, st := range steps {
		if err := s.SaveRunState(ctx, st.seen, st.pending); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = open(t, path)
		seen, err := s.LastSeen(ctx)
		if err != nil || !seen.Equal(st.seen) {
			t.Errorf("step %d: last seen %v, %v; want %v", i, seen, err, st.seen)
		}
		got, err := s.PendingCatchUps(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(st.pending) {
			t.Fatalf("step %d: pending %+v, want %+v", i, got, st.pending)
		}
		for j := range got {
			if got[j].Topic != st.pending[j].Topic || !got[j].Since.Equal(st.pending[j].Since) {
				t.Errorf("step %d: pending %+v, want %+v", i, got, st.pending)
			}
		}
	}
}

func BenchmarkAddMessage(b *testing.B) {
	for _, mode := range []struct {
		name string
		sync Sync
	}{{"durable", Durable}, {"relaxed", Relaxed}} {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, filepath.Join(b.TempDir(), "node.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			content := make([]byte, 1024)
			now := time.Now()
			for i := 0; b.Loop(); i++ {
				h := [32]byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)}
				if _, _, err := s.AddMessage(ctx, mode.sync, topic.Topic{1}, h, content, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
