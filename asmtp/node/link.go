package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// link is the one connection to a peer, node or user, whichever end
// dialled it. Its write queue belongs to the link, not to a connection, so
// messages queued while a dial is in flight survive when the dial loses a
// simultaneous-dial race and the peer's connection is adopted instead.
type link struct {
	remote   keys.PublicKey
	user     bool
	outbound bool   // we dial it (addr)
	addr     string // dial address of an outbound link
	out      chan wire.Message
	up       chan struct{} // closed once conn is set
	done     chan struct{} // closed when the link closes
	lastUsed atomic.Int64  // unix nanoseconds, for LRU eviction
	lastRead atomic.Int64  // unix nanoseconds of the last message read, or of the connection
	dropped  atomic.Uint64 // messages not queued because the queue was full
	owed     owedTopics    // what the peer missed that way (resend.go)
	created  time.Time
	// solicitMax is what the peer may answer to one of our queries
	// without a storage quota (quota.go).
	solicitMax int64

	mu      sync.Mutex
	conn    *wire.Conn
	dialled bool // conn was dialled by us
	closed  bool
	session *Session // user links
	// solicited is what the peer may still send in answer to our queries,
	// per topic (quota.go).
	solicited map[topic.Topic]solicitation

	// The storage quota (quota.go): charged by the reader, and by
	// Session.Report.
	quotaMu    sync.Mutex
	stored     byteBucket
	lastStrike time.Time

	// advertised are the peer's topics, from its own gossip on this link,
	// and peerV2 its naming flag: written by the reader, read by Holders
	// too (under mu).
	advertised map[topic.Topic]struct{}
	// handedOver is the held mail sent on the link, per topic (held.go).
	handedOver map[topic.Topic]pendingTopic
	advertTime uint32
	peerV2     bool

	// Owned by the link's reading goroutine.
	greeted  bool // the peer's own gossip came on this link
	requests tokenBucket
	pages    map[topic.Topic]queryPage // user links: where full answers stopped (userlink.go)
	// User links: OpPublishTo hints and OpKeepPassport ids (userlink.go).
	publishTo     map[topic.Topic]*PeerAddr
	keepPassports map[passport.Hash]struct{}
	answers       answerQueue // node links: queries waiting for their answer (answer.go)

	// idleClosed is set when the reader closes the link for the idle
	// timeout: nothing can have been lost on it (catchup.go).
	idleClosed atomic.Bool
}

func newLink(n *Node, remote keys.PublicKey, user bool, addr string) *link {
	l := &link{
		remote:     remote,
		user:       user,
		outbound:   addr != "",
		addr:       addr,
		out:        make(chan wire.Message, n.cfg.LinkQueueSize),
		up:         make(chan struct{}),
		done:       make(chan struct{}),
		requests:   newTokenBucket(n.cfg.QueryRate, n.cfg.QueryBurst, time.Now()),
		created:    time.Now(),
		solicitMax: n.solicitBytes(),
	}
	l.touch()
	return l
}

// isClosed reports whether the link has closed.
func (l *link) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

func (l *link) touch() { l.lastUsed.Store(time.Now().UnixNano()) }

// dialledByUs reports whether the link's connection, current or pending,
// is (or will be) ours.
func (l *link) dialledByUs() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return l.outbound
	}
	return l.dialled
}

// hasConn reports whether the link has its connection.
func (l *link) hasConn() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn != nil
}

