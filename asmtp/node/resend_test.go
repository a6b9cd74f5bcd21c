package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/wait"
)

// TestDroppedMessagesResent: a publication larger than a link's queue
// drops messages for the peer while the link stays up; the link sends
// them again from the store, so the peer's user gets every one exactly
// once. Without the resend the subscriber misses what was dropped.
func TestDroppedMessagesResent(t *testing.T) {
	nodes := startNetwork(t, 2, func(c *Config) { c.LinkQueueSize = 2 })
	ctx := context.Background()
	tp := topic.Topic{0x5e, 1}
	pub, sub := nodes[0].session(t), nodes[1].session(t)
	for _, s := range []*Session{pub, sub} {
		if err := s.Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 15*time.Second, "rings", func() bool { return ringsConverged(nodes, nodes, tp) == nil })
	const count = 300
	contents := make([][]byte, count)
	for i := range contents {
		contents[i] = []byte(fmt.Sprintf("message %03d %0512d", i, i))
	}
	if err := pub.PublishBatch(ctx, tp, contents); err != nil {
		t.Fatal(err)
	}
	// Counted in the subscriber's store: its session's channel may drop
	// pushes under load (Delivery.Missed), which the user fetches by Query.
	var got map[string]int
	wait.Until(t, 30*time.Second, "every message in the subscriber's store", func() bool {
		got = storedContents(t, sub, tp)
		return len(got) >= count
	})
	for i := range count {
		if k := fmt.Sprintf("message %03d", i); got[k] != 1 {
			t.Errorf("%s stored %d times", k, got[k])
		}
	}
	st := nodes[0].Stats()
	if st.Dropped == 0 || st.Resent == 0 {
		t.Errorf("publisher stats %+v: the test needs the queue to overflow", st)
	}
	t.Logf("dropped %d, resent %d topic(s)", st.Dropped, st.Resent)
}

// storedContents counts the messages on tp in s's node store by their
// first 11 bytes, paging through Query.
func storedContents(t *testing.T, s *Session, tp topic.Topic) map[string]int {
	t.Helper()
	got := make(map[string]int)
	var after Cursor
	for {
		page, err := s.Query(context.Background(), tp, after)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return got
		}
		for _, m := range page {
			got[string(m.Content[:11])]++
			after = m.Cursor
		}
	}
}
