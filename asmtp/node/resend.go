package node

import (
	"context"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// Resending what a full queue dropped. sendTo never waits for a peer's
// queue, so a burst larger than the queue (a 25 MiB mail is 400 chunks; a
// slow uplink drains 64 KiB in tens of milliseconds) drops Topic messages
// for that peer while its link stays up, and no relink catch-up would
// ever bring them. So a dropped message is owed to the peer: the link
// remembers, per topic, when it first dropped one, and a goroutine of the
// link sends the stored messages of those topics since then, with
// back-pressure, as it answers a query (streamAnswer, without markers:
// nobody asked). The peer drops what it already has as duplicates.
// Messages this node relays without storing them are not resent; the
// other forwarding paths and the peer's own catch-up cover those.
const (
	// maxOwedTopics bounds the topics a link owes; past it the link is
	// closed, and the peer's relink catch-up asks for what it lost.
	maxOwedTopics = 256
	// owedMargin is how far before the drop a resend starts: a message
	// waits at most WriteTimeout in a queue (a longer wait closes the
	// link), and received times have one-second resolution.
	owedMargin = time.Second
)

// owedTopics is what a link owes its peer: topic → the time of its first
// drop not yet resent.
type owedTopics struct {
	mu      sync.Mutex
	since   map[topic.Topic]time.Time
	sending bool // a resendLoop runs
}

// owe records that l's peer missed m, and starts the link's resend loop
// if it is not running. The loop runs in the node's context, not the
// caller's: a Publish returns long before its resend ends.
func (n *Node) owe(l *link, m wire.Message, now time.Time) {
	tm, ok := m.(wire.Topic)
	if !ok || l.user {
		return
	}
	o := &l.owed
	o.mu.Lock()
	if o.since == nil {
		o.since = make(map[topic.Topic]time.Time)
	}
	if _, ok := o.since[tm.Topic]; !ok {
		if len(o.since) >= maxOwedTopics {
			o.mu.Unlock()
			n.log.Debug("relay: too much owed to a peer; link closed", "peer", l.remote)
			n.closeLink(l)
			return
		}
		o.since[tm.Topic] = now.Add(-n.cfg.WriteTimeout - owedMargin)
	}
	start := !o.sending
	o.sending = true
	o.mu.Unlock()
	if !start {
		return
	}
	ctx, ok := n.context()
	if !ok || !n.spawn(func() { n.resendLoop(ctx, l) }) {
		o.mu.Lock()
		o.sending = false
		o.mu.Unlock()
	}
}

// resendLoop sends what l owes, a topic at a time, until it owes nothing
// or the link closes (the peer then asks for it on relink).
func (n *Node) resendLoop(ctx context.Context, l *link) {
	for {
		o := &l.owed
		o.mu.Lock()
		var t topic.Topic
		var since time.Time
		found := false
		for t, since = range o.since {
			found = true
			break
		}
		if !found || l.isClosed() || ctx.Err() != nil {
			o.sending = false
			o.mu.Unlock()
			return
		}
		delete(o.since, t)
		o.mu.Unlock()
		q := wire.QueryTopicMessages{Topic: t, Since: gossip.FromTime(since)}
		if !n.streamAnswer(ctx, l, q) {
			continue // the link closed: the next turn ends the loop
		}
		n.stats.resent.Add(1)
	}
}
