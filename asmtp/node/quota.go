package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// Storage quotas. What peers make the node store is bounded three ways,
// so that a stranger cannot fill the disk with junk on a topic it learned
// from a gossip:
//
//   - per link: PeerStoreRate bytes per second with bursts of
//     PeerStoreBurst. A stranger's link (inbound, up for less than
//     StrangerPeriod, from a peer that is not our ring neighbour on the
//     message's topic) gets an eighth of both. A peer that gossips a
//     subscription to the topic and is close enough by id to become a
//     ring neighbour gets a full link's quota: the topic quota and the
//     total cap bound what many of those store. Messages over it are
//     dropped (neither stored nor forwarded) and cost the peer a strike,
//     at most one a second, so a peer that keeps flooding is quarantined
//     within seconds. Answers to our own catch-up queries do not count
//     (solicited): up to QueryLimit full messages per query, for
//     solicitTime; a stranger's answers are metered, without strikes.
//     On our own inboxes everything is metered, answers included, a drop
//     costs no strike and is asked for again (inboxloss.go).
//   - per topic, all links together: TopicStoreRate and TopicStoreBurst,
//     against many identities flooding one topic. Over it, messages are
//     dropped without a strike (no one peer is to blame).
//   - in total: MaxStorageSize bytes of stored content. Over it the node
//     evicts what no local user waits for (store.Evict: oldest first,
//     topics nobody registers, the users' own publications, messages they
//     have fetched) and refuses new messages from peers when only unfetched
//     ones are left. Local users' publications are never refused for it:
//     the bridge bounds them per account.
//
// A message a local user cannot open (Session.Report) is charged to the
// link that delivered it, twice its size (the storage it took, and as much
// again), down to a debt of one burst: a link that keeps delivering junk
// runs out of quota and is struck as above, while an honest node that
// relayed some of a stranger's junk (it cannot open it either) only loses
// part of its burst for a while.
const (
	// StrangerPeriod is how long an inbound link we did not dial gets a
	// stranger's share of the storage quota.
	StrangerPeriod = 5 * time.Minute
	// strangerShare divides a stranger's quota.
	strangerShare = 8
	// solicitTime is how long the answer to a catch-up query may come.
	solicitTime = 2 * time.Minute
)

// byteBucket is a token bucket counted in bytes.
type byteBucket struct {
	tokens float64
	last   time.Time
}

// refill adds what accrued since the last use, up to burst. A new bucket
// starts full.
func (b *byteBucket) refill(now time.Time, rate, burst int64) {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*float64(rate))
	}
	b.last = now
}

// debit takes n bytes even if the bucket lacks them, down to minus burst.
func (b *byteBucket) debit(now time.Time, n int, rate, burst int64) {
	b.refill(now, rate, burst)
	b.tokens = max(-float64(burst), b.tokens-float64(n))
}

