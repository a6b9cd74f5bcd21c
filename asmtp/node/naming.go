package node

import (
	"context"
	"fmt"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// Naming v2, the node's side (PROTOCOL.md §16). The node sets gossip info
// bit 10 (unless Config.NamingV1) and gives its users what inbox topics
// and intro buckets need:
//
//   - RegisterInbox: a topic only this node subscribes to (an account's
//     daily inbox). It is left out of the settled test, never caught up
//     from "any subscriber" (there is none), and never answered to
//     another node.
//   - PublishTo: publish on a topic the node does not subscribe to (a
//     contact's inbox, an intro bucket), naming the node it is for. The
//     messages are stored durably and held for Retention (the sender's
//     node is what holds mail for an offline recipient, §16.6), sent to
//     the named node and to known subscribers, and pushed again when the
//     named node's own gossip on a link shows the topic.
//   - CatchUp: ask one named node for a topic's messages since a time.
//   - KeepPassport: store a passport without subscribing to its topic;
//     GetPassport then finds passports through the nodes that hold them
//     (intro-bucket members and linked nodes), none advertising it.
//   - PeerNaming: whether a node's signed gossip says it speaks v2.
//
// Who may read what a node stores (§16.7, answerNodeQuery): intro buckets
// and v1 topics as before (a peer whose own gossip on the link subscribes);
// a held topic only its named node; an own inbox nobody; a passport topic
// v1 peers only. Anything else gets the same empty answer as a kept topic
// with nothing new.

// PeerAddr names a node and where to dial it, as a contact card does.
type PeerAddr struct {
	ID   keys.PublicKey
	Addr string // "host:port"
}

const (
	// maxDialHints bounds the dial addresses learnt from users (PublishTo,
	// CatchUp) for nodes outside the overlay's views.
	maxDialHints = 1024
	// maxHeldPending bounds the held topics the node still tries to hand
	// over; beyond it a new one is left to the recipient's catch-up.
	maxHeldPending = 4096
)

// RegisterInbox registers t for the user as an inbox topic (§16.3): the
// node subscribes at once, keeps and pushes t's messages like Register,
// but leaves t out of the settled test, schedules no catch-up from other
// subscribers (only this node subscribes: catch up from the senders'
// nodes with CatchUp) and answers no other node's query for it.
func (s *Session) RegisterInbox(ctx context.Context, t topic.Topic) error {
	if err := s.check(); err != nil {
		return err
	}
	n := s.n
	if err := n.overlay.subscribeInbox(t, time.Now()); err != nil {
		return fmt.Errorf("register inbox %s: %w", t, err)
	}
	if err := n.store.RegisterInbox(ctx, s.user, t); err != nil {
		n.unsubscribeUnused(t)
		return err
	}
	n.markInbox(t)
	n.addRegistration(s.user, t)
	return nil
}

// PublishTo publishes contents on t, a topic the user reads nowhere (a
// contact's inbox, an intro bucket), for the node hint names (nil: no
// node named, as for an intro bucket). It returns once the messages are
// stored durably. They are then sent to the hinted node (a link is opened
// if needed) and to the nodes the overlay knows subscribe to t; what
// finds nobody now is handed over when the hinted node's gossip, or a
// subscriber, shows up (every gossip round, and when a link's peer
// gossips t), and the hinted node may fetch it with a query for
// Config.Retention. On a topic this node subscribes to (an account of
// this node, a bucket it shares) it is Publish, and also sent to hint.
// Publishing the same content again sends it again.
func (s *Session) PublishTo(ctx context.Context, t topic.Topic, hint *PeerAddr, contents ...[]byte) error {
	if err := s.check(); err != nil {
		return err
	}
	for i, c := range contents {
		if len(c) > wire.MaxTopicContent {
			return fmt.Errorf("publish: message %d of %d: %d bytes of content, maximum %d", i+1, len(contents), len(c), wire.MaxTopicContent)
		}
	}
	rc, err := s.n.runContext(ctx)
	if err != nil {
		return err
	}
	n := s.n
	if hint != nil {
		n.noteDialHint(*hint)
	}
	if n.overlay.subscribed(t) {
		if err := n.relay(ctx, origin{session: s}, t, contents...); err != nil {
			return err
		}
		n.sendHinted(rc, t, hint, contents)
		return nil
	}
	if err := n.hold(ctx, t, hint, contents); err != nil {
		return err
	}
	n.sendHinted(rc, t, hint, contents)
	n.handOverHeld(rc, t, contents)
	return nil
}

// hold stores a publication durably (a local message, no registration)
// and records whom t is for.
func (n *Node) hold(ctx context.Context, t topic.Topic, hint *PeerAddr, contents [][]byte) error {
	now := time.Now()
	if hint != nil {
		if err := n.store.PutHeld(ctx, store.Held{Topic: t, Node: hint.ID, Addr: hint.Addr, Since: now}); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		n.addPending(t, *hint, now)
	}
	batch := make([]store.NewMessage, len(contents))
	for i, c := range contents {
		h := messageHash(t, c)
		n.seen.add(h) // coming back from a peer, it is not news
		batch[i] = store.NewMessage{Topic: t, Hash: h, Content: c, ReceivedAt: now}
	}
	if _, err := n.store.AddMessagesDurable(ctx, batch); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// sendHinted queues contents to the hinted node, after our own gossip so
// that it answers with its own (which shows whether it takes t: pushHeld).
func (n *Node) sendHinted(ctx context.Context, t topic.Topic, hint *PeerAddr, contents [][]byte) {
	if hint == nil || hint.ID == n.id {
		return
	}
	l, err := n.linkTo(hint.ID)
	if err != nil {
		n.log.Debug("publish: no link to the hinted node", "peer", hint.ID, "err", err)
		return
	}
	n.greet(ctx, l)
	for _, c := range contents {
		if !l.enqueue(ctx, wire.Topic{Topic: t, Content: c}, 0) {
			return // the pending hand-over sends it again
		}
	}
}

// handOverHeld queues a held publication to the subscribers the overlay
// knows (an intro bucket's members); having reached one, t is no longer
// pending.
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

// CatchUp asks the node from for t's messages received since (§16.6):
// our own gossip goes first on the link, so that from sees that we
// subscribe to t. The answer arrives like any message of t (Deliveries).
// The user must have registered t. It returns once the query is queued.
func (s *Session) CatchUp(ctx context.Context, t topic.Topic, from PeerAddr, since time.Time) error {
	if err := s.check(); err != nil {
		return err
	}
	n := s.n
	if !n.registeredBy(s.user, t) {
		return fmt.Errorf("catch up %s: topic not registered by %s", t, s.user)
	}
	if _, err := n.runContext(ctx); err != nil {
		return err
	}
	if from.ID == n.id {
		return fmt.Errorf("catch up %s: %s is this node", t, from.ID)
	}
	n.noteDialHint(from)
	if n.queryPeer(ctx, from.ID, catchUp{topic: t, since: since, peer: from.ID}, true) == nil {
		return fmt.Errorf("catch up %s from %s: no link", t, from.ID)
	}
	return nil
}

// KeepPassport stores a passport like PutPassport but without subscribing
// to its topic (a v2 account's own passport, a v2 contact's): the node
// answers lookups for it by id and advertises nothing. A passport the
// node subscribed to is unsubscribed.
func (s *Session) KeepPassport(ctx context.Context, blocks []byte) (passport.Hash, error) {
	if err := s.check(); err != nil {
		return passport.Hash{}, err
	}
	return s.n.storePassport(ctx, blocks, true)
}

// PeerNaming reports whether node id speaks naming v2, from the info flag
// of the newest signed gossip of it the node has seen (known false: none).
func (s *Session) PeerNaming(id keys.PublicKey) (v2, known bool) {
	return s.n.peerNaming(id)
}

// --- the node's records ---

// namingRecord is what a node's newest gossip said of its naming.
type namingRecord struct {
	v2   bool
	time uint32
}

// notePeerNaming records the naming flag of a verified gossip.
func (n *Node) notePeerNaming(id keys.PublicKey, v2 bool, at uint32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r, ok := n.naming[id]; ok && r.time > at {
		return
	}
	if _, ok := n.naming[id]; !ok && len(n.naming) >= MaxPeerRecords {
		for k := range n.naming { // any one: a forgotten peer is "unknown"
			delete(n.naming, k)
			break
		}
	}
	n.naming[id] = namingRecord{v2: v2, time: at}
}

func (n *Node) peerNaming(id keys.PublicKey) (v2, known bool) {
	if id == n.id {
		return !n.cfg.NamingV1, true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.naming[id]
	return r.v2, ok
}

// noteDialHint remembers where a user said a node is, for linkTo.
func (n *Node) noteDialHint(p PeerAddr) {
	if p.Addr == "" || p.ID == n.id {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.hints[p.ID]; !ok && len(n.hints) >= maxDialHints {
		for k := range n.hints {
			delete(n.hints, k)
			break
		}
	}
	n.hints[p.ID] = p.Addr
}

func (n *Node) dialHint(id keys.PublicKey) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a, ok := n.hints[id]
	return a, ok
}

func (n *Node) markInbox(t topic.Topic) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.inboxes[t] = struct{}{}
}

// isInbox reports whether a user registered t as an inbox.
func (n *Node) isInbox(t topic.Topic) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.inboxes[t]
	return ok
}

// mayRead reports whether the node peer on l may read t from this node
// (§16.7). Only an answer to such a query carries messages.
func (n *Node) mayRead(ctx context.Context, l *link, t topic.Topic) bool {
	if n.isInbox(t) {
		return false // only its owner, this node, subscribes: its users read it
	}
	if _, ok := t.Passport(); ok && !n.cfg.NamingV1 && l.speaksV2() {
		return false // v2 nodes never subscribe to passport topics
	}
	h, held, err := n.store.HeldFor(ctx, t)
	if err != nil {
		n.log.Error("query: held topic", "topic", t, "err", err)
		return false
	}
	if held {
		return h.Node == l.remote && l.advertises(t)
	}
	return n.cfg.OpenQueries || l.advertises(t)
}

// pendingHeld are the held topics not handed to a subscriber yet.
type pendingHeld struct {
	m map[topic.Topic]pendingTopic // under Node.mu
}

type pendingTopic struct {
	to    PeerAddr
	since time.Time
}

func (n *Node) addPending(t topic.Topic, to PeerAddr, since time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p, ok := n.pending.m[t]; ok {
		p.to = to
		n.pending.m[t] = p
		return
	}
	if len(n.pending.m) < maxHeldPending {
		n.pending.m[t] = pendingTopic{to: to, since: since}
	}
}

// pendingDone forgets t: a subscriber was sent its messages.
func (n *Node) pendingDone(t topic.Topic) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.pending.m, t)
}

