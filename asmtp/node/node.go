// Package node is an ASMTP personal node (asmtpd's engine). It holds Noise
// IK links to peers, builds a PolderCast pub/sub overlay from signed
// gossip, subscribes to the topics its local users registered, relays topic
// messages by the paper's fanout rule, and keeps messages and passports for
// its users (store-and-forward) in one SQLite database (package store).
// New builds a node from a Config; Run owns every goroutine and returns
// after a clean shutdown when its context ends.
//
// # One path per piece of data
//
// Every topic message, whether published by a local user or read from a
// link, goes through relay: dedupe on BLAKE2b-256(topic ‖ content) (a
// bounded cache that forgets the oldest, backed by the store's unique
// index, so a restart does not deliver anything twice), store and push
// live to the users' sessions if a local user registered the topic, apply
// it if it is a passport update, then forward by PolderCast's rule if the
// node subscribes to the topic, or hand it to known subscribers if a local
// user published on a topic the node does not subscribe to. Nothing else
// moves topic messages. A local publication is committed (fsync) before
// Publish returns, in one commit for all the messages of a PublishBatch
// and one shared with the publications of other sessions that wait at the
// same time (the store's group commit); relayed messages acknowledge
// nothing, so they are committed in batches behind the forwarding
// (storeLoop).
//
// # Local users
//
// The keys in Config.Users are the owner's client devices. Attach gives
// one of them a Session, the single API for everything a user does; a
// device connected over a wire link (asmtp-cli) gets a Session behind a
// thin adapter (userlink.go), so both kinds see the same behaviour. Only
// users may register topics and put passports; new messages on their
// topics are pushed to them live.
//
// # Relay-free
//
// A node forwards topic messages only for topics it subscribes to. A
// message on any other topic is forwarded only when a local user published
// it, and then only to known subscribers (Stats.HandedOff); one arriving
// from a peer is dropped and counted (Stats.Unsolicited), never relayed.
//
// # Links
//
// One link per peer id, node and user links sharing a bounded pool
// (MaxConnections). A quarter of the pool is kept for the links the
// overlay chose (peers we dial, peers in our views) and for local users:
// an inbound identity our views do not hold is refused once the rest is
// full, and never evicts anything; a chosen link or a user in a full pool
// evicts the least recently used such stranger (a user, failing that, any
// node link). At most MaxPendingHandshakes connections handshake at once,
// MaxPendingPerSource from one source network once half of them are
// taken, and one that sends nothing within FirstByteTimeout is closed
// (handshake.go). Each link has one reading goroutine and one writing
// goroutine draining a bounded queue. Forwarding never waits for a queue:
// a peer whose queue is full misses the message (Stats.Dropped; catch-up
// brings it), so a slow or stopped peer holds up no other link, and a
// local publication returns once it is committed. A write that takes
// WriteTimeout closes the link, and what was still queued on a link that
// closes is forwarded again without that peer (reroute). When two nodes
// dial each other at once,
// both keep the connection dialled by the smaller id (admitLocked). A peer
// that sends a malformed frame or message is disconnected and quarantined
// (a frame cut short by a hang-up only disconnects: a node killed mid-write
// looks the same); lesser offences (request floods, requests it may not
// make, unsolicited answers, storing over its quota) are strikes, and
// MaxStrikes of them within QuarantineDuration quarantine too. A
// quarantine is lifted after QuarantineDuration. A failed dial removes the
// peer from the overlay (a newer gossip brings it back).
//
// # Storage peers cannot exhaust
//
// What peers make the node store is bounded per link, per topic and in
// total (quota.go): a stranger flooding a topic it learned from a gossip
// gets an eighth of a link's quota, its excess is dropped and struck, and
// it is quarantined within seconds; the total cap (MaxStorageSize) evicts
// what no local user waits for before it refuses anything, and never
// evicts a message a user has not fetched (Session.Fetched). A message a
// user cannot open (Session.Report) is charged to the link that brought
// it. Store reads (dedupe lookups, query answers) go through a read-only
// connection pool, never behind a commit.
//
// # Gossip
//
// Every GossipInterval (±25% jitter, and ten times faster for up to
// MaxFastRounds rounds while a closest ring neighbour was never contacted)
// the node exchanges gossips with the peers the topology picks, one Gossip
// message per gossip, its own freshly signed one first, and answers the
// exchanges peers open. The gossips of its views are saved every
// PersistInterval, so a restart finds the overlay again without any
// bootstrap peer.
//
// # Store-and-forward
//
// Messages of registered topics are kept for Retention. The node records
// its last-seen time; when it starts, and when a user registers a new
// topic, it queries subscribers of each topic for what it missed
// (catchup.go). Such a catch-up is owed until it completes, and the owed
// windows are saved with the last-seen time, so that a node killed
// before its catch-up completed starts the next one from the same window. A node peer may query a topic only if it advertises the
// topic in its own gossip on that link and the answering node keeps it
// (Config.OpenQueries lifts this); local users may query the topics they
// registered. Requests are rate-limited per link (QueryRate, QueryBurst),
// and the node paces its own catch-up queries below that rate.
// A node's answer holds the whole window, streamed from the store a page
// at a time between answer markers (answer.go); a user's is one page of
// QueryLimit messages, and the user pages on by repeating its query
// (userlink.go). Cursors are reserved durably (store), so a machine crash
// never makes the node reuse one a user has seen. Passports are served to
// any peer that asks for one by id (ids are unguessable, passports hold public keys
// only), and updates on their topics are applied and persisted.
//
// # Naming v2
//
// The node sets gossip info bit 10 (Config.NamingV1 clears it) and gives
// users what inbox topics and intro buckets need (naming.go, PROTOCOL.md
// §16): RegisterInbox (a topic only this node subscribes to, outside the
// settled test), PublishTo (publish for a named node without subscribing;
// the mail is held for it), CatchUp from a named node, KeepPassport
// (no passport topic), PeerNaming and BucketBits (the intro-bucket width,
// from an estimate of the network size, buckets.go). Queries are answered
// only for topics the asker may read, and every other one gets the same
// empty answer. Device links carry these as wire.UserOp messages.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/poldercast"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// Limits that are not worth a configuration knob.
const (
	// MaxPendingHandshakes bounds inbound connections still handshaking;
	// more are closed at once.
	MaxPendingHandshakes = 64
	// MaxPendingPerSource bounds the handshakes pending from one source
	// network (an IPv4 address or an IPv6 /64).
	MaxPendingPerSource = 8
	// MaxSessionsPerUser bounds the sessions one user key holds at once.
	MaxSessionsPerUser = 16
	// MaxStrikes is how many minor offences within QuarantineDuration
	// quarantine a peer.
	MaxStrikes = 3
	// MaxPeerRecords bounds the strike/quarantine records (oldest evicted).
	MaxPeerRecords = 4096
	// BootstrapFanout is how many bootstrap peers a node that knows nobody
	// gossips to per round.
	BootstrapFanout = 3
	// BootstrapEvery is how often (in gossip rounds) a node that knows
	// peers still gossips with one random bootstrap peer. Without it, a
	// node whose bootstrap peers were down when it started, and that met
	// others meanwhile, never tried them again: nodes started in a bad
	// order formed islands that never merged.
	BootstrapEvery = 10
	// shutdownTimeout bounds the final writes after the links are closed.
	shutdownTimeout = 3 * time.Second
)

