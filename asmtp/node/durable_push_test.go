package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// A relayed message is committed without an fsync of its own; were it
// pushed before it is durable, a power loss could roll the store back and
// hand its cursor to another message, after the user (the bridge) has
// recorded that cursor as read, and that message would be skipped. So
// every push must come with its cursor already durable.
func TestRelayedPushIsDurable(t *testing.T) {
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
		if durable := c.store.DurableCursor(); durable < int64(d.Cursor) {
			t.Fatalf("message %d pushed with cursor %d, but the store is durable only up to %d", i, d.Cursor, durable)
		}
	}
}

// The same rule for queries: a message committed without fsync is
// returned to a local user only once durable (the query syncs first).
func TestQueryReturnsOnlyDurable(t *testing.T) {
	nodes := startNetwork(t, 1, nil)
	ctx := context.Background()
	tp := topic.Topic{0xd0, 0x7b}
	n := nodes[0]
	s := n.session(t)
	if err := s.Register(ctx, tp); err != nil {
		t.Fatal(err)
	}
	content := []byte("relayed, committed without fsync")
	added, err := n.store.AddMessages(ctx, []store.NewMessage{{Topic: tp, Hash: messageHash(tp, content), Content: content, ReceivedAt: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	if n.store.DurableCursor() >= added[0].Cursor {
		t.Fatal("the relaxed commit is already durable: the test proves nothing")
	}
	for _, query := range []func() (int64, error){
		func() (int64, error) {
			got, err := s.Query(ctx, tp, 0)
			if len(got) != 1 {
				return 0, fmt.Errorf("Query: %d messages, %v", len(got), err)
			}
			return int64(got[0].Cursor), err
		},
		func() (int64, error) {
			got, err := s.querySince(ctx, tp, time.Time{}, 0)
			if len(got) != 1 {
				return 0, fmt.Errorf("querySince: %d messages, %v", len(got), err)
			}
			return got[0].Cursor, err
		},
	} {
		c, err := query()
		if err != nil {
			t.Fatal(err)
		}
		if d := n.store.DurableCursor(); d < c {
			t.Fatalf("query returned cursor %d, durable only up to %d", c, d)
		}
	}
}
