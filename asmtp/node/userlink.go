package node

import (
	"context"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// The wire adapter for local users connected over a link (asmtp-cli): each
// user link holds a Session, its messages map onto the Session's methods,
// and the Session's deliveries are pushed back as Topic messages. The
// protocol has no replies or errors, so failures are only logged.

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
		err = s.Publish(ctx, m.Topic, m.Content)
	case wire.RegisterTopic:
		err = s.Register(ctx, m.Topic)
	case wire.DeregisterTopic:
		err = s.Deregister(ctx, m.Topic)
	case wire.PutPassport:
		id, perr := s.PutPassport(ctx, m.Blocks)
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
		ms, qerr := s.querySince(ctx, m.Topic, gossip.ToTime(m.Since))
		if err = qerr; err == nil {
			n.sendStored(ctx, l, ms)
		}
	}
	if err != nil {
		n.log.Debug("user request failed", "user", l.remote, "type", m.Type(), "err", err)
	}
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