// enqueue queues m for writing. With wait 0 it never blocks (best effort:
// gossip, live pushes); otherwise it waits up to wait for room, and a link
// still full after that is stuck: it is closed by the caller's failure
// path (the reader of the stuck peer keeps the back-pressure honest).
func (l *link) enqueue(ctx context.Context, m wire.Message, wait time.Duration) bool {
	if q, ok := m.(wire.QueryTopicMessages); ok && !l.user {
		l.solicit(q.Topic, l.solicitMax, time.Now())
	}
	select {
	case l.out <- m:
		return true
	case <-l.done:
		return false
	default:
	}
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case l.out <- m:
		return true
	case <-l.done:
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// setAdvertised records the topics the peer advertises in its own gossip,
// and whether it speaks naming v2.
func (l *link) setAdvertised(g gossip.Gossip) {
	adv := make(map[topic.Topic]struct{}, len(g.Subscriptions))
	for _, s := range g.Subscriptions {
		adv[s.Topic] = struct{}{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if g.Time < l.advertTime {
		return
	}
	l.advertTime, l.advertised, l.peerV2 = g.Time, adv, g.NamingV2()
}

func (l *link) advertises(t topic.Topic) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.advertised[t]
	return ok
}

// speaksV2 reports whether the peer's own gossip on this link set the
// naming-v2 flag; false before its gossip came.
func (l *link) speaksV2() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peerV2
}

// tokenBucket rate-limits a link's requests (queries, passport requests).
type tokenBucket struct {
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, burst int, now time.Time) tokenBucket {
	return tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// take spends one token if there is one; otherwise it returns how long
// until there will be.
func (b *tokenBucket) take(now time.Time) (bool, time.Duration) {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// --- the pool ---

// linkTo returns the link to a node peer, creating an outbound one (dialled
// by its writing goroutine) if there is none.
func (n *Node) linkTo(peer keys.PublicKey) (*link, error) {
	n.mu.Lock()
	l := n.links[peer]
	n.mu.Unlock()
	if l != nil {
		return l, nil
	}
	if peer == n.id {
		return nil, errors.New("link to self")
	}
	if n.strikes.blocked(peer, time.Now()) {
		return nil, fmt.Errorf("peer %s is quarantined", peer)
	}
	addr, err := n.addressOf(peer)
	if err != nil {
		return nil, err
	}
	ctx, ok := n.context()
	if !ok {
		return nil, ErrClosed
	}

	n.mu.Lock()
	if l := n.links[peer]; l != nil {
		n.mu.Unlock()
		return l, nil
	}
	evict, err := n.makeRoomLocked(chosenLink)
	if err != nil {
		n.mu.Unlock()
		return nil, err
	}
	l = newLink(n, peer, false, addr)
	n.links[peer] = l
	n.mu.Unlock()
	if evict != nil {
		n.closeLink(evict)
	}
	if !n.spawn(func() { n.writeLoop(ctx, l) }) {
		n.closeLink(l)
		return nil, ErrClosed
	}
	return l, nil
}

// makeRoomLocked makes room in the pool for a link to remote, or refuses
// it. Links are of three kinds: users, links the overlay chose (we dial
// them, or the peer is in our views) and strangers (inbound from an
// identity our views do not hold). A stranger is admitted only while the
// pool has more than a quarter free (the reserve for the overlay's peers
// and the users) and never evicts anything: a flood of fresh identities
// fills the strangers' share and is refused beyond it, and established
// overlay links stay (upstream evicted the least recently used link for
// any newcomer, so throw-away identities could cut a node off). A chosen
// link or a user in a full pool evicts the least recently used stranger;
// a user, failing that, the least recently used node link. Callers hold
// n.mu and close the returned link after unlocking.
func (n *Node) makeRoomLocked(kind linkKind) (*link, error) {
	capacity := n.cfg.MaxConnections
	if kind == strangerLink {
		if len(n.links) >= capacity-reservedLinks(capacity) {
			n.stats.refused.Add(1)
			return nil, fmt.Errorf("pool has %d of %d links: no room for unknown peers (%d reserved for overlay peers and users)",
				len(n.links), capacity, reservedLinks(capacity))
		}
		return nil, nil
	}
	if len(n.links) < capacity {
		return nil, nil
	}
	victim := n.lruLocked(func(l *link) bool { return !l.user && n.isStranger(l) })
	if victim == nil && kind == userLink {
		victim = n.lruLocked(func(l *link) bool { return !l.user })
	}
	if victim == nil {
		n.stats.refused.Add(1)
		return nil, fmt.Errorf("connection pool full (%d links, none of them a stranger's)", len(n.links))
	}
	delete(n.links, victim.remote)
	return victim, nil
}

// reservedLinks is the part of a pool of capacity links kept for overlay
// peers and users.
func reservedLinks(capacity int) int { return capacity / 4 }

// linkKind is how the pool treats a new link (makeRoomLocked).
type linkKind int

const (
	strangerLink linkKind = iota // inbound, from an identity not in our views
	chosenLink                   // dialled by us, or the peer is in our views
	userLink                     // a local user's device
)

// kindOfLocked classifies a new inbound link from remote (what we dial is
// a chosenLink). Callers hold n.mu.
func (n *Node) kindOfLocked(remote keys.PublicKey) linkKind {
	if _, user := n.users[remote]; user {
		return userLink
	}
	if _, known := n.overlay.addr(remote); known {
		return chosenLink
	}
	return strangerLink
}

// isStranger reports whether l is an inbound node link whose peer our
// views do not hold: what a full pool may evict.
func (n *Node) isStranger(l *link) bool {
	if l.user || l.dialledByUs() {
		return false
	}
	_, known := n.overlay.addr(l.remote)
	return !known
}

// lruLocked returns the least recently used link that ok accepts, or nil.
func (n *Node) lruLocked(ok func(*link) bool) *link {
	var lru *link
	for _, l := range n.links {
		if ok(l) && (lru == nil || l.lastUsed.Load() < lru.lastUsed.Load()) {
			lru = l
		}
	}
	return lru
}

var (
	errSelf      = errors.New("that is our own key")
	errDuplicate = errors.New("a connection dialled by the smaller id is already up or being dialled")
)

// admitLocked decides whether to take a connection from remote that it
// dialled. Between two nodes, the connection dialled by the smaller id
// wins: the smaller refuses the larger's dial while its own is pending or
// up, and the larger adopts the smaller's connection. Callers hold n.mu.
func (n *Node) admitLocked(remote keys.PublicKey, now time.Time) error {
	if remote == n.id {
		return errSelf
	}
	if n.strikes.blocked(remote, now) {
		return errors.New("quarantined")
	}
	if _, user := n.users[remote]; user {
		return nil
	}
	if l := n.links[remote]; l != nil && bytes.Compare(n.id[:], remote[:]) < 0 && l.dialledByUs() {
		return errDuplicate
	}
	return nil
}

// acceptLoop accepts connections and runs their handshakes: at most
// MaxPendingHandshakes at once, MaxPendingPerSource of them from one
// source network (handshakeSlots), and a connection that sends nothing
// within FirstByteTimeout is closed, so idle connections cannot hold the
// slots for the whole HandshakeTimeout.
func (n *Node) acceptLoop(ctx context.Context) {
	slots := newHandshakeSlots(MaxPendingHandshakes, MaxPendingPerSource)
	for {
		c, err := n.listener.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Warn("accept", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond): // e.g. out of file descriptors
			}
			continue
		}
		src := sourceOf(c.RemoteAddr())
		if !slots.take(src) {
			n.stats.refused.Add(1)
			n.log.Debug("too many pending handshakes; connection dropped", "from", c.RemoteAddr())
			c.Close()
			continue
		}
		if !n.spawn(func() {
			defer slots.release(src)
			n.accept(ctx, c)
		}) {
			c.Close()
			return
		}
	}
}

// accept runs the responder handshake on c and installs the link.
func (n *Node) accept(ctx context.Context, c net.Conn) {
	c, err := waitFirstByte(ctx, c, n.cfg.FirstByteTimeout)
	if err != nil {
		n.log.Debug("inbound connection sent nothing; closed", "from", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	hctx, cancel := context.WithTimeout(ctx, n.cfg.HandshakeTimeout)
	defer cancel()
	wc, err := wire.Accept(hctx, c, n.cfg.Key, func(remote keys.PublicKey) error {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.admitLocked(remote, time.Now())
	})
	if err != nil {
		n.log.Debug("inbound handshake failed", "from", c.RemoteAddr(), "err", err)
		return
	}
	n.installInbound(ctx, wc)
}

// installInbound makes an accepted connection the peer's link: it is
// adopted by a link still dialling, replaces an established one (the peer
// dialled again, so it has lost the old one), or starts a new link.
func (n *Node) installInbound(ctx context.Context, wc *wire.Conn) {
	remote := wc.Remote()
	n.mu.Lock()
	if err := n.admitLocked(remote, time.Now()); err != nil {
		n.mu.Unlock()
		wc.Close()
		return
	}
	_, user := n.users[remote]
	var stale, evict *link
	if l := n.links[remote]; l != nil {
		if !l.hasConn() && !l.user {
			n.mu.Unlock()
			if !n.attach(ctx, l, wc, false) {
				wc.Close()
			}
			return
		}
		stale = l
		delete(n.links, remote)
	}
	evict, err := n.makeRoomLocked(n.kindOfLocked(remote))
	if err != nil {
		n.mu.Unlock()
		n.log.Debug("inbound connection refused", "peer", remote, "err", err)
		wc.Close()
		return
	}
	l := newLink(n, remote, user, "")
	n.links[remote] = l
	n.mu.Unlock()
	for _, old := range []*link{stale, evict} {
		if old != nil {
			n.closeLink(old)
		}
	}
	if user {
		if err := n.attachUserLink(l); err != nil {
			n.log.Warn("user link refused", "user", remote, "err", err)
			n.closeLink(l)
			wc.Close()
			return
		}
	}
	if !n.spawn(func() { n.writeLoop(ctx, l) }) || !n.attach(ctx, l, wc, false) {
		n.closeLink(l)
		wc.Close()
	}
}

// attach gives l its connection and starts reading it. It fails if l
// already has one or is closed.
func (n *Node) attach(ctx context.Context, l *link, wc *wire.Conn, dialled bool) bool {
	l.mu.Lock()
	if l.closed || l.conn != nil {
		l.mu.Unlock()
		return false
	}
	l.conn, l.dialled = wc, dialled
	l.lastRead.Store(time.Now().UnixNano())
	close(l.up)
	l.mu.Unlock()
	if !n.spawn(func() { n.readLoop(ctx, l, wc) }) {
		n.closeLink(l)
		return false
	}
	return true
}

// closeLink closes l and its connection and drops it from the pool.
func (n *Node) closeLink(l *link) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.done)
	c, s := l.conn, l.session
	l.mu.Unlock()
	n.log.Debug("link down", "peer", l.remote, "user", l.user)
	if c != nil {
		c.Close()
	}
	if s != nil {
		s.Close()
	}
	n.mu.Lock()
	if n.links[l.remote] == l {
		delete(n.links, l.remote)
	}
	lost := c != nil && !l.user && l.mayHaveLost()
	if lost {
		n.noteLostLocked(l.remote, time.Unix(0, l.lastRead.Load()))
	}
	n.mu.Unlock()
	if lost {
		n.pendHandedOver(l)
	}
}

// writeLoop is a link's writing goroutine: it dials an outbound link, then
// drains the queue into the connection.
func (n *Node) writeLoop(ctx context.Context, l *link) {
	defer n.reroute(ctx, l)
	defer n.closeLink(l)
	if l.outbound {
		n.dial(ctx, l)
	}
	select {
	case <-l.up:
	case <-l.done:
		return
	}
	l.mu.Lock()
	c := l.conn
	l.mu.Unlock()
	for {
		select {
		case <-l.done:
			return
		case m := <-l.out:
			wctx, cancel := context.WithTimeout(ctx, n.cfg.WriteTimeout)
			err := c.WriteMessage(wctx, m)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					n.log.Debug("write failed; link closed", "peer", l.remote, "type", m.Type(), "err", err)
				}
				return
			}
			l.touch()
		}
	}
}

