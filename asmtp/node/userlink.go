package node

import (
	"context"
	"fmt"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/poldercast"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// The wire adapter for local users connected over a link (asmtp-cli): each
// user link holds a Session, its messages map onto the Session's methods,
// and the Session's deliveries are pushed back as Topic messages. The
// protocol has no replies or errors, so failures are only logged.
//
// Paging. An answer to QueryTopicMessages holds at most QueryLimit
// messages, oldest (first stored) first. The device cannot ask for the
// rest by time: Topic messages carry no time, so it never learns when the
// node received the last one it got (and `since` counts whole seconds,
// which a busy second could fill beyond the limit). Instead the link
// remembers, per topic, where an answer that reached the limit stopped
// (the since it answered and the cursor of its last message): the same
// query again, same topic and same since, continues after that message.
// An answer below the limit ends the paging (the next identical query
// starts over), and a different since starts afresh. A device therefore
// repeats its query until an answer comes back with fewer than the limit.
// Messages stored meanwhile get larger cursors, so they come in a later
// page (or are pushed live); nothing is skipped or sent twice within one
// paging.

// maxQueryPages bounds the paging positions a user link keeps: one per
// topic it may query, and it may query only the topics it registered.
const maxQueryPages = poldercast.MaxSubscriptions

// queryPage is where a full answer to QueryTopicMessages(topic, since)
// stopped on a user link.
type queryPage struct {
	since uint32 // as on the wire
	after int64  // the store cursor of the last message sent
}

// attachUserLink opens the session of a new user link and starts pushing
// its deliveries.
func (n *Node) attachUserLink(l *link) error {
	s, err := n.Attach(l.remote)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.session = s
	l.mu.Unlock()
	ctx, ok := n.context()
	if !ok || !n.spawn(func() { n.pushLoop(ctx, l, s) }) {
		s.Close()
		return ErrClosed
	}
	return nil
}

// pushLoop forwards a user link's deliveries. A link that stays full for
// WriteTimeout is stuck and closed; the user catches up with a query.
func (n *Node) pushLoop(ctx context.Context, l *link, s *Session) {
	for d := range s.Deliveries() {
		if !l.enqueue(ctx, wire.Topic{Topic: d.Topic, Content: d.Content}, n.cfg.WriteTimeout) {
			n.closeLink(l)
			return
		}
	}
}

// handleUser maps a user link's message onto its session.
func (n *Node) handleUser(ctx context.Context, l *link, m wire.Message) error {
	l.mu.Lock()
	s := l.session
	l.mu.Unlock()
	var err error
	switch m := m.(type) {
	case wire.Gossip:
		// A device is not part of the overlay.
	case wire.Topic:
		err = n.userPublish(ctx, l, s, m)
	case wire.RegisterTopic:
		err = s.Register(ctx, m.Topic)
	case wire.DeregisterTopic:
		err = s.Deregister(ctx, m.Topic)
	case wire.PutPassport:
		put := s.PutPassport
		if _, ok := l.keepPassports[m.ID]; ok {
			delete(l.keepPassports, m.ID)
			put = s.KeepPassport
		}
		id, perr := put(ctx, m.Blocks)
		if err = perr; err == nil && id != m.ID {
			n.log.Warn("user put a passport under another id", "user", l.remote, "claimed", m.ID, "id", id)
		}
	case wire.GetPassport:
		if !n.waitRequest(ctx, l) {
			return nil
		}
		var blocks []byte
		if blocks, err = s.GetPassport(ctx, m.ID); err == nil && len(blocks) <= wire.MaxPassportBlocks {
			l.enqueue(ctx, wire.PutPassport{ID: m.ID, Blocks: blocks}, n.cfg.WriteTimeout)
		}
	case wire.QueryTopicMessages:
		if !n.waitRequest(ctx, l) {
			return nil
		}
		err = n.answerUserQuery(ctx, l, s, m)
	}
	if err != nil {
		n.log.Debug("user request failed", "user", l.remote, "type", m.Type(), "err", err)
	}
	return nil
}

// userPublish publishes a user's Topic message: a user operation on
// wire.UserOpTopic is done instead, and a topic the link has a
// PublishTo hint for goes through Session.PublishTo.
func (n *Node) userPublish(ctx context.Context, l *link, s *Session, m wire.Topic) error {
	op, ok, err := wire.ParseUserOp(m)
	switch {
	case err != nil:
		return err
	case ok:
		return n.userOp(ctx, l, s, op)
	}
	if hint, ok := l.publishTo[m.Topic]; ok {
		return s.PublishTo(ctx, m.Topic, hint, m.Content)
	}
	return s.Publish(ctx, m.Topic, m.Content)
}

// userOp does a user operation (wire.UserOp, PROTOCOL.md §16.11). It runs
// on the link's reader, which owns l.publishTo and l.keepPassports.
func (n *Node) userOp(ctx context.Context, l *link, s *Session, op wire.UserOp) error {
	peer := PeerAddr{ID: op.Node, Addr: op.Addr}
	switch op.Code {
	case wire.OpRegisterInbox:
		return s.RegisterInbox(ctx, op.Topic)
	case wire.OpPublishTo:
		var hint *PeerAddr
		if op.Node != (keys.PublicKey{}) {
			hint = &peer
		}
		if _, ok := l.publishTo[op.Topic]; !ok && len(l.publishTo) >= maxQueryPages {
			clear(l.publishTo) // more than a user can publish to at once
		}
		if l.publishTo == nil {
			l.publishTo = make(map[topic.Topic]*PeerAddr)
		}
		l.publishTo[op.Topic] = hint
	case wire.OpCatchUp:
		if !n.waitRequest(ctx, l) {
			return nil
		}
		return s.CatchUp(ctx, op.Topic, peer, gossip.ToTime(op.Since))
	case wire.OpKeepPassport:
		if l.keepPassports == nil || len(l.keepPassports) >= maxQueryPages {
			l.keepPassports = make(map[passport.Hash]struct{})
		}
		l.keepPassports[op.Passport] = struct{}{}
	case wire.OpPeerNaming:
		v2, known := s.PeerNaming(op.Node)
		status := map[bool]uint8{false: 1, true: 2}[v2]
		if !known {
			status = 0
		}
		return n.answerUserOp(ctx, l, wire.UserOp{Code: op.Code | wire.OpAnswer, Node: op.Node, Value: status})
	case wire.OpHolders:
		count := s.Holders(op.Topic, int(op.Value))
		return n.answerUserOp(ctx, l, wire.UserOp{Code: op.Code | wire.OpAnswer, Topic: op.Topic, Value: uint8(count)})
	case wire.OpBucketBits:
		return n.answerUserOp(ctx, l, wire.UserOp{Code: op.Code | wire.OpAnswer, Value: uint8(s.BucketBits())})
	default:
		return fmt.Errorf("user op %d: not a request", op.Code)
	}
	return nil
}

func (n *Node) answerUserOp(ctx context.Context, l *link, op wire.UserOp) error {
	m, err := op.Message()
	if err != nil {
		return err
	}
	l.enqueue(ctx, m, n.cfg.WriteTimeout)
	return nil
}

// answerUserQuery answers a user's QueryTopicMessages with the next page
// (see Paging above). It runs on the link's reading goroutine, which owns
// l.pages.
func (n *Node) answerUserQuery(ctx context.Context, l *link, s *Session, q wire.QueryTopicMessages) error {
	var after int64
	if p, ok := l.pages[q.Topic]; ok && p.since == q.Since {
		after = p.after
	}
	ms, err := s.querySince(ctx, q.Topic, gossip.ToTime(q.Since), after)
	if err != nil {
		return err
	}
	n.sendStored(ctx, l, ms)
	if len(ms) < n.cfg.QueryLimit {
		delete(l.pages, q.Topic)
		return nil
	}
	if l.pages == nil {
		l.pages = make(map[topic.Topic]queryPage)
	}
	if _, ok := l.pages[q.Topic]; !ok && len(l.pages) >= maxQueryPages {
		// More pagings open than topics a user can register: start over
		// rather than grow (a device that follows the rule never gets here).
		clear(l.pages)
	}
	l.pages[q.Topic] = queryPage{since: q.Since, after: ms[len(ms)-1].Cursor}
	return nil
}

// waitRequest rate-limits a user's requests by waiting for a token: users
// are trusted, so a burst is slowed down, not punished.
func (n *Node) waitRequest(ctx context.Context, l *link) bool {
	for {
		ok, wait := l.requests.take(time.Now())
		if ok {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-l.done:
			return false
		case <-time.After(wait):
		}
	}
}
