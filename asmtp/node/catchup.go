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
//
// Links carry no acknowledgements, so a link that closes (the peer killed,
// the network gone, an idle timeout) may take messages queued on either
// side with it: the peer stored them, we never got them. When a link to
// that peer opens again, its own gossip on the new link names the topics
// it subscribes to; for each one our users registered, we ask that peer
// for what it stored since shortly before the last message read on the
// old link (lostMargin).
const (
	// CatchUpPeers is how many subscribers are queried per topic.
	CatchUpPeers = 2
	// CatchUpAttempts is how many gossip rounds a catch-up waits for a
	// known subscriber of its topic before it is given up.
	CatchUpAttempts = 30
	// maxLostPeers bounds the closed links remembered for a catch-up.
	maxLostPeers = 4096
	// maxWaitingCatchUps bounds the catch-ups waiting for their turn:
	// one per topic, plus the ones aimed at relinked peers.
	maxWaitingCatchUps = 4 * poldercast.MaxSubscriptions
)

type catchUp struct {
	topic    topic.Topic
	since    time.Time
	peer     keys.PublicKey // ask this peer only; zero: any known subscribers
	attempts int
}

// lostMargin is how far before the last message read on a closed link a
// catch-up from its peer starts: the peer's clock may be MaxClockSkew off
// ours, and what it queued for us may have been stored up to about as long
// before the last message we read (queues drain in well under WriteTimeout
// per message, far less than the default skew).
func (n *Node) lostMargin() time.Duration { return 2 * n.cfg.MaxClockSkew }

// noteLostLocked records that the link to peer closed, with lastRead the
// time of the last message read on it. The earliest time is kept until a
// new link catches up. n.mu is held.
func (n *Node) noteLostLocked(peer keys.PublicKey, lastRead time.Time) {
	if t, ok := n.lost[peer]; ok && t.Before(lastRead) {
		return
	}
	if len(n.lost) >= maxLostPeers {
		cutoff := time.Now().Add(-n.cfg.Retention)
		for p, t := range n.lost {
			if t.Before(cutoff) {
				delete(n.lost, p)
			}
		}
		if len(n.lost) >= maxLostPeers {
			return
		}
	}
	n.lost[peer] = lastRead
}

// takeLost returns and forgets when the last link to peer lost track.
func (n *Node) takeLost(peer keys.PublicKey) (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.lost[peer]
	delete(n.lost, peer)
	return t, ok
}

// catchUpRelinked schedules, on the first own gossip g of a peer on a new
// link, a catch-up from that peer of every topic both sides subscribe to,
// if an earlier link to it closed.
func (n *Node) catchUpRelinked(g gossip.Gossip) {
	lost, ok := n.takeLost(g.ID)
	if !ok {
		return
	}
	since := lost.Add(-n.lostMargin())
	for _, s := range g.Subscriptions {
		if n.registered(s.Topic) {
			n.scheduleCatchUp(catchUp{topic: s.Topic, since: since, peer: g.ID})
		}
	}
}

// catchUpAll schedules a catch-up of every registered topic.
func (n *Node) catchUpAll(since time.Time) {
	for _, t := range n.registeredTopics() {
		n.scheduleCatchUp(catchUp{topic: t, since: since})
	}
}

func (n *Node) scheduleCatchUp(c catchUp) {
	select {
	case n.catchUps <- c:
	default:
		n.log.Warn("catch-up queue full; topic not caught up", "topic", c.topic)
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
// topic and peer (the earlier since wins). The list is bounded by
// maxWaitingCatchUps.
func queueCatchUp(waiting []catchUp, c catchUp) []catchUp {
	for i := range waiting {
		if waiting[i].topic == c.topic && waiting[i].peer == c.peer {
			if c.since.Before(waiting[i].since) {
				waiting[i].since = c.since
			}
			waiting[i].attempts = 0
			return waiting
		}
	}
	if len(waiting) >= maxWaitingCatchUps {
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
		peers := n.catchUpPeers(c)
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

// catchUpPeers returns whom to ask for c: its peer if it still subscribes
// to the topic, else up to CatchUpPeers known subscribers.
func (n *Node) catchUpPeers(c catchUp) []keys.PublicKey {
	if c.peer == (keys.PublicKey{}) {
		return n.overlay.subscribers(c.topic, CatchUpPeers)
	}
	if n.overlay.subscribes(c.peer, c.topic) {
		return []keys.PublicKey{c.peer}
	}
	return nil
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
