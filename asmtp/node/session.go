package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// Cursor is a node-assigned position in the store: every stored message
// gets a larger cursor than all before it, on every topic. Query with the
// cursor of the last message you have to get what follows; 0 is the start.
type Cursor int64

// Stored is a topic message as the node keeps it.
type Stored struct {
	Cursor     Cursor
	Topic      topic.Topic
	Content    []byte
	ReceivedAt time.Time // node clock, second precision
}

// Delivery is a message pushed live to a session.
type Delivery struct {
	Stored
	// Missed counts deliveries dropped just before this one because the
	// session's channel was full. They are not lost: they are in the store,
	// and Query from the last cursor you handled returns them.
	Missed int
}

// QueryPageBytes bounds the content one Session.Query answer holds (up to
// one message more), so that reading a backlog of big messages costs a
// few MiB at a time, not QueryLimit times 64 KiB.
const QueryPageBytes = 4 << 20

// Session is one local user's handle on the node: the single API behind
// both the in-process bridge and remote devices' wire links. Its methods
// are safe for concurrent use.
type Session struct {
	n    *Node
	user keys.PublicKey

	mu     sync.Mutex
	ch     chan Delivery
	closed bool
	// held is the latest delivery that did not fit in ch, waiting for
	// handOver; missed counts those dropped before it (handOver).
	held    *Delivery
	missed  int
	replace chan struct{} // held was replaced: handOver takes the new one
	stop    chan struct{} // closed by Close: handOver gives up
	handing sync.WaitGroup
}

// Attach opens a session for a local user (a key in Config.Users or added
// with AddUser).
func (n *Node) Attach(user keys.PublicKey) (*Session, error) {
	if n.closed.Load() {
		return nil, ErrClosed
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.users[user]; !ok {
		return nil, fmt.Errorf("attach %s: %w", user, ErrNotUser)
	}
	if len(n.sessions[user]) >= MaxSessionsPerUser {
		return nil, fmt.Errorf("attach %s: %d sessions already open", user, MaxSessionsPerUser)
	}
	s := &Session{n: n, user: user, ch: make(chan Delivery, n.cfg.DeliveryQueueSize), replace: make(chan struct{}, 1), stop: make(chan struct{})}
	if n.sessions[user] == nil {
		n.sessions[user] = make(map[*Session]struct{})
	}
	n.sessions[user][s] = struct{}{}
	return s, nil
}

// User is the session's user key.
func (s *Session) User() keys.PublicKey { return s.user }

// check fails once the session or node closed or the user was removed.
func (s *Session) check() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || s.n.closed.Load() {
		return ErrClosed
	}
	if !s.n.isUser(s.user) {
		return fmt.Errorf("session of %s: %w", s.user, ErrNotUser)
	}
	return nil
}

// Deliveries returns the channel of live pushes: every new message on a
// topic this user registered, except the session's own publications. The
// channel holds Config.DeliveryQueueSize deliveries; when the consumer
// falls behind, the latest delivery waits for room and those before it
// are dropped (never from the store): it reports how many were missed, so
// the consumer can Query from its last cursor. It comes as soon as there
// is room, whether or not anything new is stored: a consumer that drains
// the channel always learns what it missed. The channel is closed when the
// session closes.
func (s *Session) Deliveries() <-chan Delivery { return s.ch }

// Close ends the session and closes its delivery channel.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.stop)
	s.mu.Unlock()
	s.handing.Wait() // no send on ch after this
	close(s.ch)
	s.n.mu.Lock()
	delete(s.n.sessions[s.user], s)
	if len(s.n.sessions[s.user]) == 0 {
		delete(s.n.sessions, s.user)
	}
	s.n.mu.Unlock()
}

// push queues d for the consumer. While a delivery is held (the channel
// was full), d replaces it, so that deliveries keep their order and the
// consumer hears of the drops with the latest one.
func (s *Session) push(d Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.held == nil {
		select {
		case s.ch <- d:
			return
		default:
		}
		s.handing.Add(1)
		go s.handOver()
	} else {
		s.missed++ // the held one is dropped for d
		select {
		case s.replace <- struct{}{}:
		default:
		}
	}
	s.held = &d
}

