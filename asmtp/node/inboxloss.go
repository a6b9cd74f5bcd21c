package node

import (
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// Inbox mail dropped over a storage quota (PROTOCOL.md §16.6). The senders'
// nodes hand over what they hold for an inbox when they like: a burst of
// held mail, or mails published back to back, can exceed the link's
// storage quota, and nothing acknowledges what was stored. So on an inbox
// a user of this node registered:
//
//   - everything a peer sends is metered against the link's quota,
//     answers to our own queries included, and a drop costs no strike (an
//     honest holder cannot know our quota; a crawler that copied the
//     inbox from gossip still stores no more than the quota);
//   - a drop records a loss: that peer may hold mail on that inbox we do
//     not have;
//   - once the link's quota has refilled to a quarter of its burst, the
//     node asks the peer for the inbox (a direct catch-up, §16.7: the peer
//     answers only if it holds the mail for this node) since
//     inboxLossWindow ago. What it already has is dropped as a duplicate
//     before the quota; what does not fit is dropped, recorded and asked
//     for again, so the mail arrives at the quota's pace and no faster.
const (
	// maxInboxLosses bounds the recorded losses (peer and inbox); past
	// it a loss is only logged, and the relink catch-up is left to cover
	// it.
	maxInboxLosses = 4096
	// inboxLossRefill is the share of the link's burst that must have
	// refilled before a loss is asked for.
	inboxLossRefill = 4
)

// inboxLoss names a peer that may hold mail for one of our inboxes that
// we dropped.
type inboxLoss struct {
	peer  keys.PublicKey
	topic topic.Topic
}

// inboxLosses are the recorded losses, each with the start of the window
// to ask for.
type inboxLosses struct {
	mu sync.Mutex
	m  map[inboxLoss]time.Time
}

// inboxLossWindow is how far back a loss is asked for. The dropped mail
// may have been held for the inbox since before its day began: an inbox
// is written to for a day (with an hour either side) and held mail is
// handed over actively for pendingLife after that; received times differ
// between the nodes by up to the clock skew. Retention bounds it.
func (n *Node) inboxLossWindow() time.Duration {
	return min(n.cfg.Retention, topic.InboxPeriod+pendingLife+n.lostMargin())
}

// noteInboxLoss records that a message on our inbox t from peer was
// dropped at now.
func (n *Node) noteInboxLoss(peer keys.PublicKey, t topic.Topic, now time.Time) {
	ls := &n.inboxLosses
	ls.mu.Lock()
	defer ls.mu.Unlock()
	k := inboxLoss{peer: peer, topic: t}
	if _, ok := ls.m[k]; ok {
		return
	}
	if ls.m == nil {
		ls.m = make(map[inboxLoss]time.Time)
	}
	if len(ls.m) >= maxInboxLosses {
		n.log.Warn("inbox mail dropped over quota; too many losses recorded to ask for it", "peer", peer, "topic", t)
		return
	}
	ls.m[k] = now.Add(-n.inboxLossWindow())
}

// dueInboxLosses returns, and forgets, the losses to ask for now: those
// whose peer has no link (the catch-up dials it) or a link whose quota has
// refilled enough (inboxLossRefill).
func (n *Node) dueInboxLosses(now time.Time) []catchUp {
	ls := &n.inboxLosses
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var due []catchUp
	for k, since := range ls.m {
		if !n.registered(k.topic) {
			delete(ls.m, k)
			continue
		}
		if !n.quotaRefilled(k.peer, now) {
			continue
		}
		delete(ls.m, k)
		due = append(due, catchUp{topic: k.topic, since: since, peer: k.peer, direct: true})
	}
	return due
}

// quotaRefilled reports whether peer's link, if any, has refilled its
// storage quota to a quarter of the burst.
func (n *Node) quotaRefilled(peer keys.PublicKey, now time.Time) bool {
	n.mu.Lock()
	l := n.links[peer]
	n.mu.Unlock()
	if l == nil {
		return true
	}
	rate, burst := n.linkQuota(false)
	l.quotaMu.Lock()
	defer l.quotaMu.Unlock()
	l.stored.refill(now, rate, burst)
	return l.stored.tokens >= float64(burst/inboxLossRefill)
}

// admitInbox charges a message of size bytes on our inbox t from l's peer
// to the link's and the topic's quotas, and records a loss if it does not
// fit (see the top of this file). Only l's reading goroutine calls it.
func (n *Node) admitInbox(l *link, t topic.Topic, size int, now time.Time) bool {
	rate, burst := n.linkQuota(false)
	l.quotaMu.Lock()
	ok := l.stored.take(now, size, rate, burst)
	l.quotaMu.Unlock()
	if ok && n.topicQuota.take(t, now, size, n.cfg.TopicStoreRate, n.cfg.TopicStoreBurst) {
		return true
	}
	n.stats.overQuota.Add(1)
	n.log.Debug("inbox message over the storage quota; dropped, to ask for again", "topic", t, "peer", l.remote)
	n.noteInboxLoss(l.remote, t, now)
	return false
}
