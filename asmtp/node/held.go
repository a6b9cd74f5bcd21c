package node

import (
	"context"
	"fmt"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// Held publications (PublishTo, PROTOCOL.md §16.6). A user's message on a
// topic no local user registers is stored durably as a local message and
// held for Retention, with a record of the node it is for (store.Held,
// persisted). Until it has reached a subscriber the topic is pending:
//
//   - for a named node (an inbox): the messages go to that node only. The
//     node greets it (our gossip; its own comes back), again after a wait
//     that doubles from a gossip round, and when its own gossip on a link
//     lists the topic the held messages are sent on that link (pushHeld).
//     Sending them to any other subscriber would hand a crawler that
//     copied the inbox from gossip the proof of who writes to whom.
//   - for no named node (an intro bucket): the messages go to the
//     subscribers the overlay knows, now or in a later round.
//
// A pending topic is given up after pendingLife; the named node can still
// fetch the messages with a query (mayRead) until they expire. Pending
// topics for named nodes are reloaded at start from the held records.

// pendingLife is how long a held topic is handed over actively: inbox
// topics change daily, so after two days the recipient reads another one
// and only catches this one up.
const pendingLife = 2 * topic.InboxPeriod

type pendingTopic struct {
	to    *PeerAddr // the named node; nil: any subscriber
	since time.Time // hand over what was stored since
	until time.Time // then give up
	// next is when to greet the named node again: the wait doubles from
	// a gossip round up to maxGreetWait, so that a node that stays down
	// is not dialled every round.
	next  time.Time
	tries int
}

// maxGreetWait bounds the wait between two greetings of a named node.
const maxGreetWait = 10 * time.Minute

// hold stores a publication durably (a local message, no registration),
// records whom t is for and makes t pending. It reports whether t was
// pending already (earlier mail not handed over yet).
func (n *Node) hold(ctx context.Context, t topic.Topic, to *PeerAddr, contents [][]byte) (bool, error) {
	now := time.Now()
	if to != nil && !n.heldRecorded(t, *to) {
		// One fsync per topic and node, not per mail.
		if err := n.store.PutHeld(ctx, store.Held{Topic: t, Node: to.ID, Addr: to.Addr, Since: now}); err != nil {
			return false, fmt.Errorf("publish: %w", err)
		}
		n.noteHeldRecorded(t, *to)
	}
	batch := make([]store.NewMessage, len(contents))
	for i, c := range contents {
		h := messageHash(t, c)
		n.seen.add(h) // coming back from a peer, it is not news
		batch[i] = store.NewMessage{Topic: t, Hash: h, Content: c, ReceivedAt: now}
	}
	if _, err := n.store.AddMessagesDurable(ctx, batch); err != nil {
		return false, fmt.Errorf("publish: %w", err)
	}
	return n.addPending(t, to, now), nil
}

// addPending makes t pending from since, and reports whether it was
// already (the earlier since and the later end are kept: a hand-over cut
// short pends again from its own since).
func (n *Node) addPending(t topic.Topic, to *PeerAddr, since time.Time) bool {
	n.naming.mu.Lock()
	defer n.naming.mu.Unlock()
	if p, ok := n.naming.pending[t]; ok {
		p.to = to
		p.since = minTime(p.since, since)
		if end := since.Add(pendingLife); end.After(p.until) {
			p.until = end
		}
		n.naming.pending[t] = p
		return true
	}
	if len(n.naming.pending) < maxHeldPending {
		n.naming.pending[t] = pendingTopic{to: to, since: since, until: since.Add(pendingLife)}
	}
	return false
}

// heldRecorded reports whether the store has t's record for to already.
func (n *Node) heldRecorded(t topic.Topic, to PeerAddr) bool {
	n.naming.mu.Lock()
	defer n.naming.mu.Unlock()
	p, ok := n.naming.recorded[t]
	return ok && p == to
}

// noteHeldRecorded remembers a stored held record (bounded: a record
// forgotten is only written again).
func (n *Node) noteHeldRecorded(t topic.Topic, to PeerAddr) {
	n.naming.mu.Lock()
	defer n.naming.mu.Unlock()
	if len(n.naming.recorded) >= maxHeldPending {
		clear(n.naming.recorded)
	}
	n.naming.recorded[t] = to
}

// pendingDone forgets t: a subscriber was sent its messages.
func (n *Node) pendingDone(t topic.Topic) {
	n.naming.mu.Lock()
	defer n.naming.mu.Unlock()
	delete(n.naming.pending, t)
}

// takePending returns and forgets pending topic t if peer is its node.
func (n *Node) takePending(t topic.Topic, peer keys.PublicKey) (pendingTopic, bool) {
	n.naming.mu.Lock()
	defer n.naming.mu.Unlock()
	p, ok := n.naming.pending[t]
	if !ok || p.to == nil || p.to.ID != peer {
		return p, false
	}
	delete(n.naming.pending, t)
	return p, true
}

// sendHinted queues contents to the named node. Until its own gossip on
// the link shows t, our gossip goes first (it answers with its own, and
// pushHeld then sends what is pending) and t stays pending. Once it does,
// the mail is handed over: contents, or everything pending for t since
// the earliest mail not handed over (wasPending).
func (n *Node) sendHinted(ctx context.Context, t topic.Topic, to *PeerAddr, contents [][]byte, wasPending bool) {
	if to == nil || to.ID == n.id {
		return
	}
	l, err := n.linkTo(to.ID)
	if err != nil {
		n.log.Debug("publish: no link to the named node", "peer", to.ID, "err", err)
		return
	}
	if !l.advertises(t) {
		n.greet(ctx, l)
		enqueueAll(ctx, l, t, contents)
		return
	}
	if wasPending {
		if p, ok := n.takePending(t, to.ID); ok {
			n.spawn(func() { n.sendHeld(ctx, t, p, []*link{l}) })
			return
		}
	}
	if enqueueAll(ctx, l, t, contents) {
		if p, ok := n.takePending(t, to.ID); ok {
			l.noteHandedOver(t, p)
		}
	}
}

// noteHandedOver records on l that t's held messages since p.since were
// queued for its peer. Links carry no acknowledgements: if l closes in a
// way that may have lost them, t pends again (pendHandedOver) from the
// earliest hand-over still within pendingLife (an older one would be
// given up at once). Bounded like the pending topics.
func (l *link) noteHandedOver(t topic.Topic, p pendingTopic) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.handedOver[t]; ok {
		if time.Since(old.since) < pendingLife {
			p.since = minTime(old.since, p.since)
		}
	} else if len(l.handedOver) >= maxHeldPending {
		return
	}
	if l.handedOver == nil {
		l.handedOver = make(map[topic.Topic]pendingTopic)
	}
	l.handedOver[t] = p
}

