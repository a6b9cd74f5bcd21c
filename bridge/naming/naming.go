package naming

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/card"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/noise"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
)

// Defaults of the naming settings.
const (
	// DefaultCardWait is how long mail to a new contact waits for its
	// card before the contact is taken for a v1 one. A day, as §16.5
	// retries a card at other bucket widths after a day.
	DefaultCardWait = 24 * time.Hour
	// DefaultCatchUpDays is how many past days of inbox topics are caught
	// up on start.
	DefaultCatchUpDays = 7
	// catchUpHold is how long the past days' inboxes stay subscribed
	// after a start: the contacts' nodes answer a catch-up only to a node
	// whose gossip subscribes to the inbox (§16.6, §16.7).
	catchUpHold = time.Hour
	// cardResend is how often the account's card goes again to the
	// bucket of a contact that did not answer.
	cardResend = 6 * time.Hour
)

// Config configures Accounts.
type Config struct {
	// CardWait is how long mail to a new contact waits for the contact's
	// card before the contact is taken for a v1 one. Default
	// DefaultCardWait.
	CardWait time.Duration
	// CatchUpDays is how many past days of the accounts' inboxes are
	// caught up from their contacts' nodes on start. Default
	// DefaultCatchUpDays.
	CatchUpDays int
	// NodeKey unseals the accounts' shared secrets.
	NodeKey ed25519.PrivateKey
	// WakeOutbound wakes the delivery worker: mail waiting for a card may
	// go now.
	WakeOutbound func()
	// Logger receives the logs. Default slog.Default().
	Logger *slog.Logger
}

// Accounts is the naming-v2 state of the bridge's accounts on one node.
type Accounts struct {
	cfg  Config
	log  *slog.Logger
	reg  *accounts.Registry
	node *node.Node

	mu     sync.Mutex
	byName map[string]*Account
}

// New is the naming-v2 state of reg's accounts, users of n.
func New(cfg Config, reg *accounts.Registry, n *node.Node) *Accounts {
	if cfg.CardWait <= 0 {
		cfg.CardWait = DefaultCardWait
	}
	if cfg.CatchUpDays <= 0 {
		cfg.CatchUpDays = DefaultCatchUpDays
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.WakeOutbound == nil {
		cfg.WakeOutbound = func() {}
	}
	return &Accounts{cfg: cfg, log: cfg.Logger, reg: reg, node: n, byName: make(map[string]*Account)}
}

// Account is an account's naming-v2 state on the node; it is the inbound
// worker's inbound.Naming. The goroutine that reconciles writes it, the
// account's inbound worker reads it.
type Account struct {
	b        *Accounts
	account  string
	session  *node.Session
	passport passport.Hash

	mu       sync.Mutex
	seed     topic.InboxSeed // a new one after a contact was removed (refreshSeed)
	caughtUp bool            // the past days' inboxes were caught up since the start
	key      noise.XKey      // the account's shared secret: opens cards and inbox mail
	oldKey   *noise.XKey     // the secret before the last rotation: opens what contacts sealed before they learned of it
	blocks   []byte          // the passport the key was read with
	bucket   topic.Topic     // the account's own intro bucket, subscribed
	previous topic.Topic     // the bucket at the width before the last change, kept until prevEnd
	prevEnd  time.Time
	inboxes  map[topic.Topic]time.Time // subscribed inbox topics, with the end of their day (+ overlap)
}

// Seed is the account's inbox seed.
func (n *Account) Seed() topic.InboxSeed {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.seed
}

// told is what a card sent now tells a contact: the seed, and the passport
// whose key seals it.
func (n *Account) told() (topic.InboxSeed, []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.seed, n.blocks
}

// IsInbox reports whether t is one of the account's subscribed inboxes.
func (n *Account) IsInbox(t topic.Topic) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.inboxes[t]
	return ok
}

// IsBucket reports whether t is the account's intro bucket.
func (n *Account) IsBucket(t topic.Topic) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return t == n.bucket || (t == n.previous && n.previous != topic.Topic{})
}

// Topics are the account's subscribed inboxes and its bucket.
func (n *Account) Topics() []topic.Topic {
	n.mu.Lock()
	defer n.mu.Unlock()
	ts := []topic.Topic{n.bucket}
	if n.previous != (topic.Topic{}) {
		ts = append(ts, n.previous)
	}
	for t := range n.inboxes {
		ts = append(ts, t)
	}
	return ts
}

// Key is the account's current shared secret.
func (n *Account) Key() noise.XKey {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.key
}

// Open opens a content sealed to the account's current shared key or, a
// contact not having learned of the last rotation yet, to the one before.
func (n *Account) Open(sealed []byte) (keys.SharedKey, []byte, error) {
	n.mu.Lock()
	key, old := n.key, n.oldKey
	n.mu.Unlock()
	sender, p, err := key.Open(sealed)
	if err != nil && old != nil {
		if s, q, oldErr := old.Open(sealed); oldErr == nil {
			return s, q, nil
		}
	}
	return sender, p, err
}

