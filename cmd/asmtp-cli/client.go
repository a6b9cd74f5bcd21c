package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

const (
	// cursorMargin is subtracted from the sync cursor (a client time) when
	// asking the node (whose clock may differ) for what it stored since.
	// What comes twice is recognised by hash and message id.
	cursorMargin = 15 * time.Minute
	// nodeQueryLimit is what the node returns at most for one query
	// (node.DefaultQueryLimit). An answer this long may have left messages
	// out: the sync asks the same query again for the next page (the
	// node's paging rule, PROTOCOL.md §15.2).
	nodeQueryLimit = 1000
	// maxSyncPages bounds the pages one sync asks for per topic (a million
	// messages); a topic with more keeps its cursor and warns.
	maxSyncPages = 1000
)

// nodeAddress says where the device's node is.
type nodeAddress struct {
	addr   string
	id     keys.PublicKey
	public string // where other nodes reach it (--card-address), for the contact card
}

// client is an unlocked profile talking to its node. Received messages are
// stored as they arrive, announced through onMessage (called on the link's
// reading goroutine) and rejected ones through onWarning.
type client struct {
	p         *profile
	s         secrets
	node      nodeAddress
	timeout   time.Duration
	cardWait  time.Duration // before a contact that sent no card is a v1 one
	onMessage func(message)
	onWarning func(string)

	cards chan struct{} // a contact's card was recorded (capacity 1)

	mu      sync.Mutex
	link    *nodeLink
	syncing *syncCounts // while a sync runs
	naming  *naming     // of the current link
}

// syncCounts counts, per topic, the Topic messages that arrive during one
// round of a sync's queries, and how many of them the previous round did
// not bring: a node that does not page answers the same messages again.
type syncCounts struct {
	all, fresh map[topic.Topic]int
	cur, prev  map[topic.Topic]map[[32]byte]struct{} // contents of this round and the last
}

// next starts a round.
func (s *syncCounts) next() {
	s.all, s.fresh = make(map[topic.Topic]int), make(map[topic.Topic]int)
	s.prev, s.cur = s.cur, make(map[topic.Topic]map[[32]byte]struct{})
}

// add counts m.
func (s *syncCounts) add(m wire.Topic) {
	h := contentHash(m)
	s.all[m.Topic]++
	if _, ok := s.prev[m.Topic][h]; !ok {
		s.fresh[m.Topic]++
	}
	if s.cur[m.Topic] == nil {
		s.cur[m.Topic] = make(map[[32]byte]struct{})
	}
	s.cur[m.Topic][h] = struct{}{}
}

// connected returns the link, connecting if there is none or it closed:
// handshake, passport upload and user probe, then registration of every
// contact's topic (from then on the node pushes their messages).
func (c *client) connected(ctx context.Context) (*nodeLink, error) {
	c.mu.Lock()
	l := c.link
	c.mu.Unlock()
	if l != nil && l.alive() {
		return l, nil
	}
	c.close() // a link the node closed
	conn, err := dialNode(ctx, c.node.addr, c.node.id, c.s.device(), c.timeout)
	if err != nil {
		return nil, err
	}
	l = startLink(context.WithoutCancel(ctx), conn, c.node.addr, c.p.own.ID(), c.timeout, c.receive)
	if err := l.probeUser(ctx, keys.Public(c.s.device()), c.p.own); err != nil {
		l.close()
		return nil, fmt.Errorf("node %s at %s: %w", c.node.id, c.node.addr, err)
	}
	if err := c.registerAll(ctx, l); err != nil {
		l.close()
		return nil, err
	}
	if err := c.startNaming(ctx, l, time.Now()); err != nil {
		l.close()
		return nil, err
	}
	c.mu.Lock()
	c.link = l
	c.mu.Unlock()
	go c.watch(l)
	return l, nil
}

// watch warns when the link is lost (the next command connects again).
// It returns when the link closes.
func (c *client) watch(l *nodeLink) {
	<-l.closed
	if !errors.Is(l.err, errLinkClosed) {
		c.onWarning(fmt.Sprintf("lost the link to the node (%v); the next command connects again", l.err))
	}
}

// linked reports whether the client has a live link.
func (c *client) linked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.link != nil && c.link.alive()
}

// close closes the link, if any.
func (c *client) close() {
	c.mu.Lock()
	l := c.link
	c.link = nil
	c.mu.Unlock()
	if l != nil {
		l.close() // not under c.mu: the reader takes it in receive
	}
}