// takePending returns the pending topic t if l's peer is its node.
func (n *Node) takePending(t topic.Topic, peer keys.PublicKey) (pendingTopic, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.pending.m[t]
	if !ok || p.to.ID != peer {
		return p, false
	}
	delete(n.pending.m, t)
	return p, true
}

// pushHeld sends the held messages of the topics l's peer just showed in
// its own gossip on l and is the named node of: the hand-over of what
// PublishTo could not deliver, and after each relink.
func (n *Node) pushHeld(ctx context.Context, l *link, topics []topic.Topic) {
	var due []topic.Topic
	var since []time.Time
	for _, t := range topics {
		if p, ok := n.takePending(t, l.remote); ok {
			due, since = append(due, t), append(since, p.since)
		}
	}
	if len(due) == 0 {
		return
	}
	n.spawn(func() {
		for i, t := range due {
			ms, err := n.store.MessagesSince(ctx, t, since[i], n.cfg.QueryLimit)
			if err != nil {
				n.log.Error("hand over held messages", "topic", t, "err", err)
				continue
			}
			n.sendStored(ctx, l, ms)
			n.stats.handedOff.Add(uint64(len(ms)))
		}
	})
}

// retryPending runs every gossip round: each pending topic is handed to
// subscribers the overlay learnt meanwhile, or its named node is greeted
// again (its gossip in reply brings pushHeld).
func (n *Node) retryPending(ctx context.Context) {
	n.mu.Lock()
	pend := make(map[topic.Topic]pendingTopic, len(n.pending.m))
	for t, p := range n.pending.m {
		pend[t] = p
	}
	n.mu.Unlock()
	for t, p := range pend {
		if subs := n.overlay.handoff(t); len(subs) > 0 {
			ms, err := n.store.MessagesSince(ctx, t, p.since, n.cfg.QueryLimit)
			if err != nil {
				continue
			}
			for _, m := range ms {
				n.sendTo(ctx, subs, wire.Topic{Topic: m.Topic, Content: m.Content})
			}
			n.pendingDone(t)
			continue
		}
		if l, err := n.linkTo(p.to.ID); err == nil {
			n.greet(ctx, l)
		}
	}
}

// restorePending reloads the held topics of the retention window still to
// hand over (all of them: a hand-over is not recorded, and the recipient
// drops duplicates).
func (n *Node) restorePending(ctx context.Context, now time.Time) error {
	hs, err := n.store.HeldSince(ctx, now.Add(-n.cfg.Retention))
	if err != nil {
		return err
	}
	for _, h := range hs {
		p := PeerAddr{ID: h.Node, Addr: h.Addr}
		n.noteDialHint(p)
		n.addPending(h.Topic, p, h.Since)
	}
	return nil
}

// bucketBits is the intro-bucket width this node uses. This release
// keeps one bucket for the whole network (b = 0, right below 64 nodes):
// the size estimate of §16.4 is not implemented yet.
func (n *Node) bucketBits() int { return 0 }

// BucketBits is the intro-bucket width (topic.IntroBucket) the node's
// users should register and publish first contacts with.
func (s *Session) BucketBits() int { return s.n.bucketBits() }