// pendHandedOver makes the held topics handed over on l pending again
// from where their hand-overs began: l closed in a way that may have lost
// what was queued or in flight, and the recipient's relink catch-up only
// reaches back a little before the last message it read, not to mail held
// for hours. Its next gossip on a new link brings everything again;
// duplicates die at the recipient.
func (n *Node) pendHandedOver(l *link) {
	l.mu.Lock()
	ho := l.handedOver
	l.handedOver = nil
	l.mu.Unlock()
	for t, p := range ho {
		n.addPending(t, p.to, p.since)
	}
}

// enqueueAll queues contents on l without waiting and reports whether all
// went.
func enqueueAll(ctx context.Context, l *link, t topic.Topic, contents [][]byte) bool {
	for _, c := range contents {
		if !l.enqueue(ctx, wire.Topic{Topic: t, Content: c}, 0) {
			return false
		}
	}
	return true
}

// handOverHeld queues a publication for no named node to the subscribers
// the overlay knows (an intro bucket's members); having reached one, t is
// no longer pending.
func (n *Node) handOverHeld(ctx context.Context, t topic.Topic, contents [][]byte) {
	subs := n.overlay.handoff(t)
	sent := 0
	for _, c := range contents {
		sent = n.sendTo(ctx, subs, wire.Topic{Topic: t, Content: c})
		n.stats.handedOff.Add(uint64(sent))
	}
	if sent > 0 {
		n.pendingDone(t)
	}
}

// greet queues our own gossip on l, best effort: the peer answers an
// exchange with its own.
func (n *Node) greet(ctx context.Context, l *link) {
	for _, m := range n.overlay.gossipFor(l.remote, time.Now()) {
		if !l.enqueue(ctx, m, 0) {
			return
		}
	}
}

