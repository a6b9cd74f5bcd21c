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
	// (node.DefaultQueryLimit). A sync that gets this many messages on a
	// topic keeps its cursor, since it cannot know what was left out.
	nodeQueryLimit = 1000
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

	mu       sync.Mutex
	link     *nodeLink
	received map[topic.Topic]int // per topic, counted while a sync runs
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
	if c.received != nil {
		c.received[m.Topic]++
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
	c.mu.Lock()
	c.received = make(map[topic.Topic]int)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.received = nil
		c.mu.Unlock()
	}()
	for _, ct := range contacts {
		var since uint32
		if !ct.syncedAt.IsZero() {
			since = gossip.FromTime(ct.syncedAt.Add(-cursorMargin))
		}
		if err := l.send(ctx, wire.RegisterTopic{Topic: ct.topic}); err != nil {
			return err
		}
		if err := l.send(ctx, wire.QueryTopicMessages{Topic: ct.topic, Since: since}); err != nil {
			return err
		}
	}
	if err := l.barrier(ctx); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	c.mu.Lock()
	received := c.received
	c.mu.Unlock()
	for _, ct := range contacts {
		if received[ct.topic] >= nodeQueryLimit {
			c.onWarning(fmt.Sprintf("%s's topic has more messages than the node returns at once; sync again for the rest", ct.petname))
			continue
		}
		if err := c.p.db.setSyncedAt(ctx, ct.id, start); err != nil {
			return err
		}
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
