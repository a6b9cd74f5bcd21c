package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
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
	waitFor(t, 15*time.Second, "rings", func() bool { return ringsConverged(nodes, nodes, tp) == nil })
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
