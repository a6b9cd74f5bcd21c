package node

import (
	"context"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/poldercast"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// Store-and-forward catch-up: a node that was offline, or whose user just
// registered a topic, asks other subscribers of the topic for the
// messages they stored since then. The answers are ordinary Topic
// messages and take the relay path; what the node already had is dropped
// there as a duplicate, so every message is stored and pushed once.
const (
	// CatchUpPeers is how many subscribers are queried per topic.
	CatchUpPeers = 2
	// CatchUpAttempts is how many gossip rounds a catch-up waits for a
	// known subscriber of its topic before it is given up.
	CatchUpAttempts = 30
)

type catchUp struct {
	topic    topic.Topic
	since    time.Time
	attempts int
}

// catchUpAll schedules a catch-up of every registered topic.
func (n *Node) catchUpAll(since time.Time) {
	for _, t := range n.registeredTopics() {
		n.scheduleCatchUp(t, since)
	}
}

func (n *Node) scheduleCatchUp(t topic.Topic, since time.Time) {
	select {
	case n.catchUps <- catchUp{topic: t, since: since}:
	default:
		n.log.Warn("catch-up queue full; topic not caught up", "topic", t)
	}
}

// catchUpLoop runs the catch-ups once per gossip round, so that the first
// exchanges have found subscribers. It paces queries per peer below the
// peer's request rate (assuming it runs our defaults).
func (n *Node) catchUpLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.GossipInterval)
	defer t.Stop()
	var waiting []catchUp
	perRound := max(1, n.cfg.QueryBurst/2)
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-n.catchUps:
			waiting = queueCatchUp(waiting, c)
		case <-t.C:
			waiting = n.catchUpRound(ctx, waiting, perRound)
		}
	}
}

// queueCatchUp adds c, merging it with a waiting catch-up of the same
// topic (the earlier since wins). The list holds one entry per topic at
// most, so it is bounded by the subscription limit.
func queueCatchUp(waiting []catchUp, c catchUp) []catchUp {
	for i := range waiting {
		if waiting[i].topic == c.topic {
			if c.since.Before(waiting[i].since) {
				waiting[i].since = c.since
			}
			waiting[i].attempts = 0
			return waiting
		}
	}
	if len(waiting) >= poldercast.MaxSubscriptions {
		return waiting
	}
	return append(waiting, c)
}

// catchUpRound sends the queries it can this round and returns the
// catch-ups still waiting.
func (n *Node) catchUpRound(ctx context.Context, waiting []catchUp, perRound int) []catchUp {
	sent := make(map[keys.PublicKey]int) // bounded by the waiting list × CatchUpPeers
	var still []catchUp
	for _, c := range waiting {
		peers := n.overlay.subscribers(c.topic, CatchUpPeers)
		busy := false
		for _, p := range peers {
			busy = busy || sent[p] >= perRound
		}
		switch {
		case busy:
			still = append(still, c) // next round, without using an attempt
		case len(peers) == 0:
			if c.attempts++; c.attempts < CatchUpAttempts {
				still = append(still, c)
			} else {
				n.log.Warn("catch-up given up: no known subscriber", "topic", c.topic)
			}
		default:
			for _, p := range peers {
				n.queryPeer(ctx, p, c, sent[p] == 0)
				sent[p]++
			}
		}
	}
	return still
}

// queryPeer asks p for c's messages. Our own gossip goes first on the same
// link (when first is set), so that p knows we subscribe to the topic
// before it judges the query.
func (n *Node) queryPeer(ctx context.Context, p keys.PublicKey, c catchUp, first bool) {
	l, err := n.linkTo(p)
	if err != nil {
		n.log.Debug("catch-up: no link", "peer", p, "err", err)
		return
	}
	if first && !l.enqueue(ctx, wire.Gossip{Gossip: n.overlay.ownGossip()}, n.cfg.WriteTimeout) {
		return
	}
	q := wire.QueryTopicMessages{Topic: c.topic, Since: gossip.FromTime(c.since)}
	if l.enqueue(ctx, q, n.cfg.WriteTimeout) {
		n.log.Debug("catch-up query sent", "peer", p, "topic", c.topic, "since", c.since)
	}
}
