package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
	"github.com/asmtp/asmtp/internal/wait"
)

func TestAttachOnlyUsers(t *testing.T) {
	cfg, user := testConfig(t, t.TempDir())
	n := start(t, cfg, user)
	stranger := keys.Public(newKey(t))
	if _, err := n.Attach(stranger); !errors.Is(err, ErrNotUser) {
		t.Fatalf("stranger attached: %v", err)
	}
	n.AddUser(stranger)
	s, err := n.Attach(stranger)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Register(ctx, topic.Topic{1}); err != nil {
		t.Fatal(err)
	}
	n.RemoveUser(stranger)
	if _, ok := <-s.Deliveries(); ok {
		t.Fatal("session of a removed user still open")
	}
	if err := s.Register(ctx, topic.Topic{2}); err == nil {
		t.Fatal("removed user could still register")
	}
}

// A consumer that falls behind loses no message: the deliveries that did
// not fit are counted on the next one, and Query from its last cursor
// returns them.
func TestSlowConsumer(t *testing.T) {
	nodes := startNetwork(t, 2, func(c *Config) { c.DeliveryQueueSize = 2 })
	ctx := context.Background()
	tp := topic.Topic{0x51}
	slow, pub := nodes[0].session(t), nodes[1].session(t)
	for _, s := range []*Session{slow, pub} {
		if err := s.Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 10*time.Second, "rings", func() bool { return ringsConverged(nodes, nodes, tp) == nil })
	for i := range 5 {
		if err := pub.Publish(ctx, tp, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// A relayed message is pushed after its batch commits, so a query can
	// see all five before the last pushes ran: wait for the pushes
	// themselves. Two fit; m2 waited for room and was dropped for m3, then
	// m4.
	wait.Until(t, 5*time.Second, "m4 held after two missed", func() bool {
		slow.mu.Lock()
		defer slow.mu.Unlock()
		return slow.held != nil && string(slow.held.Content) == "m4" && slow.missed == 2
	})
	// Once the consumer drains the channel, m4 comes, reporting the two
	// missed, though nothing new was published (a consumer must not have
	// to wait for the next message to learn what it missed).
	first := receive(t, slow, 2, time.Second)
	next := receive(t, slow, 1, 5*time.Second)[0]
	if string(next.Content) != "m4" || next.Missed != 2 {
		t.Fatalf("next delivery %q reports %d missed, want m4 and 2", next.Content, next.Missed)
	}
	rest, err := slow.Query(ctx, tp, first[1].Cursor)
	if err != nil || len(rest) != 3 {
		t.Fatalf("query after the last handled cursor: %d messages, %v; want 3", len(rest), err)
	}
	if err := pub.Publish(ctx, tp, []byte("m5")); err != nil {
		t.Fatal(err)
	}
	if d := receive(t, slow, 1, 5*time.Second)[0]; string(d.Content) != "m5" || d.Missed != 0 {
		t.Fatalf("then %q reporting %d missed, want m5 and none", d.Content, d.Missed)
	}
}

// A device connected over a wire link (asmtp-cli) gets the same behaviour
// as an in-process session: register, live push, publish, query.
func TestWireUser(t *testing.T) {
	nodes := startNetwork(t, 2, nil)
	ctx := context.Background()
	home, other := nodes[0], nodes[1]
	tp := topic.Topic{0x77}
	so := other.session(t)
	if err := so.Register(ctx, tp); err != nil {
		t.Fatal(err)
	}

	got := make(chan wire.Topic, 16)
	device := dialWireUser(t, home, func(m wire.Topic) { got <- m })
	if err := device.WriteMessage(ctx, wire.RegisterTopic{Topic: tp}); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "rings", func() bool { return ringsConverged(nodes, nodes, tp) == nil })

	if err := so.Publish(ctx, tp, []byte("to the device")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m.Content) != "to the device" {
			t.Fatalf("device got %q", m.Content)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no live push to the device")
	}

	if err := device.WriteMessage(ctx, wire.Topic{Topic: tp, Content: []byte("from the device")}); err != nil {
		t.Fatal(err)
	}
	if d := receive(t, so, 1, 5*time.Second); string(d[0].Content) != "from the device" {
		t.Fatalf("other node got %q", d[0].Content)
	}

	if err := device.WriteMessage(ctx, wire.QueryTopicMessages{Topic: tp}); err != nil {
		t.Fatal(err)
	}
	history := map[string]bool{}
	for len(history) < 2 {
		select {
		case m := <-got:
			history[string(m.Content)] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("query answered %d of 2 messages", len(history))
		}
	}
	if !history["to the device"] || !history["from the device"] {
		t.Fatalf("query answered %v", history)
	}
}

// dialWireUser connects as tn's user over the wire and hands pushed Topic
// messages to onTopic.
func dialWireUser(t *testing.T, tn *testNode, onTopic func(wire.Topic)) *wire.Conn {
	t.Helper()
	raw, wc := hostileConn(t, tn, tn.user, true)
	t.Cleanup(func() { raw.Close() })
	go func() {
		for {
			m, err := wc.ReadMessage(context.Background())
			if err != nil {
				return
			}
			if tm, ok := m.(wire.Topic); ok {
				onTopic(tm)
			}
		}
	}()
	return wc
}

// Other nodes may query only topics they advertise in their own gossip,
// unless the node opens its queries.
func TestNodeQueryAuthorisation(t *testing.T) {
	tp := topic.Topic{0x99}
	cases := []struct {
		name       string
		advertises bool
		open       bool
		v1         bool
		want       int
		last       wire.AnswerStatus
	}{
		{"advertises the topic", true, false, false, 3, wire.AnswerComplete},
		// §16.7: the same answer as a kept topic with nothing since.
		{"does not advertise it", false, false, false, 0, wire.AnswerComplete},
		{"does not advertise it, v1 node", false, false, true, 0, wire.AnswerRefused},
		{"does not advertise it, open queries", false, true, false, 3, wire.AnswerComplete},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, user := testConfig(t, t.TempDir())
			cfg.OpenQueries, cfg.NamingV1 = c.open, c.v1
			cfg.GossipInterval = time.Hour // no gossip: only the answers reach the peer
			n := start(t, cfg, user)
			ctx := context.Background()
			s := n.session(t)
			if err := s.Register(ctx, tp); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				// Nobody else subscribes: the message is stored, then the
				// forwarding rule finds no one.
				if err := s.Publish(ctx, tp, fmt.Appendf(nil, "m%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			topics := []topic.Topic{{0x98}}
			if c.advertises {
				topics = append(topics, tp)
			}
			got := make(chan wire.Topic, 8)
			p := dialRawPeer(t, n.Addr().String(), n.ID(), topics, func(m wire.Topic) { got <- m })
			if err := p.wc.WriteMessage(ctx, wire.QueryTopicMessages{Topic: tp}); err != nil {
				t.Fatal(err)
			}
			count, last := 0, wire.AnswerStatus(0)
			for timeout := time.After(time.Second); ; {
				select {
				case m := <-got:
					if mk, ok := wire.ParseAnswerMarker(m); ok {
						last = mk.Status
					} else {
						count++
					}
					continue
				case <-timeout:
				}
				break
			}
			if count != c.want {
				t.Fatalf("peer got %d answers, want %d", count, c.want)
			}
			if last != c.last {
				t.Fatalf("last answer marker %d, want %d", last, c.last)
			}
		})
	}
}

// PublishBatch stores a batch in one commit and relays it in order like as
// many Publish calls: the publisher's other sessions and a subscriber on
// another node get each new message once, in order; duplicates (in the
// batch or published before) are dropped; an oversized content refuses
// the whole batch.
func TestPublishBatch(t *testing.T) {
	nodes := startNetwork(t, 2, nil)
	ctx := context.Background()
	tp := topic.Topic{0x5b}
	pub, mine, theirs := nodes[0].session(t), nodes[0].session(t), nodes[1].session(t)
	for _, s := range []*Session{pub, theirs} {
		if err := s.Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 10*time.Second, "rings", func() bool { return ringsConverged(nodes, nodes, tp) == nil })

	tooBig := make([]byte, wire.MaxTopicContent+1)
	if err := pub.PublishBatch(ctx, tp, [][]byte{[]byte("x"), tooBig}); err == nil {
		t.Fatal("a batch with an oversized content was published")
	}
	if err := pub.Publish(ctx, tp, []byte("a")); err != nil {
		t.Fatal(err)
	}
	batch := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("b"), []byte("d")}
	if err := pub.PublishBatch(ctx, tp, batch); err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "b", "c", "d"}
	for name, s := range map[string]*Session{"publisher's other session": mine, "other node's session": theirs} {
		got := receive(t, s, len(want), 5*time.Second)
		for i, d := range got {
			if string(d.Content) != want[i] || (i > 0 && d.Cursor <= got[i-1].Cursor) {
				t.Fatalf("%s: delivery %d is %q at cursor %d, want %q after cursor %d", name, i, d.Content, d.Cursor, want[i], got[max(i-1, 0)].Cursor)
			}
		}
	}
	if err := pub.PublishBatch(ctx, tp, batch); err != nil { // a retry
		t.Fatal(err)
	}
	noMore(t, mine, 200*time.Millisecond)
	noMore(t, theirs, 200*time.Millisecond)
	stored, err := pub.Query(ctx, tp, 0)
	if err != nil || len(stored) != len(want) {
		t.Fatalf("%d messages stored (%v), want %d", len(stored), err, len(want))
	}
}

// TestHolders: a topic's holders are the other local users who registered
// it and the nodes known to subscribe to it; the user's own sessions do
// not count.
func TestHolders(t *testing.T) {
	nodes := startNetwork(t, 2, nil)
	ctx := context.Background()
	tp := topic.Topic{0x4c}
	pub, mine := nodes[0].session(t), nodes[0].session(t)
	for _, s := range []*Session{pub, mine} {
		if err := s.Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	if n := pub.Holders(tp, 4); n != 0 {
		t.Fatalf("%d holders of a topic only its user registered, want 0", n)
	}

	other := keys.Public(newKey(t))
	nodes[0].AddUser(other)
	local, err := nodes[0].Attach(other)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if err := local.Register(ctx, tp); err != nil {
		t.Fatal(err)
	}
	if n := pub.Holders(tp, 4); n != 1 {
		t.Fatalf("%d holders with another local user registered, want 1", n)
	}

	if err := nodes[1].session(t).Register(ctx, tp); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "the other node seen holding the topic", func() bool { return pub.Holders(tp, 4) == 2 })
	if n := pub.Holders(tp, 1); n != 1 {
		t.Errorf("Holders(tp, 1) = %d, want at most 1", n)
	}
}