var (
	// ErrClosed is returned by operations on a stopped node or closed session.
	ErrClosed = errors.New("node: closed")
	// ErrNotUser is returned by Attach for a key that is not a local user.
	ErrNotUser = errors.New("node: not a local user")
	// ErrNoSubscriber is returned by Publish for a topic that neither this
	// node nor any peer it knows subscribes to.
	ErrNoSubscriber = errors.New("node: no known subscriber for the topic")
)

// Node is a running ASMTP node. Create it with New and drive it with Run.
type Node struct {
	cfg      Config
	id       keys.PublicKey
	log      *slog.Logger
	store    *store.Store
	listener net.Listener
	overlay  *overlay
	seen     *seenCache
	strikes  *quarantine
	stats    counters
	// topicQuota meters what peers store per topic (quota.go).
	topicQuota topicQuotas

	lastSeen  time.Time     // as stored before this run
	bootstrap []Peer        // known peers, known gossips and stored gossips
	rounds    atomic.Uint64 // gossip rounds, for BootstrapEvery
	// owedAtStart holds the catch-up windows still owed when the node
	// last saved its state (read-only after restore).
	owedAtStart map[topic.Topic]time.Time

	catchUps chan catchUp
	owed     owedCatchUps          // catch-ups not complete yet, saved by persist
	toStore  chan store.NewMessage // relayed messages for storeLoop
	// storeQueued counts messages handed to storeLoop, storeDone those it
	// committed: a catch-up completes only once what it read is stored.
	storeQueued, storeDone atomic.Uint64
	// answerMarks carries the answer markers read on node links to
	// catchUpLoop; answerSlots holds the free answering slots (answer.go).
	answerMarks chan answerMark
	answerSlots chan struct{}

	// life guards the goroutine set: spawn after stopping is refused so
	// that wg.Wait in shutdown sees every goroutine.
	life     sync.Mutex
	wg       sync.WaitGroup
	stopping bool
	running  bool
	runCtx   context.Context
	started  atomic.Bool
	closed   atomic.Bool
	// ready is closed once Run has started or Close closed a node that
	// never ran: local users may publish before Run gets going.
	ready     chan struct{}
	readyOnce sync.Once

	mu       sync.Mutex
	links    map[keys.PublicKey]*link
	users    map[keys.PublicKey]struct{}
	sessions map[keys.PublicKey]map[*Session]struct{}
	regs     map[topic.Topic]map[keys.PublicKey]struct{} // topic → users who registered it
	// lost holds node peers whose link closed, with the time from which
	// what they stored may not have reached us (catchup.go).
	lost map[keys.PublicKey]time.Time
	// naming is the naming-v2 state (naming.go), under its own lock:
	// gossip handling touches it for every gossip.
	naming namingState
	// buckets is the intro-bucket width and the estimate behind it.
	buckets bucketWidth

	passports passportState
	// inboxLosses are inbox messages dropped over a quota, to ask for
	// again (inboxloss.go).
	inboxLosses inboxLosses
}