// pushHeld sends the held messages of the topics l's peer just showed in
// its own gossip g on l and is the named node of.
func (n *Node) pushHeld(ctx context.Context, l *link, g gossip.Gossip) {
	n.naming.mu.Lock()
	none := len(n.naming.pending) == 0
	n.naming.mu.Unlock()
	if none {
		return
	}
	var due []topic.Topic
	var held []pendingTopic
	for _, s := range g.Subscriptions {
		if p, ok := n.takePending(s.Topic, l.remote); ok {
			due, held = append(due, s.Topic), append(held, p)
		}
	}
	if len(due) == 0 {
		return
	}
	n.spawn(func() {
		for i, t := range due {
			n.sendHeld(ctx, t, held[i], []*link{l})
		}
	})
}

// sendHeld queues t's held messages since p.since to each link, all of
// them a page at a time with back-pressure (streamStored; the link closes
// if it stays stuck). A hand-over that did not get to the end makes t
// pending again, so it is handed over anew when the peer's gossip comes
// back (on this link or the next): nothing held is left behind because a
// queue filled up or a link closed (§16.6).
func (n *Node) sendHeld(ctx context.Context, t topic.Topic, p pendingTopic, links []*link) {
	q := wire.QueryTopicMessages{Topic: t, Since: gossip.FromTime(p.since)}
	for _, l := range links {
		if p.to != nil {
			l.noteHandedOver(t, p)
		}
		sent, ok := n.streamStored(ctx, l, q)
		n.stats.handedOff.Add(uint64(sent))
		if !ok && ctx.Err() == nil {
			n.log.Debug("hand-over of held messages cut short; pending again", "topic", t, "peer", l.remote)
			n.addPending(t, p.to, p.since)
		}
	}
}

// retryPending runs every gossip round: a pending topic for no named node
// goes to the subscribers the overlay learnt meanwhile; the named node of
// the others is greeted again (once a round), and its gossip in reply
// brings pushHeld.
func (n *Node) retryPending(ctx context.Context, now time.Time) {
	n.naming.mu.Lock()
	pend := make(map[topic.Topic]pendingTopic, len(n.naming.pending))
	for t, p := range n.naming.pending {
		pend[t] = p
	}
	n.naming.mu.Unlock()
	greeted := make(map[keys.PublicKey]bool)
	for t, p := range pend {
		switch {
		case now.After(p.until):
			n.pendingDone(t)
		case p.to == nil:
			n.handOverPending(ctx, t, p.since)
		case now.Before(p.next):
		case !greeted[p.to.ID]:
			greeted[p.to.ID] = true
			n.backOff(t, now)
			if l, err := n.linkTo(p.to.ID); err == nil {
				n.greet(ctx, l)
			}
		}
	}
}

// backOff sets when pending topic t's named node is greeted next.
func (n *Node) backOff(t topic.Topic, now time.Time) {
	n.naming.mu.Lock()
	defer n.naming.mu.Unlock()
	p, ok := n.naming.pending[t]
	if !ok {
		return
	}
	wait := maxGreetWait
	if p.tries < 16 {
		wait = min(n.cfg.GossipInterval<<p.tries, maxGreetWait)
	}
	p.tries++
	p.next = now.Add(wait)
	n.naming.pending[t] = p
}

// handOverPending sends a pending topic for no named node to the known
// subscribers, if any.
func (n *Node) handOverPending(ctx context.Context, t topic.Topic, since time.Time) {
	var links []*link
	for _, id := range n.overlay.handoff(t) {
		if l, err := n.linkTo(id); err == nil {
			links = append(links, l)
		}
	}
	if len(links) == 0 {
		return
	}
	n.pendingDone(t)
	n.sendHeld(ctx, t, pendingTopic{since: since}, links)
}

// restorePending reloads the held topics for named nodes still in their
// pendingLife (a hand-over is not recorded, so all of them: the recipient
// drops what it has).
func (n *Node) restorePending(ctx context.Context, now time.Time) error {
	hs, err := n.store.HeldSince(ctx, now.Add(-pendingLife))
	if err != nil {
		return err
	}
	for _, h := range hs {
		p := PeerAddr{ID: h.Node, Addr: h.Addr}
		n.noteDialHint(p)
		n.noteHeldRecorded(h.Topic, p)
		n.addPending(h.Topic, &p, h.Since)
	}
	return nil
}

// heldFor returns the node t's held publications are for, if any.
func (n *Node) heldFor(ctx context.Context, t topic.Topic) (keys.PublicKey, bool) {
	h, ok, err := n.store.HeldFor(ctx, t)
	if err != nil {
		n.log.Error("held topic", "topic", t, "err", err)
		return keys.PublicKey{}, false
	}
	return h.Node, ok
}
