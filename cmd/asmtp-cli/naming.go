package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/asmtp/asmtp/asmtp/card"
	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/noise"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// Naming v2, the device side (asmtp/PROTOCOL.md §16), as the bridge does
// it for its accounts: the profile receives on daily inbox topics derived
// from a secret seed that only its contacts learn, inside their contact
// cards, and first contact goes through the contact's intro bucket. The
// device asks its node for what the seven message types cannot say with
// the user operations of §16.11 (RegisterInbox, PublishTo, CatchUp,
// KeepPassport, BucketBits).
//
// On each connection the device registers its inboxes of the day and its
// intro bucket, and sends its card to each contact that has not answered
// yet (again every cardResend). A card that comes back makes the contact
// a v2 contact: mail to it goes to its inbox of the day, published for
// its node (the card's node id and address). A contact whose card never
// came within --card-wait of ours, or any contact when the node does not
// speak v2, becomes a v1 contact: the pair topic, as before. Sending to a
// contact whose card is awaited waits for it up to --timeout, then fails
// without sending: the pair topic would show the pair in gossip.

const (
	// defaultCardWait is how long a contact may leave our card
	// unanswered before it is taken for a v1 contact (--card-wait), as
	// the bridge's DefaultCardWait.
	defaultCardWait = 24 * time.Hour
	// cardResend is how often our card goes again to the bucket of a
	// contact that did not answer, as the bridge's.
	cardResend = 6 * time.Hour
	// catchUpDays is how many past days of our inboxes a sync asks the
	// v2 contacts' nodes for (§16.6), as the bridge's DefaultCatchUpDays.
	catchUpDays = 7
)

// naming is the client's naming-v2 state on its current link.
type naming struct {
	seed    topic.InboxSeed
	bits    int // the node's intro-bucket width; -1: the node does not speak v2
	bucket  topic.Topic
	inboxes map[topic.Topic]bool
}

// v2 reports whether the node answered BucketBits: it speaks v2.
func (n *naming) v2() bool { return n != nil && n.bits >= 0 }

// userOp sends one user operation.
func (l *nodeLink) userOp(ctx context.Context, op wire.UserOp) error {
	m, err := op.Message()
	if err != nil {
		return err
	}
	return l.send(ctx, m)
}

// startNaming registers the inboxes of today (and its neighbour near
// midnight) and the intro bucket at the node's width, then sends the
// cards owed. A node that does not answer BucketBits speaks only v1:
// every contact is then a v1 contact.
func (c *client) startNaming(ctx context.Context, l *nodeLink, now time.Time) error {
	seed, err := c.p.db.inboxSeed(ctx)
	if err != nil {
		return err
	}
	n := &naming{seed: seed, bits: -1, inboxes: make(map[topic.Topic]bool)}
	c.mu.Lock()
	c.naming = n
	c.mu.Unlock()
	if err := l.userOp(ctx, wire.UserOp{Code: wire.OpBucketBits}); err != nil {
		return err
	}
	if err := l.barrier(ctx); err != nil {
		return fmt.Errorf("ask the node's bucket width: %w", err)
	}
	if !c.nodeV2() {
		return c.allToV1(ctx, l)
	}
	if err := c.registerInboxes(ctx, l, topic.InboxDays(now)); err != nil {
		return err
	}
	c.mu.Lock()
	n.bucket = topic.IntroBucket(c.p.own.ID(), n.bits)
	c.mu.Unlock()
	if err := l.send(ctx, wire.RegisterTopic{Topic: n.bucket}); err != nil {
		return err
	}
	return c.sendOwedCards(ctx, l, now)
}

// nodeV2 reports whether the node speaks v2.
func (c *client) nodeV2() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.naming.v2()
}

// registerInboxes registers our inboxes of days.
func (c *client) registerInboxes(ctx context.Context, l *nodeLink, days []uint32) error {
	c.mu.Lock()
	n := c.naming
	c.mu.Unlock()
	for _, d := range days {
		t := topic.Inbox(n.seed, d)
		c.mu.Lock()
		n.inboxes[t] = true // before the node may push on it
		c.mu.Unlock()
		if err := l.userOp(ctx, wire.UserOp{Code: wire.OpRegisterInbox, Topic: t}); err != nil {
			return err
		}
	}
	return nil
}

// isNaming reports whether t is one of our inboxes or our bucket.
func (c *client) isNaming(t topic.Topic) (inbox, bucket bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.naming.v2() {
		return false, false
	}
	return c.naming.inboxes[t], t == c.naming.bucket
}