// dial connects an outbound link. A failure removes the peer from the
// overlay (it comes back with a newer gossip), unless the peer's own
// connection was adopted meanwhile.
func (n *Node) dial(ctx context.Context, l *link) {
	dctx, cancel := context.WithTimeout(ctx, n.cfg.HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(dctx, "tcp", l.addr)
	var wc *wire.Conn
	if err == nil {
		wc, err = wire.Dial(dctx, raw, n.cfg.Key, l.remote)
	}
	if err != nil && n.lostDialRace(ctx, l, err) {
		return // the peer's connection was adopted: l keeps its queue
	}
	if err != nil {
		n.closeLink(l)
		if ctx.Err() == nil {
			n.log.Debug("dial failed", "peer", l.remote, "addr", l.addr, "err", err)
			n.overlay.remove(l.remote)
		}
		return
	}
	if !n.attach(ctx, l, wc, true) {
		wc.Close()
	}
}

// lostDialRace reports whether l got the peer's connection after our dial
// failed with err. A peer with the smaller id refuses our handshake while
// its own dial to us is pending (admitLocked), and its connection arrives
// after our refusal, by up to a handshake: closing l at the refusal would
// send its queued messages to other peers instead (reroute), drop the
// peer from the overlay, and lose for it what was queued to it. So after
// such a refusal we wait for the peer's connection as long as its dial
// may take.
func (n *Node) lostDialRace(ctx context.Context, l *link, err error) bool {
	if l.hasConn() {
		return true
	}
	if !errors.Is(err, wire.ErrWrongRemote) || bytes.Compare(l.remote[:], n.id[:]) >= 0 {
		return false
	}
	t := time.NewTimer(n.cfg.HandshakeTimeout)
	defer t.Stop()
	select {
	case <-l.up:
		return true
	case <-l.done:
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// readLoop is a link's reading goroutine.
func (n *Node) readLoop(ctx context.Context, l *link, c *wire.Conn) {
	defer n.closeLink(l)
	for {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if !l.user {
			rctx, cancel = context.WithTimeout(ctx, n.cfg.IdleTimeout)
		}
		m, err := c.ReadMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if peerFault(err) {
				n.quarantine(l, "malformed frame or message", err)
			} else {
				l.idleClosed.Store(!l.user && errors.Is(err, context.DeadlineExceeded))
				n.log.Debug("link closed", "peer", l.remote, "err", err)
			}
			return
		}
		l.touch()
		l.lastRead.Store(time.Now().UnixNano())
		if err := n.handle(ctx, l, m); err != nil {
			if errors.Is(err, errNotUser) {
				// Most likely a device missing from `users`: hang up at
				// once so its client can say so, without a quarantine
				// that would make the fixed device wait.
				n.log.Info("refused a user-only request from a key not in users", "peer", l.remote, "request", err)
				n.closeLink(l)
				return
			}
			n.quarantine(l, "protocol violation", err)
			return
		}
	}
}

// peerFault reports whether a read error is the peer's doing (bad length,
// bad tag, undecodable message) rather than a hang-up, an idle timeout or
// our own shutdown. A frame cut short by the end of the stream counts as a
// hang-up: it is what a node killed mid-write looks like, and quarantining
// it would keep it out after its restart.
func peerFault(err error) bool {
	switch {
	case errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return false
	}
	return true
}

// quarantine closes l and refuses its peer for QuarantineDuration.
func (n *Node) quarantine(l *link, why string, err error) {
	n.strikes.quarantine(l.remote, time.Now())
	n.stats.quarantined.Add(1)
	n.log.Info("peer quarantined", "peer", l.remote, "why", why, "err", err)
	n.closeLink(l)
}

// strike records a minor offence by l's peer and returns an error once the
// peer has earned a quarantine (the reader then drops the link).
func (n *Node) strike(l *link, why string) error {
	if n.strikes.strike(l.remote, time.Now()) {
		return fmt.Errorf("%d strikes, last: %s", MaxStrikes, why)
	}
	n.log.Debug("strike", "peer", l.remote, "why", why)
	return nil
}
