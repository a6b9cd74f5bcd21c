package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/wait"
)

// ★ One mail's latency between two nodes over loopback, from the sender's
// Publish call to the recipient's delivery (ns/op), naming v1 beside v2:
// v1, both nodes subscribe to the pair topic and the mail takes the ring;
// v2, only the recipient's node subscribes to its inbox, and the sender's
// node stores the mail (fsync) and sends it straight to the named node.
// The v2 path holds the mail durably on the sender's node, as the v1 path
// does for the registered pair topic.
func BenchmarkNamingLatency(b *testing.B) {
	for _, v2 := range []bool{false, true} {
		b.Run(map[bool]string{false: "v1-pair-topic", true: "v2-inbox"}[v2], func(b *testing.B) {
			benchmarkNamingLatency(b, v2)
		})
	}
}

func benchmarkNamingLatency(b *testing.B, v2 bool) {
	ctx := context.Background()
	nodes := startNetwork(b, 2, func(c *Config) { c.NamingV1 = !v2 })
	snd, rcv := nodes[0], nodes[1]
	ss, rs := snd.session(b), rcv.session(b)
	tp := topic.Inbox(topic.InboxSeed{9}, topic.InboxDay(time.Now()))
	card := &PeerAddr{ID: rcv.ID(), Addr: rcv.Addr().String()}
	publish := func(c []byte) error { return ss.PublishTo(ctx, tp, card, c) }
	if v2 {
		if err := rs.RegisterInbox(ctx, tp); err != nil {
			b.Fatal(err)
		}
	} else {
		for _, s := range []*Session{ss, rs} {
			if err := s.Register(ctx, tp); err != nil {
				b.Fatal(err)
			}
		}
		wait.Until(b, 15*time.Second, "rings", func() bool { return ringsConverged(nodes, nodes, tp) == nil })
		publish = func(c []byte) error { return ss.Publish(ctx, tp, c) }
	}
	if err := publish([]byte("warm-up")); err != nil {
		b.Fatal(err)
	}
	receive(b, rs, 1, 10*time.Second)
	b.ResetTimer()
	for i := range b.N {
		if err := publish(fmt.Appendf(nil, "mail %d", i)); err != nil {
			b.Fatal(err)
		}
		receive(b, rs, 1, 10*time.Second)
	}
}
