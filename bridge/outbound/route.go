package outbound

import (
	"context"
	"errors"
	"time"

	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/mailstore"
)

// Naming v2 (PROTOCOL.md §16): mail to a v2 contact goes to the contact's
// inbox of the day, to the contact's node first (from its card), without
// the sender's node subscribing to anything. Mail to a contact whose card
// has not come yet waits (errAwaitingCard); the bridge makes a contact
// that never answers a v1 one, whose mail goes on the pair topic.

// awaitingCardWait is how soon mail waiting for a card is looked at
// again, without counting an attempt: the card usually comes within
// seconds of the contact's.
const awaitingCardWait = time.Second

// errAwaitingCard: the recipient's card has not come back yet.
var errAwaitingCard = errors.New("waiting for the recipient's contact card (naming v2)")

// route is where mail to a contact goes: a v2 contact's inbox of the
// day, its node first (hint), or a v1 contact's pair topic (no hint).
type route struct {
	topic topic.Topic
	hint  *node.PeerAddr
}

// route is the contact's route now.
func (w *Worker) route(ctx context.Context, it mailstore.OutboxItem, c accounts.Contact) (route, error) {
	if w.cfg.NamingV1 {
		return route{topic: c.Topic}, nil
	}
	nm, err := w.dir.ContactNaming(ctx, it.Account, c.Passport)
	switch {
	case err != nil:
		return route{}, err
	case nm.Scheme == accounts.SchemeV1:
		return route{topic: c.Topic}, nil
	case nm.Scheme == accounts.SchemeV2 && nm.Card != nil:
		return route{
			topic: topic.Inbox(nm.Card.Seed, topic.InboxDay(time.Now())),
			hint:  &node.PeerAddr{ID: nm.Card.Node, Addr: nm.Card.Addr},
		}, nil
	}
	return route{}, errAwaitingCard
}

// publish hands contents to the node on the route's topic.
func (r route) publish(ctx context.Context, s Publisher, contents [][]byte) error {
	if r.hint == nil {
		return s.PublishBatch(ctx, r.topic, contents)
	}
	return s.PublishTo(ctx, r.topic, r.hint, contents...)
}