// handOver waits for room in the channel and hands over the held delivery,
// with the count of those dropped before it, until none is held. (A
// delivery replaced just as it went out is counted as missed too: the
// count may be high, never low.)
func (s *Session) handOver() {
	defer s.handing.Done()
	for {
		s.mu.Lock()
		held := s.held
		d := *held
		d.Missed = s.missed
		s.mu.Unlock()
		select {
		case s.ch <- d:
		case <-s.replace:
			continue
		case <-s.stop:
			return
		}
		s.mu.Lock()
		s.missed -= d.Missed
		done := s.held == held
		if done {
			s.held = nil
		}
		s.mu.Unlock()
		if done {
			return
		}
	}
}

// Register subscribes the user to t: the node keeps t's messages, pushes
// new ones to the user's sessions, subscribes the overlay at once (its
// gossip is re-signed) and fetches t's history from other subscribers.
// It returns once the registration is durably stored.
func (s *Session) Register(ctx context.Context, t topic.Topic) error {
	if err := s.check(); err != nil {
		return err
	}
	n := s.n
	if err := n.overlay.subscribe(t, time.Now()); err != nil {
		return fmt.Errorf("register %s: %w", t, err)
	}
	if err := n.store.Register(ctx, s.user, t); err != nil {
		n.unsubscribeUnused(t)
		return err
	}
	if n.addRegistration(s.user, t) && !n.isInbox(t) {
		n.scheduleCatchUp(catchUp{topic: t, since: time.Now().Add(-n.cfg.Retention)})
	}
	return nil
}

// Deregister removes the user's registration of t; the node unsubscribes
// when no user or stored passport needs t any more. Stored messages stay
// until they expire.
func (s *Session) Deregister(ctx context.Context, t topic.Topic) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.n.store.Deregister(ctx, s.user, t); err != nil {
		return err
	}
	if s.n.removeRegistration(s.user, t) {
		s.n.unmarkInbox(t)
		s.n.unsubscribeUnused(t)
	}
	return nil
}

// Publish sends content on t. If a local user registered t the message is
// durably stored before Publish returns; it is then forwarded by
// PolderCast's rule, or handed to known subscribers when the node does not
// subscribe to t (ErrNoSubscriber if it knows none). Delivery to peers is
// asynchronous. Concurrent Publish calls share their durable commits (the
// store's group commit).
func (s *Session) Publish(ctx context.Context, t topic.Topic, content []byte) error {
	return s.PublishBatch(ctx, t, [][]byte{content})
}

// PublishBatch is Publish for several messages on t, sent in order: if a
// local user registered t, all are durably stored in one transaction (one
// fsync, where a Publish per message costs one each) before any is
// forwarded, and before PublishBatch returns. A content published before
// (in this batch or earlier) is dropped as a duplicate, so after an error
// the whole batch may simply be published again.
func (s *Session) PublishBatch(ctx context.Context, t topic.Topic, contents [][]byte) error {
	if err := s.check(); err != nil {
		return err
	}
	for i, c := range contents {
		if len(c) > wire.MaxTopicContent {
			return fmt.Errorf("publish: message %d of %d: %d bytes of content, maximum %d", i+1, len(contents), len(c), wire.MaxTopicContent)
		}
	}
	if _, err := s.n.runContext(ctx); err != nil {
		return err
	}
	return s.n.relay(ctx, origin{session: s}, t, contents...)
}

// PutPassport validates PassportBlocks, merges them with the stored copy,
// stores the result durably and subscribes to the passport's topic so its
// updates are applied. It returns the passport id.
func (s *Session) PutPassport(ctx context.Context, blocks []byte) (passport.Hash, error) {
	if err := s.check(); err != nil {
		return passport.Hash{}, err
	}
	return s.n.putPassport(ctx, blocks)
}

// GetPassport returns a passport's PassportBlocks, asking known
// subscribers of its topic (or connected peers) when it is not stored
// locally, and waiting up to Config.PassportTimeout for an answer.
func (s *Session) GetPassport(ctx context.Context, id passport.Hash) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.n.getPassport(ctx, id)
}

// Query returns up to Config.QueryLimit stored messages of t after cursor
// since, oldest first, and stops early once their contents reach
// QueryPageBytes: query again from the last cursor until an answer is
// empty. The user must have registered t.
func (s *Session) Query(ctx context.Context, t topic.Topic, since Cursor) ([]Stored, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if !s.n.registeredBy(s.user, t) {
		return nil, fmt.Errorf("query %s: topic not registered by %s", t, s.user)
	}
	ms, err := s.n.store.MessagesAfterPage(ctx, t, int64(since), s.n.cfg.QueryLimit, QueryPageBytes)
	if err != nil {
		return nil, err
	}
	out := make([]Stored, len(ms))
	for i, m := range ms {
		out[i] = storedOf(m)
	}
	return out, nil
}

