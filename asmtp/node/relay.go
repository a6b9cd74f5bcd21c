package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// messageHash is the dedupe key of a topic message: BLAKE2b-256 of
// topic ‖ content (upstream hashed the content alone, defect #13).
func messageHash(t topic.Topic, content []byte) [32]byte {
	h, _ := blake2b.New256(nil) // unkeyed: cannot fail
	h.Write(t[:])
	h.Write(content)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// seenCache remembers the hashes of recent messages; when full it forgets
// the oldest (upstream evicted the newest, defect #13).
type seenCache struct {
	mu    sync.Mutex
	set   map[[32]byte]struct{}
	order [][32]byte // ring buffer of insertion order
	next  int
}

func newSeenCache(size int) *seenCache {
	return &seenCache{set: make(map[[32]byte]struct{}, size), order: make([][32]byte, 0, size)}
}

// add records h and reports whether it was new.
func (c *seenCache) add(h [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.set[h]; ok {
		return false
	}
	if len(c.order) < cap(c.order) {
		c.order = append(c.order, h)
	} else {
		delete(c.set, c.order[c.next])
		c.order[c.next] = h
		c.next = (c.next + 1) % len(c.order)
	}
	c.set[h] = struct{}{}
	return true
}

// forget removes h, for a local publication that could not be sent.
func (c *seenCache) forget(h [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Its slot in order is reused when it comes round; if h was added
	// again meanwhile, that forgets it early, which the store's own
	// dedupe makes harmless.
	delete(c.set, h)
}

// origin says where a topic message entered the node.
type origin struct {
	peer    keys.PublicKey // node link it came from; zero for a local user
	link    *link          // that link; nil for a local user
	session *Session       // the publishing session, not echoed to; nil from a peer
}

func (o origin) local() bool { return o.peer == keys.PublicKey{} }

// relay is the one path every topic message takes: dedupe, store and push
// for local users, passport update, then forward by PolderCast's rule (or
// hand a local publication to known subscribers when we do not subscribe).
// contents are messages on t in order: one read from a peer, or what a
// local user published in one call (Publish, PublishBatch), whose storing
// is one durable commit shared by them all.
func (n *Node) relay(ctx context.Context, from origin, t topic.Topic, contents ...[]byte) error {
	subscribed := n.overlay.subscribed(t)
	var handoff []keys.PublicKey
	switch {
	case !from.local() && !subscribed:
		n.stats.unsolicited.Add(uint64(len(contents)))
		return nil
	case from.local() && !subscribed:
		if handoff = n.overlay.handoff(t); len(handoff) == 0 {
			return fmt.Errorf("publish on %x: %w", t[:4], ErrNoSubscriber)
		}
	case !from.local():
		n.stats.received.Add(uint64(len(contents)))
	}

	var one [1]freshMessage // a peer's message, the common case: no allocation
	fresh := one[:0]
	if len(contents) > 1 {
		fresh = make([]freshMessage, 0, len(contents))
	}
	for _, c := range contents {
		h := messageHash(t, c)
		if !n.seen.add(h) {
			n.stats.duplicates.Add(1)
			continue
		}
		fresh = append(fresh, freshMessage{hash: h, content: c})
	}
	if len(fresh) > 0 && n.registered(t) {
		var err error
		if fresh, err = n.storeFresh(ctx, from, t, fresh); err != nil {
			return err
		}
	}
	passportID, isPassport := t.Passport()
	for i, m := range fresh {
		if isPassport {
			n.applyPassportUpdate(ctx, passportID, m.content)
		}
		msg := wire.Topic{Topic: t, Content: m.content}
		if subscribed {
			n.stats.relayed.Add(uint64(n.sendTo(ctx, n.overlay.forward(t, from.peer), msg)))
			continue
		}
		sent := n.sendTo(ctx, handoff, msg)
		n.stats.handedOff.Add(uint64(sent))
		if sent == 0 {
			// Not sent: a retry of the publication must not be dropped
			// as a duplicate.
			for _, m := range fresh[i:] {
				n.seen.forget(m.hash)
			}
			return fmt.Errorf("publish on %x: no known subscriber reachable: %w", t[:4], ErrNoSubscriber)
		}
	}
	return nil
}

// freshMessage is a message relay had not seen, with its dedupe hash.
type freshMessage struct {
	hash    [32]byte
	content []byte
}

// storeFresh stores the first-seen messages of a registered topic and returns
// those new to the store, in order. A local publication is committed
// durably (one group commit for all of them, store.AddMessagesDurable) and
// pushed before storeFresh returns: Publish returning acknowledges it. A relayed
// one acknowledges nothing: storeFresh only checks it is not stored yet and
// hands it to storeLoop, which commits in batches and then pushes it, so
// relaying does not wait for SQLite. A message already stored (before the
// dedupe cache forgot it, or before a restart) is not a first receipt.
func (n *Node) storeFresh(ctx context.Context, from origin, t topic.Topic, fresh []freshMessage) ([]freshMessage, error) {
	now := time.Now()
	first := fresh[:0] // filtered in place: written at or before where it is read
	if from.local() {
		batch := make([]store.NewMessage, len(fresh))
		for i, m := range fresh {
			batch[i] = store.NewMessage{Topic: t, Hash: m.hash, Content: m.content, ReceivedAt: now}
		}
		stored, err := n.store.AddMessagesDurable(ctx, batch)
		if err != nil {
			for _, m := range fresh {
				n.seen.forget(m.hash)
			}
			return nil, fmt.Errorf("publish: %w", err)
		}
		for i, m := range stored {
			if m.Cursor == 0 {
				n.stats.duplicates.Add(1)
				continue
			}
			n.stats.stored.Add(1)
			n.deliver(m, from.session)
			first = append(first, fresh[i])
		}
		return first, nil
	}
	for _, m := range fresh {
		stored, err := n.store.HasMessage(ctx, t, m.hash)
		if err != nil {
			n.log.Error("relay: store", "topic", t, "err", err)
			first = append(first, m) // still forward: others may store it
			continue
		}
		if stored {
			n.stats.duplicates.Add(1)
			continue
		}
		if from.link != nil && !n.admitStored(from.link, t, len(m.content), now) {
			// Neither stored nor forwarded; forgotten, so that the same
			// message from a peer within its quota is taken.
			n.seen.forget(m.hash)
			continue
		}
		// Counted before it is queued, so that a catch-up settling now
		// waits for its commit (catchup.go).
		n.storeQueued.Add(1)
		select {
		case n.toStore <- store.NewMessage{Topic: t, Hash: m.hash, Content: m.content, ReceivedAt: now, Origin: from.peer}:
		case <-ctx.Done():
		}
		first = append(first, m)
	}
	return first, nil
}

// MaxStoreBatch bounds the relayed messages committed in one transaction
// (and queued for storeLoop).
const MaxStoreBatch = 256

// storeLoop commits relayed messages in batches and pushes the new ones to
// the sessions.
func (n *Node) storeLoop(ctx context.Context) {
	batch := make([]store.NewMessage, 0, MaxStoreBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-n.toStore:
			batch = append(batch[:0], m)
		}
		batch = n.drainToStore(batch)
		n.storeBatch(ctx, batch)
	}
}

// drainToStore appends what is queued, up to MaxStoreBatch messages.
func (n *Node) drainToStore(batch []store.NewMessage) []store.NewMessage {
	for len(batch) < MaxStoreBatch {
		select {
		case m := <-n.toStore:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

func (n *Node) storeBatch(ctx context.Context, batch []store.NewMessage) {
	done := uint64(len(batch))
	batch = n.makeRoom(ctx, batch)
	added, err := n.store.AddMessages(ctx, batch)
	if err != nil {
		// Not counted as done: no catch-up completes in this run after a
		// lost batch, so the windows stay owed for the next start.
		n.log.Error("relay: store", "messages", len(batch), "err", err)
		return
	}
	n.storeDone.Add(done)
	for _, m := range added {
		n.stats.stored.Add(1)
		n.deliver(m, nil)
	}
}

// sendTo queues m to each peer without waiting: forwarding runs on the
// reading goroutine of the link m came from (or in a local user's
// Publish), and a slow or stopped peer must not hold it. A peer whose
// queue is full misses m (counted in Stats.Dropped) and is owed it: the
// link sends it again from the store once it has room (resend.go); its
// writer closes the link if it stays stuck past WriteTimeout, and the
// peer's relink catch-up brings what it missed. It returns how many peers
// m was queued to.
func (n *Node) sendTo(ctx context.Context, peers []keys.PublicKey, m wire.Message) int {
	sent := 0
	for _, p := range peers {
		l, err := n.linkTo(p)
		if err != nil {
			n.log.Debug("relay: no link", "peer", p, "err", err)
			continue
		}
		if l.enqueue(ctx, m, 0) {
			sent++
			continue
		}
		l.dropped.Add(1)
		n.stats.dropped.Add(1)
		n.owe(l, m, time.Now())
	}
	return sent
}

// reroute sends again the Topic messages still queued on a link that
// closed (a failed dial, a write that failed or timed out, an eviction).
// They go where the forwarding rule sends them without that peer (a peer
// whose dial failed is out of the overlay already), so the ring is
// bridged at once instead of after the next gossip rounds; peers that
// already had a message drop it as a duplicate.
func (n *Node) reroute(ctx context.Context, l *link) {
	if l.user || ctx.Err() != nil {
		return
	}
	for {
		var m wire.Message
		select {
		case m = <-l.out:
		default:
			return
		}
		tm, ok := m.(wire.Topic)
		if !ok {
			continue
		}
		if n.overlay.subscribed(tm.Topic) {
			n.stats.relayed.Add(uint64(n.sendTo(ctx, n.overlay.forward(tm.Topic, l.remote), tm)))
			continue
		}
		if _, held := n.heldFor(ctx, tm.Topic); held {
			continue // for its named node only: handed over when it is back (held.go)
		}
		var others []keys.PublicKey
		for _, p := range n.overlay.handoff(tm.Topic) {
			if p != l.remote {
				others = append(others, p)
			}
		}
		n.stats.handedOff.Add(uint64(n.sendTo(ctx, others, tm)))
	}
}

// handle dispatches a message read from l. An error is a protocol
// violation or the last strike: the reader drops and quarantines the peer.
func (n *Node) handle(ctx context.Context, l *link, m wire.Message) error {
	if l.user {
		return n.handleUser(ctx, l, m)
	}
	switch m := m.(type) {
	case wire.Gossip:
		n.onGossip(ctx, l, m.Gossip)
	case wire.Topic:
		if mk, ok := wire.ParseAnswerMarker(m); ok {
			n.noteAnswerMarker(l, mk)
			return nil
		}
		if err := n.relay(ctx, origin{peer: l.remote, link: l}, m.Topic, m.Content); err != nil {
			n.log.Debug("relay", "peer", l.remote, "err", err)
		}
	case wire.QueryTopicMessages:
		if ok, err := n.allowRequest(l); !ok {
			return err
		}
		n.answerNodeQuery(ctx, l, m)
	case wire.GetPassport:
		if ok, err := n.allowRequest(l); !ok {
			return err
		}
		n.answerGetPassport(ctx, l, m.ID)
	case wire.PutPassport:
		if !n.passportAnswer(ctx, m) {
			return n.strike(l, "unsolicited or invalid PutPassport")
		}
	case wire.RegisterTopic, wire.DeregisterTopic:
		if err := n.strike(l, fmt.Sprintf("%v from a peer that is not a local user", m.Type())); err != nil {
			return err
		}
		return fmt.Errorf("%v: %w", m.Type(), errNotUser)
	}
	return nil
}

// errNotUser is a user-only request from a key not in users: the link is
// closed at once (still a strike, so a peer that insists is quarantined).
var errNotUser = errors.New("user-only request from a key that is not a local user")

// allowRequest applies the per-link request rate. A request over it is
// dropped and is a strike; the error is set once strikes earn a quarantine.
func (n *Node) allowRequest(l *link) (bool, error) {
	if ok, _ := l.requests.take(time.Now()); ok {
		return true, nil
	}
	return false, n.strike(l, "request rate exceeded")
}

// sendStored queues stored messages to l as Topic messages.
func (n *Node) sendStored(ctx context.Context, l *link, ms []store.Message) {
	for _, m := range ms {
		if !l.enqueue(ctx, wire.Topic{Topic: m.Topic, Content: m.Content}, n.cfg.WriteTimeout) {
			return
		}
	}
}
