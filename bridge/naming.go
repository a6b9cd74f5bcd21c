package bridge

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/card"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/noise"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/mailstore"
)

// Naming v2, the user side (PROTOCOL.md §16). Each account receives on its
// daily inbox topics, derived from a secret seed that only its contacts
// learn, inside their cards; first contact goes through the recipient's
// intro bucket. The account's node subscribes to the inbox of today (and
// the neighbouring day near midnight) and to the account's intro bucket,
// and to no passport topic and no pair topic of a v2 contact.
//
// Adding a contact sends the account's card to the contact's bucket; mail
// to the contact waits in the outbox (errAwaitingCard) until the contact's
// card comes back, then goes to the contact's inbox of the day, to the
// contact's node first. A contact that sends no card within CardWait
// becomes a v1 contact (the pair topic, as before), shown as "v1".
//
// On start, the account's inboxes of the last CatchUpDays days are
// subscribed again and caught up from each v2 contact's node: the sender's
// node is the one that holds mail for an inbox while its owner is away
// (§16.6).

// Defaults of the naming settings.
const (
	// DefaultCardWait is how long mail to a new contact waits for its
	// card before the contact is taken for a v1 one. A day, as §16.5
	// retries a card at other bucket widths after a day.
	DefaultCardWait = 24 * time.Hour
	// DefaultCatchUpDays is how many past days of inbox topics are caught
	// up on start.
	DefaultCatchUpDays = 7
	// cardResend is how often the account's card goes again to the
	// bucket of a contact that did not answer.
	cardResend = 6 * time.Hour
	// awaitingCardWait is how soon a mail waiting for a card is looked at
	// again: the card usually comes within seconds.
	awaitingCardWait = time.Second
)

// errAwaitingCard: the recipient's card has not come back yet.
var errAwaitingCard = errors.New("waiting for the recipient's contact card (naming v2)")

// accountNaming is an account's naming-v2 state on the node. The Run
// goroutine (reconcile) writes it, the account's inbound worker reads it.
type accountNaming struct {
	seed     topic.InboxSeed
	passport passport.Hash

	mu      sync.Mutex
	key     noise.XKey                // the account's shared secret: opens cards and inbox mail
	blocks  []byte                    // the passport the key was read with
	bucket  topic.Topic               // the account's own intro bucket, subscribed
	inboxes map[topic.Topic]time.Time // subscribed inbox topics, with the end of their day (+ overlap)
}

// isInbox reports whether t is one of the account's subscribed inboxes.
func (n *accountNaming) isInbox(t topic.Topic) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.inboxes[t]
	return ok
}

// isBucket reports whether t is the account's intro bucket.
func (n *accountNaming) isBucket(t topic.Topic) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return t == n.bucket
}

// topics are the account's subscribed inboxes and its bucket.
func (n *accountNaming) topics() []topic.Topic {
	n.mu.Lock()
	defer n.mu.Unlock()
	ts := []topic.Topic{n.bucket}
	for t := range n.inboxes {
		ts = append(ts, t)
	}
	return ts
}

func (n *accountNaming) xkey() noise.XKey {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.key
}

// startNaming reads the account's seed and key; first is true when the
// account has no naming state yet on this process (a start).
func (b *Bridge) startNaming(ctx context.Context, a Account, l *accountLink) (*accountNaming, bool, error) {
	if l.naming != nil {
		return l.naming, false, b.refreshNamingKey(ctx, a, l.naming)
	}
	seed, err := b.reg.InboxSeed(ctx, b.nodeKey, a.Name)
	if err != nil {
		return nil, false, err
	}
	n := &accountNaming{seed: seed, passport: a.Passport, inboxes: make(map[topic.Topic]time.Time)}
	if err := b.refreshNamingKey(ctx, a, n); err != nil {
		return nil, false, err
	}
	l.naming = n
	return n, true, nil
}

// refreshNamingKey reads the account's shared secret again when its
// passport changed (a rotation).
func (b *Bridge) refreshNamingKey(ctx context.Context, a Account, n *accountNaming) error {
	n.mu.Lock()
	same := n.blocks != nil && string(n.blocks) == string(a.Blocks)
	n.mu.Unlock()
	if same {
		return nil
	}
	s, err := b.reg.Secrets(ctx, b.nodeKey, a.Name)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.key, n.blocks = noise.NewXKey(s.SharedSecret), append([]byte(nil), a.Blocks...)
	n.mu.Unlock()
	return nil
}