// Holders counts, up to limit, who else is known to keep t: other local
// users who registered it, then nodes the overlay knows subscribe to it
// and linked nodes whose own gossip on the link does. For a topic held
// for a named node (PublishTo), only that node counts, once its own
// gossip on a link shows t. Zero means that what the user publishes on t
// is, for now, on this node only: it stays there (Config.Retention) for
// a subscriber to appear and catch up, which is all a sender can know of
// the message's way on.
func (s *Session) Holders(t topic.Topic, limit int) int {
	n := s.n
	held := 0
	n.mu.Lock()
	for u := range n.regs[t] {
		if u != s.user {
			held++
		}
	}
	n.mu.Unlock()
	if held >= limit {
		return limit
	}
	if node, ok := n.heldFor(context.Background(), t); ok {
		// Held for one node (PublishTo): only it counts, once its own
		// gossip on a link shows t.
		if l, ok := n.linkIfLive(node); ok && l.advertises(t) {
			held++
		}
		return held
	}
	subs := n.overlay.subscribers(t, limit-held)
	for _, id := range n.linkAdvertisers(t) {
		if len(subs) >= limit-held {
			break
		}
		if !slices.Contains(subs, id) {
			subs = append(subs, id)
		}
	}
	return held + len(subs)
}

// linkIfLive returns the node link to peer, if there is one.
func (n *Node) linkIfLive(peer keys.PublicKey) (*link, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	l, ok := n.links[peer]
	return l, ok && !l.user
}

// linkAdvertisers returns the node peers whose own gossip on a live link
// subscribes to t.
func (n *Node) linkAdvertisers(t topic.Topic) []keys.PublicKey {
	n.mu.Lock()
	links := make([]*link, 0, len(n.links))
	for _, l := range n.links {
		if !l.user {
			links = append(links, l)
		}
	}
	n.mu.Unlock()
	var out []keys.PublicKey
	for _, l := range links {
		if l.advertises(t) {
			out = append(out, l.remote)
		}
	}
	return out
}

// querySince is Query by receive time, for wire QueryTopicMessages: up to
// QueryLimit messages received at or after since, with a cursor greater
// than after (0: from the first), oldest first.
func (s *Session) querySince(ctx context.Context, t topic.Topic, since time.Time, after int64) ([]store.Message, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if !s.n.registeredBy(s.user, t) {
		return nil, fmt.Errorf("query %s: topic not registered by %s", t, s.user)
	}
	return s.n.store.MessagesSinceAfter(ctx, t, since, after, s.n.cfg.QueryLimit)
}

func storedOf(m store.Message) Stored {
	return Stored{Cursor: Cursor(m.Cursor), Topic: m.Topic, Content: m.Content, ReceivedAt: m.ReceivedAt}
}

// --- registrations ---

// addRegistration records user's interest in t in memory and subscribes
// the overlay; it reports whether t is new to the node.
func (n *Node) addRegistration(user keys.PublicKey, t topic.Topic) bool {
	n.mu.Lock()
	users := n.regs[t]
	first := users == nil
	if first {
		users = make(map[keys.PublicKey]struct{})
		n.regs[t] = users
	}
	users[user] = struct{}{}
	n.mu.Unlock()
	if first {
		n.subscribe(t)
	}
	return first
}

// removeRegistration reports whether t lost its last registration.
func (n *Node) removeRegistration(user keys.PublicKey, t topic.Topic) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	users := n.regs[t]
	if users == nil {
		return false
	}
	delete(users, user)
	if len(users) > 0 {
		return false
	}
	delete(n.regs, t)
	return true
}

func (n *Node) registered(t topic.Topic) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.regs[t]) > 0
}

func (n *Node) registeredBy(user keys.PublicKey, t topic.Topic) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.regs[t][user]
	return ok
}

func (n *Node) registeredTopics() []topic.Topic {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]topic.Topic, 0, len(n.regs))
	for t := range n.regs {
		out = append(out, t)
	}
	return out
}

// deliver pushes a newly stored message to the sessions of the users who
// registered its topic, except the publishing session.
func (n *Node) deliver(m store.Message, except *Session) {
	n.mu.Lock()
	var targets []*Session
	for u := range n.regs[m.Topic] {
		for s := range n.sessions[u] {
			if s != except {
				targets = append(targets, s)
			}
		}
	}
	n.mu.Unlock()
	d := Delivery{Stored: storedOf(m)}
	for _, s := range targets {
		s.push(d)
	}
}