// New validates cfg, opens the database, binds the listener and restores
// the node's overlay position (stored gossips, subscriptions). Call Run to
// serve, or Close to release the resources without running.
func New(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{
		ready:    make(chan struct{}),
		cfg:      cfg,
		id:       keys.Public(cfg.Key),
		log:      cfg.Logger,
		seen:     newSeenCache(cfg.KnownMessageCacheSize),
		strikes:  newQuarantine(cfg.QuarantineDuration),
		catchUps: make(chan catchUp, poldercast.MaxSubscriptions),
		toStore:  make(chan store.NewMessage, MaxStoreBatch),
		links:    make(map[keys.PublicKey]*link),
		users:    make(map[keys.PublicKey]struct{}),
		sessions: make(map[keys.PublicKey]map[*Session]struct{}),
		regs:     make(map[topic.Topic]map[keys.PublicKey]struct{}),
		lost:     make(map[keys.PublicKey]time.Time),
		owed:     owedCatchUps{m: make(map[topic.Topic][]owedEntry)},
	}
	n.answerMarks, n.answerSlots = make(chan answerMark, maxAnswerMarks), newAnswerSlots()
	n.log = n.log.With("node", n.id.String()[:8])
	n.passports.init()
	n.naming.init()
	for _, u := range cfg.Users {
		n.users[u] = struct{}{}
	}
	ctx := context.Background()
	st, err := store.Open(ctx, cfg.StoragePath)
	if err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	n.store = st
	ln, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("new node: listen: %w", err)
	}
	n.listener = ln
	if err := n.restore(ctx); err != nil {
		ln.Close()
		st.Close()
		return nil, fmt.Errorf("new node: %w", err)
	}
	return n, nil
}