// reconcileNaming subscribes the account's inboxes and bucket, sends its
// card to contacts that have not answered, and makes contacts that never
// answered v1 contacts. On the first call after a start it catches up the
// past days' inboxes from the contacts' nodes.
func (b *Bridge) reconcileNaming(ctx context.Context, a Account, l *accountLink) {
	n, first, err := b.startNaming(ctx, a, l)
	if err != nil {
		b.log.Warn("bridge: naming v2 not started", "account", a.Name, "err", err)
		return
	}
	s := l.session
	now := time.Now()
	days := topic.InboxDays(now)
	if first {
		days = catchUpDays(now, b.cfg.CatchUpDays)
	}
	b.subscribeInboxes(ctx, a.Name, s, n, days, now)
	b.subscribeBucket(ctx, a.Name, s, n)
	namings, err := b.reg.Namings(ctx, a.Name)
	if err != nil {
		b.log.Error("bridge: read contact naming", "account", a.Name, "err", err)
		return
	}
	contacts, err := b.reg.Contacts(ctx, a.Name)
	if err != nil {
		b.log.Error("bridge: read contacts", "account", a.Name, "err", err)
		return
	}
	for _, c := range contacts {
		if c.Pending() {
			continue
		}
		nm := namings[c.Passport]
		switch {
		case nm.Scheme == SchemeV2 && first:
			b.catchUp(ctx, s, n, c, nm, days)
		case nm.Scheme != SchemeUnknown:
		case !nm.CardSentAt.IsZero() && now.Sub(nm.CardSentAt) >= b.cfg.CardWait:
			b.fallBackToV1(ctx, a.Name, c)
		case nm.CardSentAt.IsZero() || now.Sub(nm.CardSentAt) >= cardResend:
			b.sendCard(ctx, s, a, n, c, nil, now)
		}
	}
}

// catchUpDays are the days from days ago to today's neighbour.
func catchUpDays(now time.Time, days int) []uint32 {
	today := topic.InboxDay(now)
	out := topic.InboxDays(now)
	for d := 1; d <= days && uint32(d) <= today; d++ {
		out = append(out, today-uint32(d))
	}
	return out
}

// subscribeInboxes subscribes the inboxes of days and unsubscribes those
// whose day (and overlap) is over.
func (b *Bridge) subscribeInboxes(ctx context.Context, account string, s *node.Session, n *accountNaming, days []uint32, now time.Time) {
	for _, d := range days {
		t := topic.Inbox(n.seed, d)
		if n.isInbox(t) {
			continue
		}
		if err := s.RegisterInbox(ctx, t); err != nil {
			b.log.Warn("bridge: subscribe inbox", "account", account, "err", err)
			continue
		}
		end := time.Unix(int64(d+1)*int64(topic.InboxPeriod/time.Second), 0).Add(topic.InboxOverlap)
		n.mu.Lock()
		n.inboxes[t] = end
		n.mu.Unlock()
	}
	n.mu.Lock()
	var over []topic.Topic
	for t, end := range n.inboxes {
		if now.After(end) {
			over = append(over, t)
		}
	}
	n.mu.Unlock()
	for _, t := range over {
		if err := s.Deregister(ctx, t); err != nil {
			b.log.Warn("bridge: unsubscribe a past inbox", "account", account, "err", err)
			continue
		}
		n.mu.Lock()
		delete(n.inboxes, t)
		n.mu.Unlock()
	}
}

// subscribeBucket subscribes the account's intro bucket at the node's
// current width, dropping the previous one when the width changed.
func (b *Bridge) subscribeBucket(ctx context.Context, account string, s *node.Session, n *accountNaming) {
	t := topic.IntroBucket(n.passport, s.BucketBits())
	if n.isBucket(t) {
		return
	}
	// A bucket is shared by its members, who keep and catch up its cards
	// like any topic (§16.4): an ordinary registration, not an inbox.
	if err := s.Register(ctx, t); err != nil {
		b.log.Warn("bridge: subscribe intro bucket", "account", account, "err", err)
		return
	}
	n.mu.Lock()
	old := n.bucket
	n.bucket = t
	n.mu.Unlock()
	if old != (topic.Topic{}) {
		if err := s.Deregister(ctx, old); err != nil {
			b.log.Warn("bridge: unsubscribe the previous intro bucket", "account", account, "err", err)
		}
	}
}

