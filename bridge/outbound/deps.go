package outbound

import (
	"context"
	"crypto/ed25519"
	"time"

	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/mailstore"
)

// Directory is what delivery reads and writes of the account registry
// (an *accounts.Registry): the sender's account and secrets, and the
// recipient's contact, added when its passport is found on the network.
type Directory interface {
	Account(ctx context.Context, name string) (accounts.Account, error)
	Secrets(ctx context.Context, nodeKey ed25519.PrivateKey, name string) (accounts.AccountSecrets, error)
	Contacts(ctx context.Context, account string) ([]accounts.Contact, error)
	Contact(ctx context.Context, account string, id passport.Hash) (accounts.Contact, error)
	AddContact(ctx context.Context, account, petname string, blocks []byte) (accounts.Contact, error)
	UpdateContactPassport(ctx context.Context, account string, id passport.Hash, blocks []byte) (accounts.Contact, bool, error)
	// ContactNaming is how the account reaches the contact (naming v2).
	ContactNaming(ctx context.Context, account string, id passport.Hash) (accounts.Naming, error)
}

// Outbox is the mailstore's outbox (a *mailstore.DB): submissions go in,
// the worker takes due entries and records each attempt's outcome, with
// the bounce or delay report it puts in the sender's INBOX.
type Outbox interface {
	Enqueue(ctx context.Context, sub mailstore.Submission, now time.Time) (int64, error)
	NextDelivery(ctx context.Context) (time.Time, bool, error)
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]mailstore.OutboxItem, error)
	OutboxMessageHeld(ctx context.Context, budget *mailstore.MemoryBudget, id int64) ([]byte, func(), error)
	DeliverySucceeded(ctx context.Context, it mailstore.OutboxItem) error
	DeliveryFailed(ctx context.Context, it mailstore.OutboxItem, bounce []byte, now time.Time) (mailstore.Appended, error)
	DeliveryDelayed(ctx context.Context, it mailstore.OutboxItem, report []byte, now time.Time) (mailstore.Appended, error)
	DeliveryPostponed(ctx context.Context, it mailstore.OutboxItem, next time.Time) error
	DeliveryHanded(ctx context.Context, it mailstore.OutboxItem, now, next time.Time, cause string) error
	DeliveryDeferred(ctx context.Context, it mailstore.OutboxItem, next time.Time, cause string) error
	AppendInbound(ctx context.Context, account string, sender [32]byte, id [16]byte, head, body []byte, now time.Time) (mailstore.Appended, bool, error)
}

// Publisher is an account's node session (a *node.Session) as delivery
// uses it.
type Publisher interface {
	// Register makes the node keep what is published on t.
	Register(ctx context.Context, t topic.Topic) error
	// PublishBatch returns once the node has stored contents durably.
	PublishBatch(ctx context.Context, t topic.Topic, contents [][]byte) error
	// PublishTo returns once the node has stored contents on t, a topic it
	// does not subscribe to, for the node hint names (a v2 contact's inbox).
	PublishTo(ctx context.Context, t topic.Topic, hint *node.PeerAddr, contents ...[]byte) error
	// Holders counts the other holders of t seen, up to limit.
	Holders(t topic.Topic, limit int) int
	// GetPassport fetches a passport from the network.
	GetPassport(ctx context.Context, id passport.Hash) ([]byte, error)
}

// Sessions finds accounts' node sessions.
type Sessions interface {
	// Publisher is the account's session, or nil (an untyped nil) while
	// the account is not on the node.
	Publisher(account string) Publisher
}