// allToV1 makes every contact still awaiting a card a v1 contact and
// registers its pair topic: the node cannot do v2.
func (c *client) allToV1(ctx context.Context, l *nodeLink) error {
	contacts, err := c.p.db.contacts(ctx)
	if err != nil {
		return err
	}
	for _, ct := range contacts {
		if ct.naming == schemeUnknown {
			if err := c.toV1(ctx, l, ct); err != nil {
				return err
			}
		}
	}
	return nil
}

// toV1 makes ct a v1 contact and registers its pair topic.
func (c *client) toV1(ctx context.Context, l *nodeLink, ct contact) error {
	if err := c.p.db.fallBackToV1(ctx, ct.passport); err != nil {
		return err
	}
	return l.send(ctx, wire.RegisterTopic{Topic: ct.topic})
}

// sendOwedCards sends our card to each contact awaiting one (and once to
// a v1 contact from before v2), and makes v1 contacts of those that never
// answered within --card-wait.
func (c *client) sendOwedCards(ctx context.Context, l *nodeLink, now time.Time) error {
	contacts, err := c.p.db.contacts(ctx)
	if err != nil {
		return err
	}
	for _, ct := range contacts {
		switch {
		case ct.naming == schemeV1 && ct.cardSentAt.IsZero():
			// A contact from before naming v2: offered v2 once.
			err = c.sendCard(ctx, l, ct, nil, now)
		case ct.naming != schemeUnknown:
		case !ct.cardSentAt.IsZero() && now.Sub(ct.cardSentAt) >= c.cardWait:
			err = c.toV1(ctx, l, ct)
			c.onWarning(fmt.Sprintf("%s never answered your contact card: mail to them now uses the v1 pair topic", ct.petname))
		case ct.cardSentAt.IsZero() || now.Sub(ct.cardSentAt) >= cardResend:
			err = c.sendCard(ctx, l, ct, nil, now)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ownCard is our card as of now.
func (c *client) ownCard(answer bool, now time.Time) card.Card {
	c.mu.Lock()
	seed := c.naming.seed
	c.mu.Unlock()
	return card.Card{Scheme: card.SchemeV2, Answer: answer, Issued: now, Passport: c.p.own.ID(),
		Seed: seed, Node: c.node.id, Addr: c.node.public}
}

// sendCard seals our card to ct and publishes it: to ct's intro bucket,
// or, answering ct's card to, to ct's inbox of today for ct's node.
func (c *client) sendCard(ctx context.Context, l *nodeLink, ct contact, to *card.Card, now time.Time) error {
	sealed, err := card.Seal(rand.Reader, noise.NewXKey(c.s.shared), ct.sharedKey, c.ownCard(to != nil, now))
	if err != nil {
		return fmt.Errorf("card for %s: %w", ct.petname, err)
	}
	c.mu.Lock()
	t := topic.IntroBucket(ct.passport, c.naming.bits)
	c.mu.Unlock()
	op := wire.UserOp{Code: wire.OpPublishTo, Topic: t}
	if to != nil {
		op = wire.UserOp{Code: wire.OpPublishTo, Topic: topic.Inbox(to.Seed, topic.InboxDay(now)), Node: to.Node, Addr: to.Addr}
	}
	if err := c.publishTo(ctx, l, op, [][]byte{sealed}, now); err != nil {
		return fmt.Errorf("card for %s: %w", ct.petname, err)
	}
	return c.p.db.cardSent(ctx, ct.passport, now)
}

// publishTo publishes contents on op.Topic through the node's PublishTo
// (for op's node, if any). Our copies are marked seen first: a bucket we
// share with the contact brings them back.
func (c *client) publishTo(ctx context.Context, l *nodeLink, op wire.UserOp, contents [][]byte, now time.Time) error {
	hashes := make([][32]byte, len(contents))
	for i, content := range contents {
		hashes[i] = contentHash(wire.Topic{Topic: op.Topic, Content: content})
	}
	if err := c.p.db.markSeen(ctx, now, hashes...); err != nil {
		return err
	}
	if err := l.userOp(ctx, op); err != nil {
		return err
	}
	for _, content := range contents {
		if err := l.send(ctx, wire.Topic{Topic: op.Topic, Content: content}); err != nil {
			return err
		}
	}
	return nil
}

// acceptNaming stores what a content on one of our inboxes or our bucket
// brings: a contact's card (taken, and answered when it is no answer), a
// mail from a contact, or nothing (a card for another member of the
// bucket, a content seen before). The sender of inbox mail is the Noise X
// key inside, matched to a contact.
func (c *client) acceptNaming(ctx context.Context, l *nodeLink, m wire.Topic, bucket bool, now time.Time) (*message, error) {
	h := contentHash(m)
	if seen, err := c.p.db.seen(ctx, h); err != nil || seen {
		return nil, err
	}
	if err := c.p.db.markSeen(ctx, now, h); err != nil {
		return nil, err
	}
	if bucket && len(m.Content) != card.SealedSize {
		return nil, nil
	}
	sender, p, err := noise.NewXKey(c.s.shared).Open(m.Content)
	switch {
	case err != nil:
		return nil, nil // for another member of the bucket, or garbage
	case card.IsCard(p):
		return nil, c.takeCard(ctx, l, sender, p, now)
	case bucket:
		return nil, nil
	}
	ct, ok, err := c.p.db.contactBySharedKey(ctx, sender)
	if err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("rejected a message on your inbox: its sender %s is none of your contacts", sender)
		}
		return nil, err
	}
	chunk, err := mail.Open(c.s.shared, ct.sharedKey, m.Content)
	if err != nil {
		return nil, fmt.Errorf("rejected a message from %s on your inbox: %v", ct.petname, err)
	}
	msg, err := c.p.db.addChunk(ctx, ct, h, chunk, now)
	if errors.Is(err, mail.ErrMalformed) {
		return nil, fmt.Errorf("rejected a message from %s: %v", ct.petname, err)
	}
	return msg, err
}

// takeCard verifies an opened card against the passport it names, records
// it and answers it. A card from a passport that is no contact is dropped
// with a warning: importing that passport sends our card, which the other
// side answers.
func (c *client) takeCard(ctx context.Context, l *nodeLink, sender keys.SharedKey, p []byte, now time.Time) error {
	cd, err := card.Decode(p)
	if err != nil {
		return fmt.Errorf("rejected a contact card: %v", err)
	}
	ct, ok, err := c.p.db.contactByPassport(ctx, cd.Passport)
	if err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("passport %s sent you a contact card; import their passport to write to each other", cd.Passport)
		}
		return err
	}
	pp, err := passport.Import(ct.blocks, now)
	if err != nil {
		return fmt.Errorf("contact card of %s: %w", ct.petname, err)
	}
	if err := card.Verify(cd, sender, pp); err != nil {
		return fmt.Errorf("rejected a contact card naming %s: %v", ct.petname, err)
	}
	recorded, err := c.p.db.takeCard(ctx, cd)
	if err != nil || !recorded {
		return err
	}
	if ct.naming == schemeV1 && l != nil {
		// A v1 contact that now speaks v2: its pair topic leaves gossip.
		if err := l.send(ctx, wire.DeregisterTopic{Topic: ct.topic}); err != nil {
			return err
		}
	}
	select {
	case c.cards <- struct{}{}:
	default:
	}
	if cd.Answer {
		return nil
	}
	return c.sendCard(ctx, l, ct, &cd, now)
}