// catchUp asks the contact's node for what it holds on the account's
// inboxes of days (§16.6).
func (b *Bridge) catchUp(ctx context.Context, s *node.Session, n *accountNaming, c Contact, nm Naming, days []uint32) {
	if nm.Card == nil {
		return
	}
	from := node.PeerAddr{ID: nm.Card.Node, Addr: nm.Card.Addr}
	oldest := days[0]
	for _, d := range days {
		oldest = min(oldest, d)
	}
	since := time.Unix(int64(oldest)*int64(topic.InboxPeriod/time.Second), 0)
	for _, d := range days {
		if err := s.CatchUp(ctx, topic.Inbox(n.seed, d), from, since); err != nil {
			b.log.Debug("bridge: catch up an inbox", "account", c.Account, "from", from.ID, "err", err)
		}
	}
}

// fallBackToV1 makes a contact that never sent a card a v1 contact: the
// pair topic and the passport topic, registered by reconcile.
func (b *Bridge) fallBackToV1(ctx context.Context, account string, c Contact) {
	if err := b.reg.FallBackToV1(ctx, account, c.Passport); err != nil {
		b.log.Error("bridge: fall back to v1", "account", account, "err", err)
		return
	}
	b.log.Info("bridge: contact sent no card; mail to it uses the v1 pair topic", "account", account, "passport", c.Passport)
	b.out.wake()
}

// ownCard is the account's card as of now.
func (b *Bridge) ownCard(n *accountNaming, answer bool, now time.Time) card.Card {
	return card.Card{
		Scheme:   card.SchemeV2,
		Answer:   answer,
		Issued:   now,
		Passport: n.passport,
		Seed:     n.seed,
		Node:     b.node.ID(),
		Addr:     b.node.Gossip().Addr.String(),
	}
}

// sendCard seals the account's card to contact c and publishes it: to the
// contact's intro bucket, or, answering the contact's card to, straight
// to the contact's inbox of today, its node first.
func (b *Bridge) sendCard(ctx context.Context, s *node.Session, a Account, n *accountNaming, c Contact, to *card.Card, now time.Time) {
	sealed, err := card.Seal(rand.Reader, n.xkey(), c.SharedKey, b.ownCard(n, to != nil, now))
	if err != nil {
		b.log.Error("bridge: seal contact card", "account", a.Name, "err", err)
		return
	}
	t, hint := topic.IntroBucket(c.Passport, s.BucketBits()), (*node.PeerAddr)(nil)
	if to != nil {
		t, hint = topic.Inbox(to.Seed, topic.InboxDay(now)), &node.PeerAddr{ID: to.Node, Addr: to.Addr}
	}
	if err := s.PublishTo(ctx, t, hint, sealed); err != nil {
		b.log.Warn("bridge: send contact card", "account", a.Name, "to", c.Passport, "err", err)
		return
	}
	if err := b.reg.CardSent(ctx, a.Name, c.Passport, now); err != nil {
		b.log.Error("bridge: record contact card sent", "account", a.Name, "err", err)
	}
	b.log.Info("bridge: contact card sent", "account", a.Name, "to", c.Passport, "answer", to != nil)
}

// route is where mail to a contact goes: a v2 contact's inbox of the
// day, its node first (hint), or a v1 contact's pair topic (no hint).
type route struct {
	topic topic.Topic
	hint  *node.PeerAddr
}

// route is the contact's route now; errAwaitingCard while the contact's
// card has not come (nor CardWait passed).
func (d *deliverer) route(ctx context.Context, it mailstore.OutboxItem, c Contact) (route, error) {
	nm, err := d.b.reg.ContactNaming(ctx, it.Account, c.Passport)
	switch {
	case err != nil:
		return route{}, err
	case d.b.schemeOf(nm) == SchemeV1:
		return route{topic: c.Topic}, nil
	case nm.Scheme == SchemeV2 && nm.Card != nil:
		return route{topic: topic.Inbox(nm.Card.Seed, topic.InboxDay(time.Now())), hint: &node.PeerAddr{ID: nm.Card.Node, Addr: nm.Card.Addr}}, nil
	}
	return route{}, errAwaitingCard
}

// publish hands contents to the node on the route's topic.
func (r route) publish(ctx context.Context, s *node.Session, contents [][]byte) error {
	if r.hint == nil {
		return s.PublishBatch(ctx, r.topic, contents)
	}
	return s.PublishTo(ctx, r.topic, r.hint, contents...)
}

