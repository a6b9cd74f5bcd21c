// Package presence keeps the node in step with the account registry: each
// account's device key is a node user, attached, with its passport
// uploaded (so others can fetch it); each contact's topic is registered
// (and its passport uploaded, so the node follows its updates), a rotated
// contact's old topic for its grace period; topics no longer needed are
// deregistered; and contacts' passports are fetched from the network, for
// pending contacts and shared-key rotations. The bridge calls Reconcile at
// start and at each registry change, and runs FollowLoop beside it.
package presence

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"

	"github.com/asmtp/asmtp/bridge/accounts"
)

// Registry is what a Roster reads and writes of the account registry (an
// *accounts.Registry).
type Registry interface {
	Accounts(ctx context.Context) ([]accounts.Account, error)
	Account(ctx context.Context, name string) (accounts.Account, error)
	Contacts(ctx context.Context, account string) ([]accounts.Contact, error)
	RotatedContacts(ctx context.Context, account string, graceStart time.Time) ([]accounts.Contact, error)
	RetiredTopics(ctx context.Context, account string, graceStart time.Time) ([]topic.Topic, error)
	ForgetRetiredTopic(ctx context.Context, account string, t topic.Topic) error
	UpdateContactPassport(ctx context.Context, account string, id passport.Hash, blocks []byte) (accounts.Contact, bool, error)
	Namings(ctx context.Context, account string) (map[passport.Hash]accounts.Naming, error)
}

// Node is the node the accounts are users of (a *node.Node).
type Node interface {
	AddUser(key keys.PublicKey)
	Attach(user keys.PublicKey) (*node.Session, error)
}

// Config configures a Roster.
type Config struct {
	// Domain of the pseudo-addresses, for the logs.
	Domain string
	// RefreshInterval is how often FollowLoop looks for contacts'
	// passports when not kicked.
	RefreshInterval time.Duration
	// RotationGrace is how long a rotated contact's old topic stays
	// registered.
	RotationGrace time.Duration
	// Attached, when set, is called once for each account that comes on
	// the node, with its session, from the goroutine that calls Reconcile;
	// it returns what wakes the account's reader of that session
	// (WakeAll), or nil.
	Attached func(ctx context.Context, a accounts.Account, s *node.Session) (wake func())
	// NamingV1 keeps every contact on naming v1 (PROTOCOL.md §11): the
	// passports are uploaded with their topics and every contact's pair
	// topic is registered. Otherwise (naming v2, §16) passports are kept
	// without their topics and only v1 contacts' pair topics are
	// registered.
	NamingV1 bool
	// Reconciled, when set, is called after each account's reconcile and
	// RetireAll, with its session: the bridge's naming-v2 step (inboxes,
	// intro bucket, contact cards).
	Reconciled func(ctx context.Context, a accounts.Account, s *node.Session)
	// Logger receives the logs. Default slog.Default().
	Logger *slog.Logger
}

// Roster is the registry's accounts on the node: which are attached, and
// the topics each registered.
type Roster struct {
	cfg  Config
	log  *slog.Logger
	reg  Registry
	node Node

	mu       sync.Mutex
	accounts map[string]*attached // by account name
}

// attached is an account on the node: its session and what it registered.
type attached struct {
	session *node.Session
	wake    func() // wakes the account's reader
	// registered are the topics registered by this process; only the goroutine
	// that calls Reconcile touches it.
	registered map[topic.Topic]bool
}

// New keeps n in step with reg. Nothing happens before Reconcile.
func New(cfg Config, reg Registry, n Node) *Roster {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Roster{cfg: cfg, log: log, reg: reg, node: n, accounts: make(map[string]*attached)}
}

// Close closes the accounts' node sessions.
func (p *Roster) Close() {
	p.mu.Lock()
	for _, l := range p.accounts {
		l.session.Close()
	}
	p.accounts = nil
	p.mu.Unlock()
}

// Reconcile brings the node in line with the registry. Everything it does
// is idempotent; what fails is logged and tried again at the next change.
func (p *Roster) Reconcile(ctx context.Context) {
	accounts, err := p.reg.Accounts(ctx)
	if err != nil {
		p.log.Error("bridge: read accounts", "err", err)
		return
	}
	for _, a := range accounts {
		l, err := p.attach(ctx, a)
		if err != nil {
			p.log.Warn("bridge: account not on the node yet", "account", a.Name, "err", err)
			continue
		}
		if p.cfg.Reconciled != nil {
			p.cfg.Reconciled(ctx, a, l.session)
		}
		p.registerContacts(ctx, a.Name, l)
		p.retireTopics(ctx, a.Name, l)
	}
}

