package node

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node/store"
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
// the network gone) may take messages queued on either side with it: the
// peer stored them, we never got them (an idle close takes none:
// mayHaveLost). When a link to
// that peer opens again, its own gossip on the new link names the topics
// it subscribes to; for each one our users registered, we ask that peer
// for what it stored since shortly before the last message read on the
// old link (lostMargin).
//
// A peer that sent mail for our inboxes holds it without subscribing to
// them (§16.6): on a relink, it is asked for them too (a direct catch-up).
//
// The last-seen time only says when the node was running, not what it
// fetched: a node killed after it recorded being up, but before its
// start-up catch-up was answered, would start the next time from the newer
// last-seen time and skip the window for good. So every catch-up asked of
// any subscriber (start-up, registration) is owed until it completes: the
// earliest owed start per topic is saved with the last-seen time, in the
// same transaction (persist), and the next start catches the topic up
// from there if that is earlier (catchUpStart). A catch-up completes when
// a peer asked sends the AnswerComplete marker after its answer
// (answer.go) and what the node read until then is committed (storeLoop);
// a peer that sends no marker at all (protocol v1) is judged as before
// markers, complete once the link its query was queued on stayed open for
// settleTime. A catch-up whose links all closed or refused first is asked
// again; one that finds nobody stays owed, for the next start to retry.
// Catch-ups aimed at a relinked peer or a new subscriber are not owed: the
// lost-link records are not persisted either, and a new subscriber is
// asked only for NewSubscriberWindow.
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
	// direct: a user named peer (Session.CatchUp). It is asked whether or
	// not it subscribes (it may hold what it sent, §16.6), and the
	// catch-up is asked again until an answer completes, but not owed.
	direct bool
}

// owed reports whether c is tracked until it completes (see above).
func (c catchUp) owed() bool { return c.peer == keys.PublicKey{} }

// sentCatchUp is an owed catch-up whose query is out, waiting to
// complete.
type sentCatchUp struct {
	catchUp
	query  wire.QueryTopicMessages // as sent: answer markers name it
	links  []*link                 // the links its query was queued on
	marks  []wire.AnswerStatus     // per link, the last marker read (0: none)
	sentAt time.Time
	// done is set once the answer is over: a link brought AnswerComplete,
	// or (a peer without markers) stayed open for settleTime. flush is
	// then the count of relayed messages handed to storeLoop, which must
	// be committed before the catch-up is complete.
	done  bool
	flush uint64
}

// owedEntry is one owed catch-up of a topic: from since, scheduled at
// noted.
type owedEntry struct {
	since, noted time.Time
}

// maxOwedPerTopic bounds the entries kept per topic; beyond it the two
// oldest merge into one that starts at the earlier since and counts as
// scheduled at the later time, which only makes it harder to pay.
const maxOwedPerTopic = 8

// owedCatchUps holds the owed catch-ups per topic. It is bounded by the
// registered topics (persist drops the others) times maxOwedPerTopic.
type owedCatchUps struct {
	mu sync.Mutex
	m  map[topic.Topic][]owedEntry
}

// owe records that t's messages from since on are owed.
func (o *owedCatchUps) owe(t topic.Topic, since, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	es := append(o.m[t], owedEntry{since: since, noted: now})
	if len(es) > maxOwedPerTopic {
		merged := owedEntry{since: minTime(es[0].since, es[1].since), noted: es[1].noted}
		if es[0].noted.After(merged.noted) {
			merged.noted = es[0].noted
		}
		es[1] = merged
		es = es[1:]
	}
	o.m[t] = es
}

// paid records that a catch-up of t from since, whose query went out at
// sentAt, completed: it pays every entry scheduled before sentAt from
// since or later. It reports whether nothing is owed for t any more.
func (o *owedCatchUps) paid(t topic.Topic, since, sentAt time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	es := slices.DeleteFunc(o.m[t], func(e owedEntry) bool {
		return !e.noted.After(sentAt) && !e.since.Before(since)
	})
	if len(es) == 0 {
		delete(o.m, t)
		return true
	}
	o.m[t] = es
	return false
}

