package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/wait"
)

// ★ A relayed message is committed without an fsync and pushed at once,
// so a power cut can take it after its user recorded its cursor. The
// cursor must then never be given to another message, or the user skips
// that one: every pushed cursor is within the store's durable
// reservation (store.ReservedCursor), past which a reopened store
// numbers (store.TestCursorsNotReusedAfterPowerLoss).
func TestPushedCursorsAreReserved(t *testing.T) {
	nodes := startNetwork(t, 2, nil)
	ctx := context.Background()
	tp := topic.Topic{0xd0, 0x7a}
	a, c := nodes[0], nodes[1]
	sa, sc := a.session(t), c.session(t)
	for _, s := range []*Session{sa, sc} {
		if err := s.Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 15*time.Second, "rings", func() bool { return ringsConverged(nodes, nodes, tp) == nil })
	for i := range 20 {
		if err := sa.Publish(ctx, tp, fmt.Appendf(nil, "message %d", i)); err != nil {
			t.Fatal(err)
		}
		d := receive(t, sc, 1, 5*time.Second)[0]
		if reserved := c.store.ReservedCursor(); int64(d.Cursor) > reserved {
			t.Fatalf("message %d pushed with cursor %d, beyond the durable reservation %d", i, d.Cursor, reserved)
		}
	}
}

// Session.Query answers a backlog of big messages a few MiB at a time; a
// consumer that queries on from its last cursor until an answer is empty
// (as the bridge does) gets every message once.
func TestQueryPagesByBytes(t *testing.T) {
	nodes := startNetwork(t, 1, nil)
	ctx := context.Background()
	tp := topic.Topic{0xd0, 0x7c}
	s := nodes[0].session(t)
	if err := s.Register(ctx, tp); err != nil {
		t.Fatal(err)
	}
	const count, size = 100, 60 << 10 // 6 MB: more than one page
	var batch [][]byte
	for i := range count {
		c := make([]byte, size)
		c[0], c[1] = byte(i), byte(i>>8)
		batch = append(batch, c)
	}
	if err := s.PublishBatch(ctx, tp, batch); err != nil {
		t.Fatal(err)
	}
	var after Cursor
	got, pages := 0, 0
	for ; ; pages++ {
		ms, err := s.Query(ctx, tp, after)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			break
		}
		if size*(len(ms)-1) >= QueryPageBytes {
			t.Fatalf("page %d holds %d messages of %d bytes, bound %d", pages, len(ms), size, QueryPageBytes)
		}
		for _, m := range ms {
			if m.Cursor <= after || int(m.Content[0])|int(m.Content[1])<<8 != got {
				t.Fatalf("message %d out of order or repeated", got)
			}
			after, got = m.Cursor, got+1
		}
	}
	if got != count || pages < 2 {
		t.Fatalf("%d messages in %d pages, want %d in more than one", got, pages, count)
	}
}
