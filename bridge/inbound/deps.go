package inbound

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/mailstore"
)

// Config configures a Worker.
type Config struct {
	Limits
	// Domain of the pseudo-addresses, for the From the INBOX copy gets.
	Domain string
	// NodeKey unseals the account's shared secret (accounts.Registry.Secrets).
	NodeKey ed25519.PrivateKey
	// RotationGrace is how long mail sealed with a contact's replaced
	// shared key is still taken on its old topic.
	RotationGrace time.Duration
	// Naming is the account's naming-v2 state; nil when the bridge speaks
	// only v1.
	Naming Naming
	// Logger receives the worker's logs. Default slog.Default().
	Logger *slog.Logger
}

// Naming is an account's naming-v2 state (PROTOCOL.md §16), kept by the
// bridge: which topics are its inboxes and its intro bucket, the key that
// opens what comes on them, and what to do with a contact card.
type Naming interface {
	IsInbox(t topic.Topic) bool
	IsBucket(t topic.Topic) bool
	// Topics are the subscribed inboxes and the bucket, to read from the
	// node's store.
	Topics() []topic.Topic
	// Open opens a content sealed to the account's shared key (the
	// current one or, for a while after a rotation, the one before).
	Open(sealed []byte) (keys.SharedKey, []byte, error)
	// TakeCard takes an opened card (plaintext p, sealed by sender):
	// verifies it against the passport it names, records it and answers
	// it. forged reports a card sealed by another key than that passport's.
	TakeCard(ctx context.Context, sender keys.SharedKey, p []byte) (forged bool, err error)
	// TakeUpdate takes an opened passport update (§16.3): a contact's
	// rotated passport, checked against the copy held. forged reports
	// one that fails the checks.
	TakeUpdate(ctx context.Context, sender keys.SharedKey, p []byte) (forged bool, err error)
}

// Directory is what the worker reads of the account registry (an
// *accounts.Registry): the account's secret, and the contacts whose
// shared keys may seal what comes on a topic.
type Directory interface {
	Account(ctx context.Context, name string) (accounts.Account, error)
	Secrets(ctx context.Context, nodeKey ed25519.PrivateKey, name string) (accounts.AccountSecrets, error)
	Contacts(ctx context.Context, account string) ([]accounts.Contact, error)
	ContactByTopic(ctx context.Context, account string, t topic.Topic) (accounts.Contact, error)
	RotatedContacts(ctx context.Context, account string, graceStart time.Time) ([]accounts.Contact, error)
	RotatedContactByTopic(ctx context.Context, account string, t topic.Topic, graceStart time.Time) (accounts.Contact, error)
}

// Mailbox is the account's side of the mailstore (a *mailstore.DB): the
// durable reassembly buffer, the INBOX delivery, the notices, and the
// cursors of what was read from the node.
type Mailbox interface {
	AddChunk(ctx context.Context, account string, c mailstore.InboundChunk, now time.Time, lim mailstore.ReassemblyLimits) (mailstore.ChunkResult, error)
	Chunks(ctx context.Context, account string, sender [32]byte, id [16]byte) ([]mailstore.InboundChunk, error)
	MessageState(ctx context.Context, account string, sender [32]byte, id [16]byte) (appended bool, held int, err error)
	CompleteMessages(ctx context.Context, account string) ([]mailstore.PendingMessage, error)
	ExpireChunks(ctx context.Context, account string, idleSince time.Time) ([]mailstore.PendingMessage, error)
	AppendInbound(ctx context.Context, account string, sender [32]byte, id [16]byte, head, body []byte, now time.Time) (mailstore.Appended, bool, error)
	ForgetAppended(ctx context.Context, account string, keep int) (int64, error)
	Append(ctx context.Context, account, mailbox string, raw []byte, flags []string, internalDate time.Time) (mailstore.Appended, error)
	InboundCursor(ctx context.Context, account string, topic []byte) (int64, error)
	SetInboundCursors(ctx context.Context, account string, cursors map[string]int64) error
}

// Subscription is the account's node session (a *node.Session) as the
// worker reads it: what the node pushes, what it stored, and the
// acknowledgements that let it count the account's quota.
type Subscription interface {
	Deliveries() <-chan node.Delivery
	Query(ctx context.Context, t topic.Topic, since node.Cursor) ([]node.Stored, error)
	Fetched(ctx context.Context, t topic.Topic, c node.Cursor) error
	Report(ctx context.Context, c node.Cursor) error
}