// snapshot returns the earliest owed start of each topic keep accepts and
// forgets the others (topics no longer registered).
func (o *owedCatchUps) snapshot(keep func(topic.Topic) bool) []store.PendingCatchUp {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]store.PendingCatchUp, 0, len(o.m))
	for t, es := range o.m {
		if !keep(t) {
			delete(o.m, t)
			continue
		}
		p := store.PendingCatchUp{Topic: t, Since: es[0].since}
		for _, e := range es[1:] {
			p.Since = minTime(p.Since, e.since)
		}
		out = append(out, p)
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// settleTime is how long the link a catch-up query was queued on must stay
// open for the answer of a peer without markers to count as complete, and
// how long a peer has to send its first marker: one WriteTimeout for the
// query to be written (a link that cannot write for that long is closed),
// one more for the answer to start flowing back (the answering node closes
// a link it cannot write to for as long).
func (n *Node) settleTime() time.Duration { return 2 * n.cfg.WriteTimeout }

// catchUpStart returns where the start-up catch-up of a topic begins:
// MaxClockSkew before the last recorded running time, or the whole
// retention window if the node never recorded one; earlier if a window
// owed for the topic (zero: none) starts earlier. Nothing older than the
// retention window is kept, so that is the earliest start.
func catchUpStart(now, lastSeen, owed time.Time, skew, retention time.Duration) time.Time {
	floor := now.Add(-retention)
	since := floor
	if !lastSeen.IsZero() {
		since = lastSeen.Add(-skew)
	}
	if !owed.IsZero() && owed.Before(since) {
		since = owed
	}
	if since.Before(floor) {
		since = floor
	}
	return since
}

// startCatchUps schedules the start-up catch-up of every registered topic
// (catchUpStart). Run calls it before the first persist, so the windows
// are owed before the last-seen time moves.
func (n *Node) startCatchUps(now time.Time) {
	for _, t := range n.registeredTopics() {
		if n.isInbox(t) {
			continue // no other subscriber: its users catch up from named nodes
		}
		since := catchUpStart(now, n.lastSeen, n.owedAtStart[t], n.cfg.MaxClockSkew, n.cfg.Retention)
		n.scheduleCatchUp(catchUp{topic: t, since: since})
	}
}

// NewSubscriberWindow bounds how far back a newly seen subscriber of a
// registered topic is asked for its messages. What it may hold that we do
// not was published while neither knew the other, and a publisher that
// knows no subscriber is refused (ErrNoSubscriber) and retries later, so
// such messages are about as old as the partition that hid us from each
// other. A day covers any partition gossip heals; a longer absence is the
// start-up catch-up's to cover. Asking for the whole retention window
// instead would re-send up to 30 days of a topic every time churn makes a
// subscriber new again.
const NewSubscriberWindow = 24 * time.Hour

// newSubscriberSince is where the catch-up from a newly seen subscriber
// starts: NewSubscriberWindow ago, not before the retention window.
func (n *Node) newSubscriberSince(now time.Time) time.Time {
	return now.Add(-min(NewSubscriberWindow, n.cfg.Retention))
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
	// The peer may hold mail for our inboxes (PublishTo, §16.6) without
	// subscribing to them: ask it too. A node that holds none for us
	// answers empty, as it answers anyone (§16.7).
	for _, t := range n.inboxTopics() {
		n.scheduleCatchUp(catchUp{topic: t, since: since, peer: g.ID, direct: true})
	}
}

// scheduleCatchUp queues c for catchUpLoop. An owed catch-up is recorded
// as owed first, so that it stays owed even if the queue is full.
func (n *Node) scheduleCatchUp(c catchUp) {
	if c.owed() {
		n.owed.owe(c.topic, c.since, time.Now())
	}
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
	var sent []sentCatchUp
	perRound := max(1, n.cfg.QueryBurst/2)
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-n.catchUps:
			waiting = queueCatchUp(waiting, c)
		case m := <-n.answerMarks:
			applyMark(sent, m)
		case s := <-n.directCatchUps:
			sent = append(sent, s)
		case now := <-t.C:
			waiting, sent = n.settleCatchUps(waiting, sent, now)
			for _, c := range n.dueInboxLosses(now) {
				waiting = queueCatchUp(waiting, c)
			}
			var out []sentCatchUp
			waiting, out = n.catchUpRound(ctx, waiting, perRound, now)
			sent = append(sent, out...)
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

// catchUpRound sends the queries it can this round. It returns the
// catch-ups still waiting and the owed ones it sent (to settle).
func (n *Node) catchUpRound(ctx context.Context, waiting []catchUp, perRound int, now time.Time) ([]catchUp, []sentCatchUp) {
	sent := make(map[keys.PublicKey]int) // bounded by the waiting list × CatchUpPeers
	var still []catchUp
	var out []sentCatchUp
	for _, c := range waiting {
		if !n.registered(c.topic) {
			continue // deregistered meanwhile: nothing to fetch for anyone
		}
		peers := n.catchUpPeers(c)
		busy := false
		for _, p := range peers {
			busy = busy || sent[p] >= perRound
		}
		switch {
		case busy:
			still = append(still, c) // next round, without using an attempt
		case len(peers) == 0:
			still = n.retryCatchUp(still, c, "no known subscriber")
		default:
			var links []*link
			for _, p := range peers {
				if l := n.queryPeer(ctx, p, c, sent[p] == 0); l != nil {
					links = append(links, l)
				}
				sent[p]++
			}
			switch {
			case !c.owed() && !c.direct:
			case len(links) == 0:
				still = n.retryCatchUp(still, c, "no link to a subscriber")
			default:
				q := wire.QueryTopicMessages{Topic: c.topic, Since: gossip.FromTime(c.since)}
				out = append(out, sentCatchUp{catchUp: c, query: q, links: links, marks: make([]wire.AnswerStatus, len(links)), sentAt: now})
			}
		}
	}
	return still, out
}

// retryCatchUp puts c back for the next round, unless it used its last
// attempt; an owed catch-up given up stays owed for the next start.
func (n *Node) retryCatchUp(waiting []catchUp, c catchUp, why string) []catchUp {
	if c.attempts++; c.attempts < CatchUpAttempts {
		return append(waiting, c)
	}
	n.log.Warn("catch-up given up: "+why, "topic", c.topic, "since", c.since)
	return waiting
}

// settleCatchUps completes the sent catch-ups whose answers are over and
// committed (see the top of this file), and queues again those whose
// answers were lost or refused.
func (n *Node) settleCatchUps(waiting []catchUp, sent []sentCatchUp, now time.Time) ([]catchUp, []sentCatchUp) {
	still := sent[:0]
	for _, s := range sent {
		if !s.done {
			switch n.answerProgress(s, now) {
			case answerPending:
				still = append(still, s)
				continue
			case answerLost:
				waiting = n.askAgain(waiting, s.catchUp)
				continue
			}
			s.done, s.flush = true, n.storeQueued.Load()
		}
		if n.storeDone.Load() < s.flush {
			still = append(still, s) // read, not committed yet
			continue
		}
		if s.owed() {
			done := n.owed.paid(s.topic, s.since, s.sentAt)
			n.log.Debug("catch-up complete", "topic", s.topic, "since", s.since, "topic owes nothing", done)
		}
	}
	clear(sent[len(still):]) // drop the links for the garbage collector
	return waiting, still
}

// askAgain queues a catch-up whose answer was lost again, unless that was
// its last attempt (it stays owed for the next start).
func (n *Node) askAgain(waiting []catchUp, c catchUp) []catchUp {
	if c.attempts+1 < CatchUpAttempts {
		c.attempts++
		return queueCatchUp(waiting, c)
	}
	n.log.Warn("catch-up given up: no complete answer", "topic", c.topic, "since", c.since)
	return waiting
}

// answerProgress says where the answers to a sent catch-up are.
type answerProgress int

const (
	answerPending answerProgress = iota // still coming (or may be)
	answerOver                          // one answer is complete
	answerLost                          // every link closed or refused
)

// answerProgress judges s's answers by the markers read on its links. A
// link that brought AnswerComplete ends it; one that brought AnswerBegins
// and is open is still answering. A peer that sent no marker at all does
// not know them (protocol v1 without §15.4's markers): its answer counts
// as over once its link stayed open for settleTime, as before markers.
func (n *Node) answerProgress(s sentCatchUp, now time.Time) answerProgress {
	pending, unframed := false, false
	for i, l := range s.links {
		switch mark := s.marks[i]; {
		case mark == wire.AnswerComplete:
			return answerOver
		case mark == wire.AnswerRefused || l.isClosed():
		case mark == wire.AnswerBegins || now.Sub(s.sentAt) < n.settleTime():
			pending = true
		default:
			unframed = true
		}
	}
	switch {
	case pending:
		return answerPending
	case unframed:
		return answerOver
	}
	return answerLost
}

// answerMark is an answer marker read on a node link.
type answerMark struct {
	link *link
	wire.AnswerMarker
}

// maxAnswerMarks bounds the markers waiting for catchUpLoop; one more is
// dropped (its catch-up is then asked again, or settles as unframed).
const maxAnswerMarks = 1024

// noteAnswerMarker hands a marker read on l to catchUpLoop.
func (n *Node) noteAnswerMarker(l *link, m wire.AnswerMarker) {
	select {
	case n.answerMarks <- answerMark{link: l, AnswerMarker: m}:
	default:
		n.log.Warn("answer marker dropped: too many waiting", "peer", l.remote, "topic", m.Query.Topic)
	}
}

// applyMark records m on the sent catch-ups whose query it answers on its
// link. A complete answer stays complete.
func applyMark(sent []sentCatchUp, m answerMark) {
	for _, s := range sent {
		if s.query != m.Query {
			continue
		}
		for i, l := range s.links {
			if l == m.link && s.marks[i] != wire.AnswerComplete {
				s.marks[i] = m.Status
			}
		}
	}
}

// mayHaveLost reports whether messages may have been lost with the
// closed link l, so that its peer is asked for what it stored since
// (catchUpRelinked). A link the reader closed for the idle timeout lost
// nothing coming in: a peer with messages queued for us writes them, or
// closes the link as stuck, within WriteTimeout, far sooner. Any other
// close (the peer hung up or died, a write or read failed, the link was
// replaced or stuck) may have.
func (l *link) mayHaveLost() bool {
	return !l.idleClosed.Load() || len(l.out) > 0
}

// catchUpPeers returns whom to ask for c: its peer if it still subscribes
// to the topic, else up to CatchUpPeers known subscribers.
func (n *Node) catchUpPeers(c catchUp) []keys.PublicKey {
	if c.peer == (keys.PublicKey{}) {
		return n.overlay.subscribers(c.topic, CatchUpPeers)
	}
	if c.direct || n.overlay.subscribes(c.peer, c.topic) {
		return []keys.PublicKey{c.peer}
	}
	return nil
}

// queryPeer asks p for c's messages and returns the link the query was
// queued on (nil if it was not). Our own gossip goes first on the same
// link (when first is set), so that p knows we subscribe to the topic
// before it judges the query.
func (n *Node) queryPeer(ctx context.Context, p keys.PublicKey, c catchUp, first bool) *link {
	l, err := n.linkTo(p)
	if err != nil {
		n.log.Debug("catch-up: no link", "peer", p, "err", err)
		return nil
	}
	if first && !l.enqueue(ctx, wire.Gossip{Gossip: n.overlay.ownGossip()}, n.cfg.WriteTimeout) {
		return nil
	}
	q := wire.QueryTopicMessages{Topic: c.topic, Since: gossip.FromTime(c.since)}
	if !l.enqueue(ctx, q, n.cfg.WriteTimeout) {
		return nil
	}
	n.log.Debug("catch-up query sent", "peer", p, "topic", c.topic, "since", c.since)
	return l
}