// syncNaming registers our inboxes of the past catchUpDays days and asks
// each v2 contact's node for what it holds on them since the oldest
// (§16.6; the answers arrive like live mail). It returns the inbox topics
// and the bucket, to be queried from our own node like the pair topics.
func (c *client) syncNaming(ctx context.Context, l *nodeLink, contacts []contact, now time.Time) ([]topic.Topic, error) {
	if !c.nodeV2() {
		return nil, nil
	}
	days := topic.InboxDays(now)
	today := topic.InboxDay(now)
	for d := uint32(1); d <= catchUpDays && d <= today; d++ {
		days = append(days, today-d)
	}
	if err := c.registerInboxes(ctx, l, days); err != nil {
		return nil, err
	}
	c.mu.Lock()
	seed, bucket := c.naming.seed, c.naming.bucket
	c.mu.Unlock()
	if today > catchUpDays {
		// The day that just left the window: registrations are stored
		// by the node, which would otherwise keep every past day.
		old := wire.DeregisterTopic{Topic: topic.Inbox(seed, today-catchUpDays-1)}
		if err := l.send(ctx, old); err != nil {
			return nil, err
		}
	}
	since := gossip.FromTime(time.Unix(int64(today-min(today, catchUpDays))*int64(topic.InboxPeriod/time.Second), 0))
	ts := []topic.Topic{bucket}
	for _, d := range days {
		t := topic.Inbox(seed, d)
		ts = append(ts, t)
		for _, ct := range contacts {
			if ct.naming != schemeV2 || ct.card == nil {
				continue
			}
			op := wire.UserOp{Code: wire.OpCatchUp, Topic: t, Since: since, Node: ct.card.Node, Addr: ct.card.Addr}
			if err := l.userOp(ctx, op); err != nil {
				return nil, err
			}
		}
	}
	return ts, nil
}