// Start reads the account's seed (drawn the first time) and key when it
// comes on the node (presence.Config.Attached); nil when the seed cannot
// be read (logged: the account then receives only from v1 contacts until
// the next start).
func (b *Accounts) Start(ctx context.Context, a accounts.Account, s *node.Session) *Account {
	seed, err := b.reg.InboxSeed(ctx, b.cfg.NodeKey, a.Name)
	if err != nil {
		b.log.Error("bridge: naming v2 not started: inbox seed", "account", a.Name, "err", err)
		return nil
	}
	n := &Account{b: b, account: a.Name, session: s, seed: seed, passport: a.Passport, inboxes: make(map[topic.Topic]time.Time)}
	if err := n.refreshKey(ctx, a); err != nil {
		b.log.Error("bridge: naming v2 not started: account key", "account", a.Name, "err", err)
		return nil
	}
	b.mu.Lock()
	b.byName[a.Name] = n
	b.mu.Unlock()
	return n
}

// Reconciled is the naming-v2 step of each reconcile of account a
// (presence.Config.Reconciled).
func (b *Accounts) Reconciled(ctx context.Context, a accounts.Account, _ *node.Session) {
	b.mu.Lock()
	n := b.byName[a.Name]
	b.mu.Unlock()
	if n != nil {
		b.reconcileNaming(ctx, a, n)
	}
}

// refreshKey reads the account's shared secret again when its passport
// changed (a rotation), keeping the one before to open what contacts
// sealed before they learned of the rotation, and gives the node the new
// passport, which answers lookups with it.
func (n *Account) refreshKey(ctx context.Context, a accounts.Account) error {
	n.mu.Lock()
	first := n.blocks == nil
	same := !first && string(n.blocks) == string(a.Blocks)
	n.mu.Unlock()
	if same {
		return nil
	}
	s, err := n.b.reg.Secrets(ctx, n.b.cfg.NodeKey, a.Name)
	if err != nil {
		return err
	}
	if !first {
		if _, err := n.session.KeepPassport(ctx, a.Blocks); err != nil {
			return fmt.Errorf("keep the rotated passport: %w", err)
		}
	}
	n.mu.Lock()
	if !first {
		old := n.key
		n.oldKey = &old
	}
	n.key, n.blocks = noise.NewXKey(s.SharedSecret), append([]byte(nil), a.Blocks...)
	n.mu.Unlock()
	return nil
}

// reconcileNaming subscribes the account's inboxes and bucket, sends its
// card to contacts that have not answered, and makes contacts that never
// answered v1 contacts. The first time after a start it catches up the
// past days' inboxes from the contacts' nodes.
func (b *Accounts) reconcileNaming(ctx context.Context, a accounts.Account, n *Account) {
	if err := n.refreshKey(ctx, a); err != nil {
		b.log.Warn("bridge: naming v2 key not read", "account", a.Name, "err", err)
		return
	}
	s := n.session
	if err := b.refreshSeed(ctx, s, n); err != nil {
		b.log.Warn("bridge: naming v2 inbox seed not read", "account", a.Name, "err", err)
		return
	}
	now := time.Now()
	n.mu.Lock()
	first := !n.caughtUp
	n.caughtUp = true
	n.mu.Unlock()
	days := topic.InboxDays(now)
	if first {
		days = catchUpDays(now, b.cfg.CatchUpDays)
	}
	b.subscribeInboxes(ctx, a.Name, s, n, days, now)
	b.subscribeBucket(ctx, a.Name, s, n, now)
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
	sent, err := b.reg.SentTo(ctx, a.Name)
	if err != nil {
		b.log.Error("bridge: read what the contacts were told", "account", a.Name, "err", err)
		return
	}
	for _, c := range contacts {
		if c.Pending() {
			continue
		}
		nm := namings[c.Passport]
		if nm.Scheme == accounts.SchemeV2 {
			told, known := sent[c.Passport]
			b.tellChanges(ctx, s, n, c, nm, told, known, now)
		}
		switch {
		case nm.Scheme == accounts.SchemeV2 && first:
			b.catchUp(ctx, s, n, c, nm, days)
		case nm.Scheme != accounts.SchemeUnknown:
		case !nm.CardSentAt.IsZero() && now.Sub(nm.CardSentAt) >= b.cfg.CardWait:
			b.fallBackToV1(ctx, a.Name, c)
		case nm.CardSentAt.IsZero() || now.Sub(nm.CardSentAt) >= cardResend:
			b.sendCard(ctx, s, n, c, nil, now)
		}
	}
}

