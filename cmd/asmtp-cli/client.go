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
	addr string
	id   keys.PublicKey
}

// client is an unlocked profile talking to its node. Received messages are
// stored as they arrive, announced through onMessage (called on the link's
// reading goroutine) and rejected ones through onWarning.
type client struct {
	p         *profile
	s         secrets
	node      nodeAddress
	timeout   time.Duration
	onMessage func(message)
	onWarning func(string)

	mu      sync.Mutex
	link    *nodeLink
	syncing *syncCounts // while a sync runs
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

func (c *client) registerAll(ctx context.Context, l *nodeLink) error {
	contacts, err := c.p.db.contacts(ctx)
	if err != nil {
		return err
	}
	for _, ct := range contacts {
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
func (c *client) receive(ctx context.Context, m wire.Topic) {
	c.mu.Lock()
	if c.syncing != nil {
		c.syncing.add(m)
	}
	c.mu.Unlock()
	if msg, err := c.accept(ctx, m, time.Now()); err != nil {
		c.onWarning(err.Error())
	} else if msg != nil {
		c.onMessage(*msg)
	}
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

// sync registers every contact's topic, asks the node for what it stored
// since each topic's cursor, and returns once the answers are in (the
// messages themselves go through onMessage as they arrive). Cursors move
// only after a complete answer.
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
	contacts, err := c.p.db.contacts(ctx)
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
	since := make(map[topic.Topic]uint32, len(contacts))
	for _, ct := range contacts {
		if !ct.syncedAt.IsZero() {
			since[ct.topic] = gossip.FromTime(ct.syncedAt.Add(-cursorMargin))
		}
		if err := l.send(ctx, wire.RegisterTopic{Topic: ct.topic}); err != nil {
			return err
		}
	}
	for page := 1; len(contacts) > 0; page++ {
		c.mu.Lock()
		counts.next()
		c.mu.Unlock()
		for _, ct := range contacts {
			if err := l.send(ctx, wire.QueryTopicMessages{Topic: ct.topic, Since: since[ct.topic]}); err != nil {
				return err
			}
		}
		if err := l.barrier(ctx); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		c.mu.Lock()
		all, fresh := counts.all, counts.fresh
		c.mu.Unlock()
		var more []contact // topics whose answer may have left messages out
		for _, ct := range contacts {
			switch {
			case all[ct.topic] < nodeQueryLimit:
				if err := c.p.db.setSyncedAt(ctx, ct.id, start); err != nil {
					return err
				}
			case page > 1 && fresh[ct.topic] == 0:
				c.onWarning(fmt.Sprintf("%s's topic has more messages than the node returns at once, and the node sent the same ones again "+
					"(it does not page its answers); the rest cannot be fetched from it", ct.petname))
			case page >= maxSyncPages:
				c.onWarning(fmt.Sprintf("%s's topic has more than %d messages waiting; sync again for the rest", ct.petname, maxSyncPages*nodeQueryLimit))
			default:
				more = append(more, ct)
			}
		}
		contacts = more
	}
	return c.p.db.prune(ctx, start)
}

// send seals text (plain text or an RFC 5322 message) to contact to,
// publishes it on their topic and checks that the node stored it: the
// node is asked for the topic's recent messages and ours must be among
// them. It returns the message id.
func (c *client) send(ctx context.Context, to contact, text []byte) (mail.MessageID, error) {
	id, err := mail.NewMessageID(rand.Reader)
	if err != nil {
		return id, err
	}
	now := time.Now()
	msg := composeMail(text, envelope{from: pseudoAddress(c.p.own.ID()), to: pseudoAddress(to.passport), id: id, date: now})
	contents, err := mail.Seal(rand.Reader, c.s.shared, to.sharedKey, id, msg)
	if err != nil {
		return id, fmt.Errorf("send to %s: %w", to.petname, err)
	}
	hashes := make([][32]byte, len(contents))
	for i, content := range contents {
		hashes[i] = contentHash(wire.Topic{Topic: to.topic, Content: content})
	}
	// Our copy comes back with the next query: it is ours, not news.
	if err := c.p.db.markSeen(ctx, now, hashes...); err != nil {
		return id, err
	}
	l, err := c.connected(ctx)
	if err != nil {
		return id, err
	}
	l.watch(hashes)
	defer l.unwatch(hashes)
	if err := l.send(ctx, wire.RegisterTopic{Topic: to.topic}); err != nil {
		return id, err
	}
	for _, content := range contents {
		if err := l.send(ctx, wire.Topic{Topic: to.topic, Content: content}); err != nil {
			return id, err
		}
	}
	if err := l.send(ctx, wire.QueryTopicMessages{Topic: to.topic, Since: gossip.FromTime(now.Add(-cursorMargin))}); err != nil {
		return id, err
	}
	if err := l.barrier(ctx); err != nil {
		return id, fmt.Errorf("send to %s: %w", to.petname, err)
	}
	if got := l.unwatch(hashes); got != len(hashes) {
		return id, fmt.Errorf("send to %s: the node stored %d of the message's %d parts; see the node's log", to.petname, got, len(hashes))
	}
	return id, nil
}