// openNamed opens a content that came on one of the account's inboxes:
// a contact's card, or a mail chunk whose sender is matched to a contact
// by its key (the inbox does not say who wrote). ok is false for content
// to drop.
func (w *inboundWorker) openNamed(ctx context.Context, n *accountNaming, m node.Stored) (Contact, mail.Chunk, bool, error) {
	sender, p, err := n.xkey().Open(m.Content)
	if err != nil {
		w.log.Debug("bridge: unreadable content on an inbox dropped", "err", err)
		w.report(ctx, m)
		return Contact{}, mail.Chunk{}, false, nil
	}
	if card.IsCard(p) {
		return Contact{}, mail.Chunk{}, false, w.takeCard(ctx, n, sender, p, m)
	}
	c, err := w.contactByKey(ctx, sender)
	if errors.Is(err, ErrNoContact) {
		w.log.Warn("bridge: mail on an inbox from no contact dropped", "sender", sender)
		return Contact{}, mail.Chunk{}, false, nil
	}
	if err != nil {
		return Contact{}, mail.Chunk{}, false, err
	}
	ch, err := chunkOf(sender, m.Content, p)
	if err != nil {
		w.log.Warn("bridge: malformed mail on an inbox dropped", "contact", c.Passport, "err", err)
		w.report(ctx, m)
		return Contact{}, mail.Chunk{}, false, nil
	}
	return c, ch, true, nil
}

// chunkOf decodes an opened payload as mail.Open does.
func chunkOf(sender keys.SharedKey, content, p []byte) (mail.Chunk, error) {
	if mail.IsLegacy(p) {
		return mail.Chunk{Sender: sender, ID: mail.LegacyID(content), Kind: mail.KindLegacyText, Count: 1, Total: uint32(len(p)), Data: p}, nil
	}
	ch, err := mail.DecodePayload(p)
	ch.Sender = sender
	return ch, err
}

// tryCard opens a content of the account's intro bucket: most are cards
// for other members of the bucket and do not open.
func (w *inboundWorker) tryCard(ctx context.Context, n *accountNaming, m node.Stored) error {
	if len(m.Content) != card.SealedSize {
		return nil
	}
	sender, p, err := n.xkey().Open(m.Content)
	if err != nil || !card.IsCard(p) {
		return nil
	}
	return w.takeCard(ctx, n, sender, p, m)
}

// takeCard verifies an opened card against the passport it names, records
// it and answers it. A card from a passport that is no contact of the
// account is dropped: adding the contact sends the account's own card,
// which the other side answers.
func (w *inboundWorker) takeCard(ctx context.Context, n *accountNaming, sender keys.SharedKey, p []byte, m node.Stored) error {
	c, err := card.Decode(p)
	if err != nil {
		w.log.Warn("bridge: malformed contact card dropped", "err", err)
		return nil
	}
	contact, err := w.b.reg.Contact(ctx, w.account, c.Passport)
	if errors.Is(err, ErrNoContact) || (err == nil && contact.Pending()) {
		w.log.Info("bridge: contact card from a passport not in the address book dropped", "passport", c.Passport)
		return nil
	}
	if err != nil {
		return err
	}
	pp, err := passport.Import(contact.Blocks, time.Now())
	if err != nil {
		return err
	}
	if err := card.Verify(c, sender, pp); err != nil {
		w.log.Warn("bridge: contact card not sealed by the passport it names dropped", "passport", c.Passport, "err", err)
		w.report(ctx, m)
		return nil
	}
	recorded, err := w.b.reg.TakeCard(ctx, w.account, c)
	if err != nil || !recorded {
		return err
	}
	w.log.Info("bridge: contact card received", "passport", c.Passport, "node", c.Node, "answer", c.Answer)
	w.b.out.wake()
	if !c.Answer {
		a, err := w.b.reg.Account(ctx, w.account)
		if err != nil {
			return err
		}
		w.b.sendCard(ctx, w.s, a, n, contact, &c, time.Now())
	}
	return nil
}

// schemeOf is how the bridge reaches a contact (Config.Scheme).
func (b *Bridge) schemeOf(nm Naming) Scheme { return b.cfg.Scheme(nm) }

// Scheme is how a bridge with this configuration reaches a contact whose
// naming record is nm: as recorded, or v1 for every contact when it speaks
// only v1. asmtpd-cli shows it in `contact list` and `status`.
func (c Config) Scheme(nm Naming) Scheme {
	if c.NamingV1 {
		return SchemeV1
	}
	return nm.Scheme
}

// keepPassport uploads the account's passport: in v2 without subscribing
// to its passport topic (no passport id in gossip, §16.3).
func (b *Bridge) keepPassport(ctx context.Context, s *node.Session, blocks []byte) error {
	if b.cfg.NamingV1 {
		_, err := s.PutPassport(ctx, blocks)
		return err
	}
	_, err := s.KeepPassport(ctx, blocks)
	return err
}
