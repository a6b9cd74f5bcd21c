package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// Naming v2, the node's side (PROTOCOL.md §16). The node sets gossip info
// bit 10 (unless Config.NamingV1) and gives its users what inbox topics
// and intro buckets need:
//
//   - RegisterInbox: a topic only this node subscribes to (an account's
//     daily inbox). It is left out of the settled test, never caught up
//     from "any subscriber" (there is none), and never answered to
//     another node.
//   - PublishTo: publish on a topic the node does not subscribe to (a
//     contact's inbox, an intro bucket), naming the node it is for. The
//     messages are stored durably and held for Retention (the sender's
//     node is what holds mail for an offline recipient, §16.6) and go to
//     the named node only, handed over when its own gossip on a link shows
//     the topic (held.go); with no node named, to known subscribers.
//   - CatchUp: ask one named node for a topic's messages since a time.
//   - KeepPassport: store a passport without subscribing to its topic;
//     GetPassport then finds passports through the nodes that hold them
//     (intro-bucket members and linked nodes), none advertising it.
//   - PeerNaming: whether a node's signed gossip says it speaks v2.
//
// Who may read what a node stores (§16.7, answerNodeQuery): intro buckets
// and v1 topics as before (a peer whose own gossip on the link subscribes);
// a held topic only its named node; an own inbox nobody; a passport topic
// v1 peers only. Anything else gets the same empty answer as a kept topic
// with nothing new.

// PeerAddr names a node and where to dial it, as a contact card does.
type PeerAddr struct {
	ID   keys.PublicKey
	Addr string // "host:port"
}

const (
	// maxDialHints bounds the dial addresses learnt from users (PublishTo,
	// CatchUp) for nodes outside the overlay's views.
	maxDialHints = 1024
	// maxHeldPending bounds the held topics the node still tries to hand
	// over; beyond it a new one is left to the recipient's catch-up.
	maxHeldPending = 4096
)

// RegisterInbox registers t for the user as an inbox topic (§16.3): the
// node subscribes at once, keeps and pushes t's messages like Register,
// but leaves t out of the settled test, schedules no catch-up from other
// subscribers (only this node subscribes: catch up from the senders'
// nodes with CatchUp) and answers no other node's query for it.
func (s *Session) RegisterInbox(ctx context.Context, t topic.Topic) error {
	if err := s.check(); err != nil {
		return err
	}
	n := s.n
	if err := n.overlay.subscribeInbox(t, time.Now()); err != nil {
		return fmt.Errorf("register inbox %s: %w", t, err)
	}
	if err := n.store.RegisterInbox(ctx, s.user, t); err != nil {
		n.unsubscribeUnused(t)
		return err
	}
	n.markInbox(t)
	n.addRegistration(s.user, t)
	return nil
}

// PublishTo publishes contents on t, a topic the user reads nowhere (a
// contact's inbox, an intro bucket), for the node hint names (nil: no
// node named, as for an intro bucket). It returns once the messages are
// stored durably (held.go): the node holds them for Config.Retention.
// With a named node they go to that node only (a link is opened if
// needed), now and whenever its own gossip on a link shows t, and only it
// may fetch them with a query: a crawler that copies t from the
// recipient's gossip gets nothing. Without one they go to the nodes the
// overlay knows subscribe to t, now or once it learns one. On a topic a
// local user registered (an account of this node) it is Publish, and
// also sent to the named node. Publishing the same content again sends it
// again.
func (s *Session) PublishTo(ctx context.Context, t topic.Topic, hint *PeerAddr, contents ...[]byte) error {
	if err := s.check(); err != nil {
		return err
	}
	for i, c := range contents {
		if len(c) > wire.MaxTopicContent {
			return fmt.Errorf("publish: message %d of %d: %d bytes of content, maximum %d", i+1, len(contents), len(c), wire.MaxTopicContent)
		}
	}
	rc, err := s.n.runContext(ctx)
	if err != nil {
		return err
	}
	n := s.n
	if hint != nil {
		n.noteDialHint(*hint)
	}
	if n.registered(t) {
		if err := n.relay(ctx, origin{session: s}, t, contents...); err != nil {
			return err
		}
		n.sendHinted(rc, t, hint, contents, false)
		return nil
	}
	wasPending, err := n.hold(ctx, t, hint, contents)
	if err != nil {
		return err
	}
	if hint != nil {
		n.sendHinted(rc, t, hint, contents, wasPending)
	} else {
		n.handOverHeld(rc, t, contents)
	}
	return nil
}

// CatchUp asks the node from for t's messages received since (§16.6):
// our own gossip goes first on the link, so that from sees that we
// subscribe to t. The answer arrives like any message of t (Deliveries).
// The user must have registered t. It returns once the query is queued.
func (s *Session) CatchUp(ctx context.Context, t topic.Topic, from PeerAddr, since time.Time) error {
	if err := s.check(); err != nil {
		return err
	}
	n := s.n
	if !n.registeredBy(s.user, t) {
		return fmt.Errorf("catch up %s: topic not registered by %s", t, s.user)
	}
	if _, err := n.runContext(ctx); err != nil {
		return err
	}
	if from.ID == n.id {
		return fmt.Errorf("catch up %s: %s is this node", t, from.ID)
	}
	n.noteDialHint(from)
	// Queued for catchUpLoop, which paces the queries below from's
	// request rate: a bridge asks for every inbox of every contact at
	// start, and sent at once they would get this node quarantined by
	// the very nodes holding its mail. The loop follows the query until
	// an answer completes and asks again if the link goes first.
	select {
	case n.catchUps <- catchUp{topic: t, since: since, peer: from.ID, direct: true}:
		return nil
	default:
		return fmt.Errorf("catch up %s from %s: too many catch-ups waiting", t, from.ID)
	}
}

