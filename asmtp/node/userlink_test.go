package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// ★ A device pages through more stored messages than one answer holds by
// repeating the same QueryTopicMessages: each repeat continues where the
// last full answer stopped, an answer below the limit ends the paging, a
// different since starts afresh (a link keeps one paging per topic). The messages are stored within a second
// or two, so paging by receive time could not get past the first page.
func TestUserQueryPaging(t *testing.T) {
	const limit, total = 10, 25
	cfg, user := testConfig(t, t.TempDir())
	cfg.QueryLimit = limit
	n := start(t, cfg, user)
	ctx := context.Background()
	tp := topic.Topic{0x9a, 6}
	s := n.session(t)
	if err := s.Register(ctx, tp); err != nil {
		t.Fatal(err)
	}
	// Stored before the device connects, so none is pushed to it live.
	for i := range total {
		if err := s.Publish(ctx, tp, fmt.Appendf(nil, "m%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan wire.Topic, 4*total)
	device := dialWireUser(t, n, func(m wire.Topic) { got <- m })

	future := gossip.FromTime(time.Now().Add(time.Hour))
	steps := []struct {
		name     string
		since    uint32
		from, to int // the answer is m<from> … m<to-1>
	}{
		{"first page", 0, 0, 10},
		{"same query: second page", 0, 10, 20},
		{"same query: last page, short", 0, 20, 25},
		{"after a short page: starts over", 0, 0, 10},
		{"another since: starts afresh", 1, 0, 10},
		{"back to the first since: afresh too", 0, 0, 10},
		{"nothing that late", future, 0, 0},
		{"one paging per topic: the other since ended it", 0, 0, 10},
	}
	for _, st := range steps {
		if err := device.WriteMessage(ctx, wire.QueryTopicMessages{Topic: tp, Since: st.since}); err != nil {
			t.Fatal(err)
		}
		for i := st.from; i < st.to; i++ {
			select {
			case m := <-got:
				if want := fmt.Sprintf("m%02d", i); string(m.Content) != want {
					t.Fatalf("%s: got %q, want %q", st.name, m.Content, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: answer stopped before m%02d", st.name, i)
			}
		}
	}
	select {
	case m := <-got:
		t.Fatalf("extra answer %q", m.Content)
	case <-time.After(300 * time.Millisecond):
	}
}
