package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
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
	waitFor(t, 15*time.Second, "rings", func() bool { return ringsConverged(nodes, nodes, tp) == nil })
	const count = 300
	contents := make([][]byte, count)
	for i := range contents {
		contents[i] = []byte(fmt.Sprintf("message %03d %0512d", i, i))
	}
	if err := pub.PublishBatch(ctx, tp, contents); err != nil {
		t.Fatal(err)
	}
	got := make(map[string]int)
	for _, d := range receive(t, sub, count, 30*time.Second) {
		got[string(d.Content[:11])]++
	}
	for i := range count {
		if k := fmt.Sprintf("message %03d", i); got[k] != 1 {
			t.Errorf("%s received %d times", k, got[k])
		}
	}
	noMore(t, sub, 300*time.Millisecond)
	st := nodes[0].Stats()
	if st.Dropped == 0 || st.Resent == 0 {
		t.Errorf("publisher stats %+v: the test needs the queue to overflow", st)
	}
	t.Logf("dropped %d, resent %d topic(s)", st.Dropped, st.Resent)
}