// refreshSeed reads the account's inbox seed again: a removed contact
// retired it (accounts.Registry.RemoveContact), and InboxSeed draws a new
// one. The old seed's inboxes are deregistered at once, so the removed
// contact, which can still compute them, no longer finds the account's
// node subscribed; subscribeInboxes then subscribes the new ones and
// tellChanges sends the remaining contacts a card with the new seed.
func (b *Accounts) refreshSeed(ctx context.Context, s *node.Session, n *Account) error {
	seed, err := b.reg.InboxSeed(ctx, b.cfg.NodeKey, n.account)
	if err != nil {
		return err
	}
	if seed != n.Seed() {
		if err := leaveInboxes(ctx, s, n); err != nil {
			return err
		}
		n.mu.Lock()
		n.seed = seed
		n.mu.Unlock()
		b.log.Info("bridge: new inbox seed (a contact was removed)", "account", n.account)
	}
	return b.leaveRetiredSeeds(ctx, s, n.account, time.Now())
}

// leaveInboxes deregisters the inboxes subscribed since the start.
func leaveInboxes(ctx context.Context, s *node.Session, n *Account) error {
	n.mu.Lock()
	old := make([]topic.Topic, 0, len(n.inboxes))
	for t := range n.inboxes {
		old = append(old, t)
	}
	n.mu.Unlock()
	for _, t := range old {
		if err := s.Deregister(ctx, t); err != nil {
			return fmt.Errorf("deregister an inbox of the old seed: %w", err)
		}
		n.mu.Lock()
		delete(n.inboxes, t)
		n.mu.Unlock()
	}
	return nil
}

// maxRetiredDays bounds the days of a retired seed whose inboxes are
// deregistered.
const maxRetiredDays = 32

