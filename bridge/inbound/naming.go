package inbound

import (
	"context"
	"errors"

	"github.com/asmtp/asmtp/asmtp/card"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/bridge/accounts"
)

// Naming v2 (PROTOCOL.md §16). An inbox topic does not say who wrote: a
// content is opened with the account's key and its sender matched to a
// contact by the Noise X static key inside. What opens to a contact card
// (an answer to the account's own card) goes to Naming.TakeCard, as do
// the cards of the account's intro bucket, which the worker tries to open
// one by one: most are for other members of the bucket.

// openInbox opens a content that came on one of the account's inboxes.
func (w *Worker) openInbox(ctx context.Context, n Naming, m node.Stored) (accounts.Contact, mail.Chunk, bool, error) {
	sender, p, err := n.Open(m.Content)
	if err != nil {
		w.log.Debug("bridge: unreadable content on an inbox dropped", "err", err)
		w.report(ctx, m)
		return accounts.Contact{}, mail.Chunk{}, false, nil
	}
	if card.IsCard(p) {
		return accounts.Contact{}, mail.Chunk{}, false, w.takeCard(ctx, n, sender, p, m)
	}
	if card.IsUpdate(p) {
		return accounts.Contact{}, mail.Chunk{}, false, w.takeUpdate(ctx, n, sender, p, m)
	}
	c, err := w.contactByKey(ctx, sender)
	if errors.Is(err, accounts.ErrNoContact) {
		w.log.Warn("bridge: mail on an inbox from no contact dropped", "sender", sender)
		w.report(ctx, m)
		return c, mail.Chunk{}, false, nil
	}
	if err != nil {
		return c, mail.Chunk{}, false, err
	}
	ch, err := chunkOf(sender, m.Content, p)
	if err != nil {
		w.log.Warn("bridge: malformed mail on an inbox dropped", "contact", c.Passport, "err", err)
		w.report(ctx, m)
		return c, ch, false, nil
	}
	return c, ch, true, nil
}

// chunkOf decodes an opened payload as mail.Open does.
func chunkOf(sender keys.SharedKey, content, p []byte) (mail.Chunk, error) {
	if mail.IsLegacy(p) {
		return mail.Chunk{Sender: sender, ID: mail.LegacyID(content), Kind: mail.KindLegacyText, Count: 1, Total: uint32(len(p)), Data: p}, nil
	}
	ch, err := mail.DecodePayload(p)
	ch.Sender = sender
	return ch, err
}

// tryCard opens a content of the account's intro bucket, when it has a
// card's size.
func (w *Worker) tryCard(ctx context.Context, n Naming, m node.Stored) error {
	if len(m.Content) != card.SealedSize {
		return nil
	}
	sender, p, err := n.Open(m.Content)
	if err != nil || !card.IsCard(p) {
		return nil // for another member of the bucket
	}
	return w.takeCard(ctx, n, sender, p, m)
}

func (w *Worker) takeCard(ctx context.Context, n Naming, sender keys.SharedKey, p []byte, m node.Stored) error {
	forged, err := n.TakeCard(ctx, sender, p)
	if forged {
		w.report(ctx, m)
	}
	return err
}

// takeUpdate hands a passport update to the naming state; a forged one is
// reported to the node like other unreadable content.
func (w *Worker) takeUpdate(ctx context.Context, n Naming, sender keys.SharedKey, p []byte, m node.Stored) error {
	forged, err := n.TakeUpdate(ctx, sender, p)
	if forged {
		w.report(ctx, m)
	}
	return err
}