// restore builds the overlay from the configuration and the database.
func (n *Node) restore(ctx context.Context) error {
	addr := n.cfg.PublicAddress
	if !addr.IsValid() {
		bound, err := netip.ParseAddrPort(n.listener.Addr().String())
		if err != nil {
			return fmt.Errorf("public address from listener %s: %w", n.listener.Addr(), err)
		}
		addr = bound
	}
	now := time.Now()
	ov, err := newOverlay(n.cfg, addr, now)
	if err != nil {
		return err
	}
	n.overlay = ov

	if n.lastSeen, err = n.store.LastSeen(ctx); err != nil {
		return err
	}
	pending, err := n.store.PendingCatchUps(ctx)
	if err != nil {
		return err
	}
	n.owedAtStart = make(map[topic.Topic]time.Time, len(pending))
	for _, p := range pending {
		n.owedAtStart[p.Topic] = p.Since
	}
	regs, err := n.store.Registrations(ctx)
	if err != nil {
		return err
	}
	for _, r := range regs {
		if r.Inbox {
			if err := n.overlay.subscribeInbox(r.Topic, now); err != nil {
				return err
			}
			n.markInbox(r.Topic)
		}
		n.addRegistration(r.User, r.Topic)
	}
	if err := n.restorePending(ctx, now); err != nil {
		return err
	}
	if n.buckets.bits, err = n.store.BucketBits(ctx); err != nil {
		return err
	}
	ids, err := n.store.PassportIDs(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		n.passports.add(id)
		n.subscribe(topic.ForPassport(id))
	}

	n.bootstrap = append(n.bootstrap, n.cfg.KnownPeers...)
	known := append([]gossip.Gossip(nil), n.cfg.KnownGossips...)
	stored, err := n.store.Gossips(ctx)
	if err != nil {
		return err
	}
	for _, s := range stored {
		g, err := gossip.Decode(s.Bytes)
		if err != nil {
			n.log.Warn("stored gossip does not decode; skipped", "peer", s.ID, "err", err)
			continue
		}
		known = append(known, g)
	}
	for _, g := range known {
		if g.ID == n.id {
			continue
		}
		n.bootstrap = append(n.bootstrap, Peer{ID: g.ID, Address: g.Addr.String()})
		if err := n.overlay.add(g, now); err != nil {
			n.log.Debug("known gossip not added", "peer", g.ID, "err", err)
		}
	}
	return nil
}

// ID is the node id: the public half of Config.Key.
func (n *Node) ID() keys.PublicKey { return n.id }

// Addr is the address the node listens on.
func (n *Node) Addr() net.Addr { return n.listener.Addr() }

// Gossip returns the node's current signed gossip (what other operators
// put in their known gossips).
func (n *Node) Gossip() gossip.Gossip { return n.overlay.ownGossip() }

// AddUser allows key to attach as a local user from now on.
func (n *Node) AddUser(key keys.PublicKey) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.users[key] = struct{}{}
}

// RemoveUser revokes key: its sessions and link are closed. Its stored
// registrations stay until it is added back or they are deregistered.
func (n *Node) RemoveUser(key keys.PublicKey) {
	n.mu.Lock()
	delete(n.users, key)
	var sessions []*Session
	for s := range n.sessions[key] {
		sessions = append(sessions, s)
	}
	l := n.links[key]
	n.mu.Unlock()
	for _, s := range sessions {
		s.Close()
	}
	if l != nil {
		n.closeLink(l)
	}
}