// leaveRetiredSeeds deregisters the inboxes of the retired seeds, then
// forgets them. The node keeps registrations across restarts, so an
// earlier run (or the run before a removal made while the daemon was
// down) may have left any day from CatchUpDays before the retirement to
// tomorrow registered.
func (b *Accounts) leaveRetiredSeeds(ctx context.Context, s *node.Session, account string, now time.Time) error {
	retired, err := b.reg.RetiredInboxSeeds(ctx, b.cfg.NodeKey, account)
	if err != nil {
		return err
	}
	for _, rs := range retired {
		last := topic.InboxDay(now) + 1
		first := topic.InboxDay(rs.RetiredAt) - uint32(b.cfg.CatchUpDays) - 1
		if first > last || last-first > maxRetiredDays {
			first = last - maxRetiredDays
		}
		for d := first; d <= last; d++ {
			if err := s.Deregister(ctx, topic.Inbox(rs.Seed, d)); err != nil {
				return fmt.Errorf("deregister an inbox of a retired seed: %w", err)
			}
		}
		if err := b.reg.ForgetRetiredInboxSeed(ctx, account, rs); err != nil {
			return err
		}
	}
	return nil
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
func (b *Accounts) subscribeInboxes(ctx context.Context, account string, s *node.Session, n *Account, days []uint32, now time.Time) {
	for _, d := range days {
		t := topic.Inbox(n.Seed(), d)
		if n.IsInbox(t) {
			continue
		}
		if err := s.RegisterInbox(ctx, t); err != nil {
			b.log.Warn("bridge: subscribe inbox", "account", account, "err", err)
			continue
		}
		end := time.Unix(int64(d+1)*int64(topic.InboxPeriod/time.Second), 0).Add(topic.InboxOverlap)
		if hold := now.Add(catchUpHold); end.Before(hold) {
			end = hold // a past day: subscribed while it is caught up
		}
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
// current width. When the width changes, the previous bucket stays
// subscribed for a day (node.BucketHold): senders whose estimate has not
// moved yet still send there (§16.4).
func (b *Accounts) subscribeBucket(ctx context.Context, account string, s *node.Session, n *Account, now time.Time) {
	t := topic.IntroBucket(n.passport, s.BucketBits())
	n.mu.Lock()
	current, previous, prevEnd := n.bucket, n.previous, n.prevEnd
	n.mu.Unlock()
	if previous != (topic.Topic{}) && now.After(prevEnd) && previous != t {
		if err := s.Deregister(ctx, previous); err != nil {
			b.log.Warn("bridge: unsubscribe the previous intro bucket", "account", account, "err", err)
		} else {
			n.mu.Lock()
			n.previous = topic.Topic{}
			n.mu.Unlock()
		}
	}
	if t == current {
		return
	}
	// A bucket is shared by its members, who keep and catch up its cards
	// like any topic (§16.4): an ordinary registration, not an inbox.
	if err := s.Register(ctx, t); err != nil {
		b.log.Warn("bridge: subscribe intro bucket", "account", account, "err", err)
		return
	}
	n.mu.Lock()
	n.bucket = t
	if current != (topic.Topic{}) {
		n.previous, n.prevEnd = current, now.Add(node.BucketHold)
	}
	n.mu.Unlock()
}

// catchUp asks the contact's node for what it holds on the account's
// inboxes of days (§16.6).
func (b *Accounts) catchUp(ctx context.Context, s *node.Session, n *Account, c accounts.Contact, nm accounts.Naming, days []uint32) {
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
		if err := s.CatchUp(ctx, topic.Inbox(n.Seed(), d), from, since); err != nil {
			b.log.Debug("bridge: catch up an inbox", "account", c.Account, "from", from.ID, "err", err)
		}
	}
}

// fallBackToV1 makes a contact that never sent a card a v1 contact: the
// pair topic and the passport topic, registered by reconcile.
func (b *Accounts) fallBackToV1(ctx context.Context, account string, c accounts.Contact) {
	if err := b.reg.FallBackToV1(ctx, account, c.Passport); err != nil {
		b.log.Error("bridge: fall back to v1", "account", account, "err", err)
		return
	}
	b.log.Info("bridge: contact sent no card; mail to it uses the v1 pair topic", "account", account, "passport", c.Passport)
	b.cfg.WakeOutbound()
}

// ownCard is the account's card as of now.
func (b *Accounts) ownCard(n *Account, answer bool, now time.Time) card.Card {
	return card.Card{
		Scheme:   card.SchemeV2,
		Answer:   answer,
		Issued:   now,
		Passport: n.passport,
		Seed:     n.Seed(),
		Node:     b.node.ID(),
		Addr:     b.node.Gossip().Addr.String(),
	}
}

// sendCard seals the account's card to contact c and publishes it: to the
// contact's intro bucket, or, answering the contact's card to, straight
// to the contact's inbox of today, its node first.
func (b *Accounts) sendCard(ctx context.Context, s *node.Session, n *Account, c accounts.Contact, to *card.Card, now time.Time) {
	sealed, err := card.Seal(rand.Reader, n.Key(), c.SharedKey, b.ownCard(n, to != nil, now))
	if err != nil {
		b.log.Error("bridge: seal contact card", "account", n.account, "err", err)
		return
	}
	t, hint := topic.IntroBucket(c.Passport, s.BucketBits()), (*node.PeerAddr)(nil)
	if to != nil {
		t, hint = topic.Inbox(to.Seed, topic.InboxDay(now)), &node.PeerAddr{ID: to.Node, Addr: to.Addr}
	}
	if err := s.PublishTo(ctx, t, hint, sealed); err != nil {
		b.log.Warn("bridge: send contact card", "account", n.account, "to", c.Passport, "err", err)
		return
	}
	if err := b.reg.CardSent(ctx, n.account, c.Passport, now); err != nil {
		b.log.Error("bridge: record contact card sent", "account", n.account, "err", err)
	}
	// The card went sealed with the key of the passport the contact
	// verified it against: that passport is the one it holds.
	seed, blocks := n.told()
	if err := b.reg.RecordSent(ctx, n.account, c.Passport, &seed, blocks); err != nil {
		b.log.Error("bridge: record contact card sent", "account", n.account, "err", err)
	}
	b.log.Info("bridge: contact card sent", "account", n.account, "to", c.Passport, "answer", to != nil)
}

// TakeCard verifies an opened card against the passport it names, records
// it and answers it. A card from a passport that is no contact of the
// account is dropped: adding the contact sends the account's own card,
// which the other side answers.
func (n *Account) TakeCard(ctx context.Context, sender keys.SharedKey, p []byte) (forged bool, err error) {
	log := n.b.log.With("account", n.account)
	c, err := card.Decode(p)
	if err != nil {
		log.Warn("bridge: malformed contact card dropped", "err", err)
		return true, nil
	}
	contact, err := n.b.reg.Contact(ctx, n.account, c.Passport)
	if errors.Is(err, accounts.ErrNoContact) || (err == nil && contact.Pending()) {
		log.Info("bridge: contact card from a passport not in the address book dropped", "passport", c.Passport)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	pp, err := passport.Import(contact.Blocks, time.Now())
	if err != nil {
		return false, err
	}
	if err := card.Verify(c, sender, pp); err != nil {
		log.Warn("bridge: contact card not sealed by the passport it names dropped", "passport", c.Passport, "err", err)
		return true, nil
	}
	recorded, err := n.b.reg.TakeCard(ctx, n.account, c)
	if err != nil || !recorded {
		return false, err
	}
	log.Info("bridge: contact card received", "passport", c.Passport, "node", c.Node, "answer", c.Answer)
	n.b.cfg.WakeOutbound()
	if !c.Answer {
		n.b.sendCard(ctx, n.session, n, contact, &c, time.Now())
	}
	return false, nil
}