// RetireAll deregisters the retired topics of the accounts on the node.
func (p *Roster) RetireAll(ctx context.Context) {
	p.mu.Lock()
	onNode := make(map[string]*attached, len(p.accounts))
	for name, l := range p.accounts {
		onNode[name] = l
	}
	p.mu.Unlock()
	for name, l := range onNode {
		p.retireTopics(ctx, name, l)
		if a, err := p.reg.Account(ctx, name); err == nil && p.cfg.Reconciled != nil {
			p.cfg.Reconciled(ctx, a, l.session) // the day's inbox, cards not answered
		}
	}
}

// attach makes the account's device key a node user, attaches it and
// uploads the account's passport (so others can fetch it), once.
func (p *Roster) attach(ctx context.Context, a accounts.Account) (*attached, error) {
	p.mu.Lock()
	l := p.accounts[a.Name]
	p.mu.Unlock()
	if l != nil {
		return l, nil
	}
	p.node.AddUser(a.Device)
	s, err := p.node.Attach(a.Device)
	if err != nil {
		return nil, err
	}
	if err := p.keepPassport(ctx, s, a.Blocks); err != nil {
		s.Close()
		return nil, fmt.Errorf("upload passport: %w", err)
	}
	l = &attached{session: s, registered: make(map[topic.Topic]bool), wake: func() {}}
	if p.cfg.Attached != nil {
		if wake := p.cfg.Attached(ctx, a, s); wake != nil {
			l.wake = wake
		}
	}
	p.mu.Lock()
	p.accounts[a.Name] = l
	p.mu.Unlock()
	p.log.Info("bridge: account on the node", "account", a.Name, "address", a.Address(p.cfg.Domain), "device", a.Device)
	return l, nil
}

// registerContacts registers the topics of the account's contacts, and
// uploads their passports so the node applies their updates. Registering
// makes the node fetch what the contact already sent from other nodes.
func (p *Roster) registerContacts(ctx context.Context, account string, l *attached) {
	contacts, err := p.reg.Contacts(ctx, account)
	if err != nil {
		p.log.Error("bridge: read contacts", "account", account, "err", err)
		return
	}
	namings, err := p.reg.Namings(ctx, account)
	if err != nil {
		p.log.Error("bridge: read contact naming", "account", account, "err", err)
		return
	}
	for _, c := range contacts {
		// Only a v1 contact has a pair topic and a passport topic (§16.8).
		v1 := p.scheme(namings[c.Passport]) == accounts.SchemeV1
		if !v1 && l.registered[c.Topic] {
			p.dropPairTopic(ctx, account, l, c) // a v1 contact whose card came late
		}
		if c.Pending() || l.registered[c.Topic] || !v1 {
			continue
		}
		if _, err := l.session.PutPassport(ctx, c.Blocks); err != nil {
			p.log.Warn("bridge: upload contact passport", "account", account, "passport", c.Passport, "err", err)
			continue
		}
		if err := l.session.Register(ctx, c.Topic); err != nil {
			p.log.Warn("bridge: register contact topic", "account", account, "passport", c.Passport, "err", err)
			continue
		}
		l.registered[c.Topic] = true
		p.log.Info("bridge: contact topic registered", "account", account, "passport", c.Passport)
	}
	// A rotated contact's old topic stays registered for its grace period,
	// also across a restart (registering again makes the node catch up on
	// it, fetching what the contact sent there while the node was down).
	rotated, err := p.reg.RotatedContacts(ctx, account, p.graceStart())
	if err != nil {
		p.log.Error("bridge: read rotated contacts", "account", account, "err", err)
		return
	}
	for _, c := range rotated {
		if l.registered[c.Topic] || p.scheme(namings[c.Passport]) != accounts.SchemeV1 {
			continue
		}
		if err := l.session.Register(ctx, c.Topic); err != nil {
			p.log.Warn("bridge: register a rotated contact's old topic", "account", account, "passport", c.Passport, "err", err)
			continue
		}
		l.registered[c.Topic] = true
		p.log.Info("bridge: rotated contact's old topic registered for its grace period", "account", account, "passport", c.Passport)
	}
}