func (n *Node) isUser(key keys.PublicKey) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.users[key]
	return ok
}

// Run serves until ctx is done, then shuts down cleanly (links closed,
// gossips and last-seen time persisted, database closed) and returns.
// It can be called once.
func (n *Node) Run(ctx context.Context) error {
	if !n.started.CompareAndSwap(false, true) {
		return errors.New("node: Run called twice")
	}
	if n.closed.Load() {
		return ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n.life.Lock()
	n.running, n.runCtx = true, ctx
	n.life.Unlock()
	n.readyOnce.Do(func() { close(n.ready) })
	n.log.Info("node running", "id", n.id, "listen", n.listener.Addr(), "public", n.overlay.ownGossip().Addr)

	// The start-up catch-ups are owed before persistLoop first moves the
	// last-seen time.
	n.startCatchUps(time.Now())
	n.spawn(func() { n.acceptLoop(ctx) })
	n.spawn(func() { n.gossipLoop(ctx) })
	n.spawn(func() { n.persistLoop(ctx) })
	n.spawn(func() { n.catchUpLoop(ctx) })
	n.spawn(func() { n.storeLoop(ctx) })
	<-ctx.Done()
	return n.shutdown()
}

// Close releases the database and listener of a node that is not running.
// A running node shuts down when Run's context is done instead.
func (n *Node) Close() error {
	if n.started.Load() {
		return nil
	}
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	n.readyOnce.Do(func() { close(n.ready) })
	return errors.Join(n.listener.Close(), n.store.Close())
}

// spawn runs f on a goroutine that shutdown waits for; it refuses once the
// node is stopping.
func (n *Node) spawn(f func()) bool {
	n.life.Lock()
	defer n.life.Unlock()
	if n.stopping || !n.running {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// runContext waits for Run to start (or ctx to end) and returns Run's
// context; ErrClosed when the node stopped or was closed.
func (n *Node) runContext(ctx context.Context) (context.Context, error) {
	select {
	case <-n.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rc, ok := n.context()
	if !ok {
		return nil, ErrClosed
	}
	return rc, nil
}

// context returns Run's context, and false when the node is not running.
func (n *Node) context() (context.Context, bool) {
	n.life.Lock()
	defer n.life.Unlock()
	if !n.running || n.stopping {
		return nil, false
	}
	return n.runCtx, true
}

func (n *Node) shutdown() error {
	n.life.Lock()
	n.stopping = true
	n.life.Unlock()
	n.closed.Store(true)

	err := n.listener.Close()
	n.mu.Lock()
	links := make([]*link, 0, len(n.links))
	for _, l := range n.links {
		links = append(links, l)
	}
	var sessions []*Session
	for _, ss := range n.sessions {
		for s := range ss {
			sessions = append(sessions, s)
		}
	}
	n.mu.Unlock()
	for _, l := range links {
		n.closeLink(l)
	}
	for _, s := range sessions {
		s.Close()
	}
	n.wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Relayed messages still queued were forwarded already: store them.
	if batch := n.drainToStore(nil); len(batch) > 0 {
		n.storeBatch(ctx, batch)
	}
	err = errors.Join(err, n.persist(ctx, time.Now()))
	err = errors.Join(err, n.store.Close())
	n.log.Info("node stopped")
	if err != nil {
		return fmt.Errorf("node shutdown: %w", err)
	}
	return nil
}

// persistLoop periodically saves the overlay and the last-seen time and
// expires old messages.
func (n *Node) persistLoop(ctx context.Context) {
	// The first save comes after two gossip rounds rather than a whole
	// PersistInterval, so that a node killed soon after start still finds
	// the peers it learned.
	first := time.NewTimer(min(2*n.cfg.GossipInterval, n.cfg.PersistInterval))
	defer first.Stop()
	select {
	case <-ctx.Done():
		return
	case now := <-first.C:
		if err := n.persist(ctx, now); err != nil && ctx.Err() == nil {
			n.log.Error("persist", "err", err)
		}
	}
	t := time.NewTicker(n.cfg.PersistInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := n.persist(ctx, now); err != nil && ctx.Err() == nil {
				n.log.Error("persist", "err", err)
			}
			n.updateBucketWidth(ctx, now)
			if err := n.store.DeleteHeldBefore(ctx, now.Add(-n.cfg.Retention)); err != nil && ctx.Err() == nil {
				n.log.Error("expire held topics", "err", err)
			}
			removed, err := n.store.DeleteMessagesBefore(ctx, now.Add(-n.cfg.Retention))
			if err != nil && ctx.Err() == nil {
				n.log.Error("expire messages", "err", err)
			}
			if removed > 0 {
				n.log.Info("expired messages", "count", removed)
			}
		}
	}
}

// persist saves the gossips of the current views, and now as last seen
// together with the catch-up windows still owed (catchup.go). An empty
// view (everyone unreachable for a while) does not wipe the stored
// gossips: they are how the node finds its way back.
func (n *Node) persist(ctx context.Context, now time.Time) error {
	var rows []store.Gossip
	for _, g := range n.overlay.snapshot() {
		rows = append(rows, store.Gossip{ID: g.ID, Time: g.Time, Bytes: g.Encode()})
	}
	var err error
	if len(rows) > 0 {
		err = n.store.ReplaceGossips(ctx, rows)
	}
	return errors.Join(err, n.store.SaveRunState(ctx, now, n.owed.snapshot(n.registered)))
}

// Stats are counters since New, for tests and monitoring.
type Stats struct {
	Links int // live links, node and user
	// Received counts topic messages read from node links on subscribed
	// topics, duplicates included.
	Received uint64
	// Duplicates counts topic messages dropped as already seen.
	Duplicates uint64
	// Stored counts topic messages stored for local users.
	Stored uint64
	// Relayed counts Topic messages queued to peers by the forwarding rule
	// (as a subscriber of the topic).
	Relayed uint64
	// HandedOff counts Topic messages published by local users on topics
	// the node does not subscribe to, queued to known subscribers.
	HandedOff uint64
	// Unsolicited counts topic messages from peers on topics the node does
	// not subscribe to; they are dropped, never relayed.
	Unsolicited uint64
	// Quarantined counts peers quarantined.
	Quarantined uint64
	// Dropped counts Topic messages not queued to a peer whose link queue
	// was full (the link resends the stored ones, resend.go).
	Dropped uint64
	// Resent counts topics whose stored messages a link sent again after
	// its queue had dropped some.
	Resent uint64
	// Refused counts connections and links refused for room: pending
	// handshakes over their caps, strangers over their share of the pool.
	Refused uint64
	// OverQuota counts topic messages from peers dropped over a link's or
	// a topic's storage quota, or over the storage cap.
	OverQuota uint64
	// Reported counts stored messages a local user reported as not
	// opening (Session.Report).
	Reported uint64
}

type counters struct {
	received, duplicates, stored, relayed, handedOff, unsolicited, quarantined atomic.Uint64
	dropped, resent, refused, overQuota, reported                              atomic.Uint64
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	links := len(n.links)
	n.mu.Unlock()
	return Stats{
		Links:       links,
		Received:    n.stats.received.Load(),
		Duplicates:  n.stats.duplicates.Load(),
		Stored:      n.stats.stored.Load(),
		Relayed:     n.stats.relayed.Load(),
		HandedOff:   n.stats.handedOff.Load(),
		Unsolicited: n.stats.unsolicited.Load(),
		Quarantined: n.stats.quarantined.Load(),
		Dropped:     n.stats.dropped.Load(),
		Resent:      n.stats.resent.Load(),
		Refused:     n.stats.refused.Load(),
		OverQuota:   n.stats.overQuota.Load(),
		Reported:    n.stats.reported.Load(),
	}
}