// registerAll registers the pair topic of every v1 contact; v2 contacts
// and those awaiting a card write to our inboxes (naming.go).
func (c *client) registerAll(ctx context.Context, l *nodeLink) error {
	contacts, err := c.p.db.contacts(ctx)
	if err != nil {
		return err
	}
	for _, ct := range contacts {
		if ct.naming != schemeV1 {
			continue
		}
		if err := l.send(ctx, wire.RegisterTopic{Topic: ct.topic}); err != nil {
			return err
		}
	}
	return nil
}

// contentHash identifies a topic content: BLAKE2b-256(topic ‖ content),
// as the node's dedupe does.
func contentHash(m wire.Topic) [32]byte {
	h, _ := blake2b.New256(nil) // unkeyed: cannot fail
	h.Write(m.Topic[:])
	h.Write(m.Content)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// receive handles a Topic message from the node, pushed live or answering
// a query: content seen before is skipped; otherwise it must open with our
// shared secret and be sealed by the contact the topic belongs to, or it
// is rejected (upstream only warned about a wrong sender).
func (c *client) receive(ctx context.Context, l *nodeLink, m wire.Topic) {
	if op, ok, err := wire.ParseUserOp(m); ok {
		c.takeUserOp(op, err)
		return
	}
	c.mu.Lock()
	if c.syncing != nil {
		c.syncing.add(m)
	}
	c.mu.Unlock()
	var (
		msg *message
		err error
	)
	if inbox, bucket := c.isNaming(m.Topic); inbox || bucket {
		msg, err = c.acceptNaming(ctx, l, m, bucket, time.Now())
	} else {
		msg, err = c.accept(ctx, m, time.Now())
	}
	if err != nil {
		c.onWarning(err.Error())
	} else if msg != nil {
		c.onMessage(*msg)
	}
}

// takeUserOp takes the node's answer to a user operation: only
// BucketBits is asked for.
func (c *client) takeUserOp(op wire.UserOp, err error) {
	if err != nil {
		c.onWarning(fmt.Sprintf("the node sent a malformed user operation: %v", err))
		return
	}
	if op.Code != wire.OpBucketBits|wire.OpAnswer {
		return
	}
	c.mu.Lock()
	if c.naming != nil {
		c.naming.bits = int(op.Value)
	}
	c.mu.Unlock()
}

// accept stores what m brings: a new message, nothing (a duplicate, a
// chunk of an incomplete message, our own message coming back, a topic
// that is no contact's), or an error for content it rejects.
func (c *client) accept(ctx context.Context, m wire.Topic, now time.Time) (*message, error) {
	ct, ok, err := c.p.db.contactByTopic(ctx, m.Topic)
	if err != nil || !ok {
		return nil, err
	}
	h := contentHash(m)
	if seen, err := c.p.db.seen(ctx, h); err != nil || seen {
		return nil, err
	}
	chunk, err := mail.Open(c.s.shared, ct.sharedKey, m.Content)
	if err != nil {
		if merr := c.p.db.markSeen(ctx, now, h); merr != nil {
			return nil, merr
		}
		if errors.Is(err, mail.ErrWrongSender) {
			return nil, fmt.Errorf("rejected a message on %s's topic: it is not sealed by %s's key (%v)", ct.petname, ct.petname, err)
		}
		// Not for us: it did not decrypt with our key (a copy of a
		// message we sent from another device, or garbage).
		return nil, nil
	}
	msg, err := c.p.db.addChunk(ctx, ct, h, chunk, now)
	if errors.Is(err, mail.ErrMalformed) {
		return nil, fmt.Errorf("rejected a message from %s: %v", ct.petname, err)
	}
	return msg, err
}

// syncTopic is one topic a sync asks the node for: a v1 contact's pair
// topic, one of our inboxes or our intro bucket.
type syncTopic struct {
	t     topic.Topic
	since uint32
	label string                                 // for warnings
	done  func(context.Context, time.Time) error // a complete answer came: move the cursor
}

// syncTopics are the topics a sync asks for, with their cursors, after
// registering them (and asking the v2 contacts' nodes for our past
// inboxes).
func (c *client) syncTopics(ctx context.Context, l *nodeLink, now time.Time) ([]syncTopic, error) {
	contacts, err := c.p.db.contacts(ctx)
	if err != nil {
		return nil, err
	}
	var out []syncTopic
	for _, ct := range contacts {
		if ct.naming == schemeV2 {
			// A contact that moved from v1 to v2: its pair topic must leave
			// the node's gossip even if the deregistration sent when its
			// card came was lost with the link (the node ignores it when
			// nothing is registered).
			if err := l.send(ctx, wire.DeregisterTopic{Topic: ct.topic}); err != nil {
				return nil, err
			}
		}
		if ct.naming != schemeV1 {
			continue
		}
		if err := l.send(ctx, wire.RegisterTopic{Topic: ct.topic}); err != nil {
			return nil, err
		}
		id := ct.id
		out = append(out, syncTopic{t: ct.topic, since: sinceOf(ct.syncedAt), label: ct.petname + "'s topic",
			done: func(ctx context.Context, start time.Time) error { return c.p.db.setSyncedAt(ctx, id, start) }})
	}
	naming, err := c.syncNaming(ctx, l, contacts, now)
	if err != nil {
		return nil, err
	}
	synced, err := c.p.db.namingSyncedAt(ctx)
	if err != nil {
		return nil, err
	}
	for i, t := range naming {
		label := "your inbox"
		if i == 0 {
			label = "your intro bucket"
		}
		out = append(out, syncTopic{t: t, since: sinceOf(synced), label: label})
	}
	if len(naming) > 0 {
		// The cursor of our inboxes and bucket moves once all of them
		// were answered completely: the last one's done.
		out[len(out)-1].done = func(ctx context.Context, start time.Time) error { return c.p.db.setNamingSyncedAt(ctx, start) }
	}
	return out, nil
}

// sinceOf is the query time of a cursor: 0 (everything) for none.
func sinceOf(synced time.Time) uint32 {
	if synced.IsZero() {
		return 0
	}
	return gossip.FromTime(synced.Add(-cursorMargin))
}

// sync registers every topic we read (the v1 contacts' pair topics, our
// inboxes and bucket), asks the node for what it stored since each
// topic's cursor, and returns once the answers are in (the messages
// themselves go through onMessage as they arrive). Cursors move only
// after a complete answer.
//
// The node answers at most nodeQueryLimit messages per query. An answer
// that long may have left some out, so the sync sends the same query
// (same topic, same since) again, which the node answers with the next
// page, until an answer is shorter (PROTOCOL.md §15.2). Live pushes
// arriving meanwhile only make an answer look longer, which costs one
// more query at most. A node that does not page (it sends a full answer
// that brings nothing the previous one did not) is not asked again: the
// topic keeps its cursor and the user is warned.
func (c *client) sync(ctx context.Context) error {
	l, err := c.connected(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	topics, err := c.syncTopics(ctx, l, start)
	if err != nil {
		return err
	}
	counts := &syncCounts{}
	c.mu.Lock()
	c.syncing = counts
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.syncing = nil
		c.mu.Unlock()
	}()
	for page := 1; len(topics) > 0; page++ {
		if topics, err = c.syncPage(ctx, l, counts, topics, page, start); err != nil {
			return err
		}
	}
	return c.p.db.prune(ctx, start)
}

// syncPage asks for one page of each topic and returns the topics whose
// answer may have left messages out.
func (c *client) syncPage(ctx context.Context, l *nodeLink, counts *syncCounts, topics []syncTopic, page int, start time.Time) ([]syncTopic, error) {
	c.mu.Lock()
	counts.next()
	c.mu.Unlock()
	for _, st := range topics {
		if err := l.send(ctx, wire.QueryTopicMessages{Topic: st.t, Since: st.since}); err != nil {
			return nil, err
		}
	}
	if err := l.barrier(ctx); err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	c.mu.Lock()
	all, fresh := counts.all, counts.fresh
	c.mu.Unlock()
	var more []syncTopic
	for _, st := range topics {
		switch {
		case all[st.t] < nodeQueryLimit:
			if st.done != nil {
				if err := st.done(ctx, start); err != nil {
					return nil, err
				}
			}
		case page > 1 && fresh[st.t] == 0:
			c.onWarning(fmt.Sprintf("%s has more messages than the node returns at once, and the node sent the same ones again "+
				"(it does not page its answers); the rest cannot be fetched from it", st.label))
		case page >= maxSyncPages:
			c.onWarning(fmt.Sprintf("%s has more than %d messages waiting; sync again for the rest", st.label, maxSyncPages*nodeQueryLimit))
		default:
			more = append(more, st)
		}
	}
	return more, nil
}

// send seals text (plain text or an RFC 5322 message) to contact to and
// publishes it: to a v2 contact's inbox of the day, for its node, or on
// a v1 contact's pair topic. It returns the message id.
func (c *client) send(ctx context.Context, to contact, text []byte) (mail.MessageID, error) {
	id, err := mail.NewMessageID(rand.Reader)
	if err != nil {
		return id, err
	}
	l, err := c.connected(ctx)
	if err != nil {
		return id, err
	}
	if to, err = c.route(ctx, l, to); err != nil {
		return id, err
	}
	now := time.Now()
	msg := composeMail(text, envelope{from: pseudoAddress(c.p.own.ID()), to: pseudoAddress(to.passport), id: id, date: now})
	contents, err := mail.Seal(rand.Reader, c.s.shared, to.sharedKey, id, msg)
	if err != nil {
		return id, fmt.Errorf("send to %s: %w", to.petname, err)
	}
	if to.naming == schemeV2 {
		return id, c.sendInbox(ctx, l, to, contents, now)
	}
	return id, c.sendPair(ctx, l, to, contents, now)
}

// route returns ct as it is to be written to: a v2 or v1 contact. For a
// contact awaiting our card's answer, a sync takes an answer the node
// holds (messages it brings are stored and announced as by any sync),
// then the answer is waited for up to the timeout (the node pushes it to
// our inbox); without it the mail is not sent, unless the card went out
// --card-wait ago, which makes the contact a v1 one.
func (c *client) route(ctx context.Context, l *nodeLink, ct contact) (contact, error) {
	if ct.naming == schemeUnknown && c.nodeV2() {
		if err := c.sync(ctx); err != nil {
			return ct, err
		}
		next, _, err := c.p.db.contactByPassport(ctx, ct.passport)
		if err != nil {
			return ct, err
		}
		ct = next
	}
	deadline := time.NewTimer(c.timeout)
	defer deadline.Stop()
	for ct.naming == schemeUnknown {
		if !c.nodeV2() || (!ct.cardSentAt.IsZero() && time.Since(ct.cardSentAt) >= c.cardWait) {
			if err := c.toV1(ctx, l, ct); err != nil {
				return ct, err
			}
		} else {
			select {
			case <-c.cards:
			case <-deadline.C:
				return ct, fmt.Errorf("%s has not answered your contact card yet (sent %s); the mail was not sent, try again later "+
					"(after %v without an answer, %s becomes a v1 contact)", ct.petname, ct.cardSentAt.Format(time.RFC3339), c.cardWait, ct.petname)
			case <-ctx.Done():
				return ct, ctx.Err()
			}
		}
		next, ok, err := c.p.db.contactByPassport(ctx, ct.passport)
		if err != nil || !ok {
			return ct, fmt.Errorf("contact %s: %v", ct.petname, err)
		}
		ct = next
	}
	return ct, nil
}

// sendInbox publishes contents on to's inbox of the day for to's node.
// The node stores them durably before publishing (PublishTo, §16.6) and
// handles a user's messages in order, so the barrier after them says they
// are stored; a node failure is in the node's log only, as the link has
// no errors (§15.2).
func (c *client) sendInbox(ctx context.Context, l *nodeLink, to contact, contents [][]byte, now time.Time) error {
	op := wire.UserOp{Code: wire.OpPublishTo, Topic: topic.Inbox(to.card.Seed, topic.InboxDay(now)), Node: to.card.Node, Addr: to.card.Addr}
	if err := c.publishTo(ctx, l, op, contents, now); err != nil {
		return fmt.Errorf("send to %s: %w", to.petname, err)
	}
	if err := l.barrier(ctx); err != nil {
		return fmt.Errorf("send to %s: %w", to.petname, err)
	}
	return nil
}

// sendPair publishes contents on to's pair topic and checks that the
// node stored them: the node is asked for the topic's recent messages
// and ours must be among them.
func (c *client) sendPair(ctx context.Context, l *nodeLink, to contact, contents [][]byte, now time.Time) error {
	hashes := make([][32]byte, len(contents))
	for i, content := range contents {
		hashes[i] = contentHash(wire.Topic{Topic: to.topic, Content: content})
	}
	// Our copy comes back with the next query: it is ours, not news.
	if err := c.p.db.markSeen(ctx, now, hashes...); err != nil {
		return err
	}
	l.watch(hashes)
	defer l.unwatch(hashes)
	if err := l.send(ctx, wire.RegisterTopic{Topic: to.topic}); err != nil {
		return err
	}
	for _, content := range contents {
		if err := l.send(ctx, wire.Topic{Topic: to.topic, Content: content}); err != nil {
			return err
		}
	}
	if err := l.send(ctx, wire.QueryTopicMessages{Topic: to.topic, Since: gossip.FromTime(now.Add(-cursorMargin))}); err != nil {
		return err
	}
	if err := l.barrier(ctx); err != nil {
		return fmt.Errorf("send to %s: %w", to.petname, err)
	}
	if got := l.unwatch(hashes); got != len(hashes) {
		return fmt.Errorf("send to %s: the node stored %d of the message's %d parts; see the node's log", to.petname, got, len(hashes))
	}
	return nil
}