// take spends n bytes if the bucket, refilled at rate up to burst, holds
// them. A new bucket starts full.
func (b *byteBucket) take(now time.Time, n int, rate, burst int64) bool {
	b.refill(now, rate, burst)
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// solicitation is what a peer may still send us, unmetered, in answer to
// our queries on one topic.
type solicitation struct {
	bytes int64
	until time.Time
}

// solicit records that we queried l's peer on t.
func (l *link) solicit(t topic.Topic, bytes int64, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.solicited == nil {
		l.solicited = make(map[topic.Topic]solicitation)
	}
	for k, s := range l.solicited {
		if now.After(s.until) {
			delete(l.solicited, k)
		}
	}
	l.solicited[t] = solicitation{bytes: bytes, until: now.Add(solicitTime)}
}

// spendSolicited takes n bytes from what l's peer may send on t in answer
// to our queries.
func (l *link) spendSolicited(t topic.Topic, n int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.solicited[t]
	if !ok || now.After(s.until) || s.bytes < int64(n) {
		return false
	}
	s.bytes -= int64(n)
	l.solicited[t] = s
	return true
}

// strangerFor reports whether l gets a stranger's quota for messages on
// t: an inbound link younger than StrangerPeriod whose peer is not one of
// our ring neighbours on t (the peers the overlay chose to hear t from).
// On an inbox (RegisterInbox) nobody is a stranger: its ring is empty by
// design, and its mail comes straight from the senders' nodes, which
// dial in for it (§16.3). The link, topic and total quotas still bound
// what a crawler that copied the inbox from gossip can make us store.
func (n *Node) strangerFor(l *link, t topic.Topic, now time.Time) bool {
	if l.dialledByUs() || now.Sub(l.created) >= StrangerPeriod || n.isInbox(t) {
		return false
	}
	succ, pred := n.overlay.ring(t)
	return !slices.Contains(succ, l.remote) && !slices.Contains(pred, l.remote)
}

// topicQuotas are the per-topic storage buckets.
type topicQuotas struct {
	mu sync.Mutex
	m  map[topic.Topic]*byteBucket
}

func (q *topicQuotas) take(t topic.Topic, now time.Time, n int, rate, burst int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.m == nil {
		q.m = make(map[topic.Topic]*byteBucket)
	}
	b := q.m[t]
	if b == nil {
		b = new(byteBucket)
		q.m[t] = b
	}
	return b.take(now, n, rate, burst)
}

// admitStored charges a message of size bytes on t from l's peer to the
// quotas and reports whether it may be stored. Over the link's quota the
// peer earns a strike (at most one a second) and, on its last, is
// quarantined. Our own inboxes are metered otherwise (admitInbox). Only
// l's reading goroutine calls it.
func (n *Node) admitStored(l *link, t topic.Topic, size int, now time.Time) bool {
	if n.isInbox(t) {
		return n.admitInbox(l, t, size, now) // inboxloss.go
	}
	// Answers to our queries pass unmetered, except from a stranger: it
	// could advertise a topic only to be asked for it. Its answers are
	// metered, but cost no strike: we asked.
	stranger := n.strangerFor(l, t, now)
	solicited := l.spendSolicited(t, size, now)
	if solicited && !stranger {
		return true
	}
	rate, burst := n.linkQuota(stranger)
	l.quotaMu.Lock()
	ok := l.stored.take(now, size, rate, burst)
	strike := !ok && !solicited && now.Sub(l.lastStrike) >= time.Second
	if strike {
		l.lastStrike = now
	}
	l.quotaMu.Unlock()
	if !ok {
		n.stats.overQuota.Add(1)
		if strike {
			if err := n.strike(l, "over its storage quota"); err != nil {
				n.quarantine(l, "storage quota", err)
			}
		}
		return false
	}
	if !n.topicQuota.take(t, now, size, n.cfg.TopicStoreRate, n.cfg.TopicStoreBurst) {
		n.stats.overQuota.Add(1)
		n.log.Debug("topic over its storage quota; message dropped", "topic", t, "peer", l.remote)
		return false
	}
	return true
}

// linkQuota is a link's storage rate and burst.
func (n *Node) linkQuota(stranger bool) (rate, burst int64) {
	rate, burst = n.cfg.PeerStoreRate, n.cfg.PeerStoreBurst
	if stranger {
		rate, burst = rate/strangerShare, burst/strangerShare
	}
	return rate, burst
}

// makeRoom keeps the stored content under MaxStorageSize before a batch
// of relayed messages is committed: it evicts what no local user waits
// for and returns the part of batch that fits (the rest is refused, and
// counted). Only storeLoop calls it.
func (n *Node) makeRoom(ctx context.Context, batch []store.NewMessage) []store.NewMessage {
	var incoming int64
	for _, m := range batch {
		incoming += int64(len(m.Content))
	}
	over := n.store.Size() + incoming - n.cfg.MaxStorageSize
	if over <= 0 {
		return batch
	}
	// Evict a sixteenth of the cap more than needed, so that a full store
	// does not run an eviction per batch.
	if _, err := n.store.Evict(ctx, over+n.cfg.MaxStorageSize/16); err != nil {
		n.log.Error("storage cap: evict", "err", err)
	}
	room := n.cfg.MaxStorageSize - n.store.Size()
	kept := batch[:0]
	for _, m := range batch {
		if int64(len(m.Content)) > room {
			n.stats.overQuota.Add(1)
			continue
		}
		room -= int64(len(m.Content))
		kept = append(kept, m)
	}
	if len(kept) < len(batch) {
		n.log.Warn("storage cap reached with messages local users have not fetched: messages from peers refused",
			"refused", len(batch)-len(kept), "max_size", n.cfg.MaxStorageSize)
	}
	return kept
}

// Report tells the node that the stored message at c does not open for
// this user (not sealed to it, or failing the sender check): the link of
// the peer that delivered it is charged twice the message's size against
// its storage quota (quota.go). A message a local user published, one no
// longer stored, or one whose peer has no link any more is only counted.
func (s *Session) Report(ctx context.Context, c Cursor) error {
	if err := s.check(); err != nil {
		return err
	}
	peer, size, ok, err := s.n.store.Origin(ctx, int64(c))
	if err != nil || !ok {
		return err
	}
	n := s.n
	n.stats.reported.Add(1)
	n.log.Debug("message reported as not opening", "peer", peer, "bytes", size)
	n.mu.Lock()
	l := n.links[peer]
	n.mu.Unlock()
	if l == nil || l.user {
		return nil
	}
	now := time.Now()
	rate, burst := n.linkQuota(!l.dialledByUs() && now.Sub(l.created) < StrangerPeriod)
	l.quotaMu.Lock()
	l.stored.debit(now, 2*size, rate, burst)
	l.quotaMu.Unlock()
	n.log.Debug("link charged for a message a local user cannot open", "peer", peer, "bytes", 2*size)
	return nil
}

// Fetched tells the node that this user has taken the messages of t up
// to c for good (saved them elsewhere): under the storage cap they may be
// evicted before messages the user still waits for.
func (s *Session) Fetched(ctx context.Context, t topic.Topic, c Cursor) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.n.store.SetFetched(ctx, s.user, t, int64(c)); err != nil {
		return fmt.Errorf("fetched: %w", err)
	}
	return nil
}

// solicitBytes is the most a peer may answer to one query.
func (n *Node) solicitBytes() int64 { return int64(n.cfg.QueryLimit) * wire.MaxTopicContent }