// KeepPassport stores a passport like PutPassport but without subscribing
// to its topic (a v2 account's own passport, a v2 contact's): the node
// answers lookups for it by id and advertises nothing. A passport the
// node subscribed to is unsubscribed.
func (s *Session) KeepPassport(ctx context.Context, blocks []byte) (passport.Hash, error) {
	if err := s.check(); err != nil {
		return passport.Hash{}, err
	}
	return s.n.storePassport(ctx, blocks, true)
}

// PeerNaming reports whether node id speaks naming v2, from the info flag
// of the newest signed gossip of it the node has seen (known false: none).
func (s *Session) PeerNaming(id keys.PublicKey) (v2, known bool) {
	return s.n.peerNaming(id)
}

// --- the node's records ---

// namingState is the node's naming-v2 bookkeeping.
type namingState struct {
	mu      sync.Mutex
	inboxes map[topic.Topic]struct{}        // registered as inboxes
	hints   map[keys.PublicKey]string       // dial addresses users gave
	peers   map[keys.PublicKey]namingRecord // peers' naming flags
	pending map[topic.Topic]pendingTopic    // held topics to hand over (held.go)
	// recorded are held records known to be stored (held.go).
	recorded map[topic.Topic]PeerAddr
}

func (s *namingState) init() {
	s.inboxes = make(map[topic.Topic]struct{})
	s.hints = make(map[keys.PublicKey]string)
	s.peers = make(map[keys.PublicKey]namingRecord)
	s.pending = make(map[topic.Topic]pendingTopic)
	s.recorded = make(map[topic.Topic]PeerAddr)
}

// namingRecord is what a node's newest gossip said of its naming.
type namingRecord struct {
	v2   bool
	time uint32
}

// notePeerNaming records the naming flag of a verified gossip.
func (n *Node) notePeerNaming(id keys.PublicKey, v2 bool, at uint32) {
	s := &n.naming
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.peers[id]
	if ok && r.time > at {
		return
	}
	if !ok && len(s.peers) >= MaxPeerRecords {
		for k := range s.peers { // any one: a forgotten peer is "unknown"
			delete(s.peers, k)
			break
		}
	}
	s.peers[id] = namingRecord{v2: v2, time: at}
}

func (n *Node) peerNaming(id keys.PublicKey) (v2, known bool) {
	if id == n.id {
		return !n.cfg.NamingV1, true
	}
	n.naming.mu.Lock()
	defer n.naming.mu.Unlock()
	r, ok := n.naming.peers[id]
	return r.v2, ok
}

// noteDialHint remembers where a user said a node is, for linkTo.
func (n *Node) noteDialHint(p PeerAddr) {
	if p.Addr == "" || p.ID == n.id {
		return
	}
	s := &n.naming
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.hints[p.ID]; !ok && len(s.hints) >= maxDialHints {
		for k := range s.hints {
			delete(s.hints, k)
			break
		}
	}
	s.hints[p.ID] = p.Addr
}

func (n *Node) dialHint(id keys.PublicKey) (string, bool) {
	n.naming.mu.Lock()
	defer n.naming.mu.Unlock()
	a, ok := n.naming.hints[id]
	return a, ok
}

func (n *Node) markInbox(t topic.Topic) {
	n.naming.mu.Lock()
	defer n.naming.mu.Unlock()
	n.naming.inboxes[t] = struct{}{}
}

// unmarkInbox forgets that t is an inbox: its last registration went.
func (n *Node) unmarkInbox(t topic.Topic) {
	n.naming.mu.Lock()
	defer n.naming.mu.Unlock()
	delete(n.naming.inboxes, t)
}

// inboxTopics returns the topics registered as inboxes.
func (n *Node) inboxTopics() []topic.Topic {
	n.naming.mu.Lock()
	defer n.naming.mu.Unlock()
	out := make([]topic.Topic, 0, len(n.naming.inboxes))
	for t := range n.naming.inboxes {
		out = append(out, t)
	}
	return out
}

// isInbox reports whether a user registered t as an inbox.
func (n *Node) isInbox(t topic.Topic) bool {
	n.naming.mu.Lock()
	defer n.naming.mu.Unlock()
	_, ok := n.naming.inboxes[t]
	return ok
}

// mayRead reports whether the node peer on l may read t from this node
// (§16.7). Only an answer to such a query carries messages.
func (n *Node) mayRead(ctx context.Context, l *link, t topic.Topic) bool {
	if n.isInbox(t) {
		return false // only its owner, this node, subscribes: its users read it
	}
	if _, ok := t.Passport(); ok && !n.cfg.NamingV1 && l.speaksV2() {
		return false // v2 nodes never subscribe to passport topics
	}
	if node, held := n.heldFor(ctx, t); held {
		return node == l.remote && l.advertises(t)
	}
	return n.cfg.OpenQueries || l.advertises(t)
}

// bucketBits is the intro-bucket width this node uses (buckets.go).
func (n *Node) bucketBits() int { return n.buckets.get() }

// BucketBits is the intro-bucket width (topic.IntroBucket) the node's
// users should register and publish first contacts with. It follows the
// node's estimate of the network size (§16.4) and changes at most once a
// BucketHold: users re-register their accounts' buckets when it does.
func (s *Session) BucketBits() int { return s.n.bucketBits() }