// retireTopics deregisters the topics of removed contacts, and of
// replaced shared keys once their grace period is over. A topic is
// forgotten only after the node deregistered it, so a crash in between
// deregisters it again at the next start.
func (p *Roster) retireTopics(ctx context.Context, account string, l *attached) {
	topics, err := p.reg.RetiredTopics(ctx, account, p.graceStart())
	if err != nil {
		p.log.Error("bridge: read retired topics", "account", account, "err", err)
		return
	}
	for _, t := range topics {
		if err := l.session.Deregister(ctx, t); err != nil {
			p.log.Warn("bridge: deregister topic", "account", account, "err", err)
			continue
		}
		delete(l.registered, t)
		if err := p.reg.ForgetRetiredTopic(ctx, account, t); err != nil {
			p.log.Error("bridge: forget retired topic", "account", account, "err", err)
		}
	}
}

// FollowLoop runs follow when kicked (after each reconcile) and every
// RefreshInterval.
func (p *Roster) FollowLoop(ctx context.Context, kick <-chan struct{}) {
	t := time.NewTicker(p.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-t.C:
		}
		p.follow(ctx)
	}
}

// follow fetches each contact's passport from the node, which asks the
// network for the ones it lacks (pending contacts) and applies the updates
// published on the topics of those it has. A copy that extends the stored
// one is recorded; the registry change then makes reconcile register the
// new topic (the old one is kept for RotationGrace). It runs beside
// reconcile because fetching from the network may take
// Config.PassportTimeout of the node per contact.
func (p *Roster) follow(ctx context.Context) {
	p.mu.Lock()
	sessions := make(map[string]*node.Session, len(p.accounts))
	for name, l := range p.accounts {
		sessions[name] = l.session
	}
	p.mu.Unlock()
	for account, s := range sessions {
		contacts, err := p.reg.Contacts(ctx, account)
		if err != nil {
			p.log.Error("bridge: read contacts", "account", account, "err", err)
			continue
		}
		for _, c := range contacts {
			blocks, err := s.GetPassport(ctx, c.Passport)
			if err != nil {
				p.log.Debug("bridge: contact passport not available", "account", account, "passport", c.Passport, "err", err)
				continue
			}
			if bytes.Equal(blocks, c.Blocks) {
				continue
			}
			updated, changed, err := p.reg.UpdateContactPassport(ctx, account, c.Passport, blocks)
			switch {
			case err != nil:
				p.log.Warn("bridge: contact passport not taken", "account", account, "passport", c.Passport, "err", err)
			case changed && c.Pending():
				p.log.Info("bridge: contact passport fetched", "account", account, "passport", c.Passport)
			case changed && updated.SharedKey != c.SharedKey:
				p.log.Info("bridge: contact rotated its shared key", "account", account, "passport", c.Passport)
			}
		}
	}
}

// graceStart is when a rotation must have been made for its old topic to
// be still in its grace period.
func (p *Roster) graceStart() time.Time { return time.Now().Add(-p.cfg.RotationGrace) }

// Session is the account's node session, or nil before it is attached.
func (p *Roster) Session(account string) *node.Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.accounts[account]; l != nil {
		return l.session
	}
	return nil
}

// WakeAll tells every account's reader (Config.Attached) that topics may
// have been registered.
func (p *Roster) WakeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.accounts {
		l.wake()
	}
}

// scheme is how the account reaches a contact whose naming record is nm.
func (p *Roster) scheme(nm accounts.Naming) accounts.Scheme {
	if p.cfg.NamingV1 {
		return accounts.SchemeV1
	}
	return nm.Scheme
}

// keepPassport uploads the account's passport: in v2 without subscribing
// to its passport topic (no passport id in gossip, §16.3).
func (p *Roster) keepPassport(ctx context.Context, s *node.Session, blocks []byte) error {
	var err error
	if p.cfg.NamingV1 {
		_, err = s.PutPassport(ctx, blocks)
	} else {
		_, err = s.KeepPassport(ctx, blocks)
	}
	return err
}

// dropPairTopic deregisters the pair topic of a contact that became a v2
// contact (its card came after the fallback to v1), so that gossip stops
// showing the pair.
func (p *Roster) dropPairTopic(ctx context.Context, account string, l *attached, c accounts.Contact) {
	if err := l.session.Deregister(ctx, c.Topic); err != nil {
		p.log.Warn("bridge: deregister the pair topic of a contact now on v2", "account", account, "err", err)
		return
	}
	delete(l.registered, c.Topic)
	p.log.Info("bridge: contact now on v2; pair topic dropped", "account", account, "passport", c.Passport)
}
