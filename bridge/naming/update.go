package naming

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/asmtp/asmtp/asmtp/card"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
)

// What changes after the card exchange travels sealed to each v2
// contact's inbox, as the card's answer did (PROTOCOL.md §16.3): the
// account's passport after a rotation of its shared key (a passport
// update, kind 0x04), and its inbox seed after a contact was removed (a
// new card, flagged as an answer so that it is not answered). The
// registry records what each contact was told (accounts.Sent) once the
// node stored the sealed message, which it holds for the contact's node
// (§16.6); a crash in between sends it again, and a copy is harmless.

// tellChanges sends v2 contact c, whose newest card is to, what changed
// since it was last told. A contact with nothing recorded had its card
// exchange before the record existed: what it holds now is taken as told.
func (b *Accounts) tellChanges(ctx context.Context, s *node.Session, n *Account, c accounts.Contact, nm accounts.Naming, told accounts.Sent, known bool, now time.Time) {
	to := nm.Card
	if to == nil {
		return
	}
	seed, blocks := n.told()
	if !known {
		if err := b.reg.RecordSent(ctx, n.account, c.Passport, &seed, blocks); err != nil {
			b.log.Error("bridge: record what a contact was told", "account", n.account, "err", err)
		}
		return
	}
	// The update goes first: the card that may follow is sealed with the
	// new key, which the contact checks against the passport it holds.
	if told.Passport != accounts.PassportHash(blocks) {
		b.sendUpdate(ctx, s, n, c, to, blocks, now)
	}
	if told.Seed != accounts.SeedHash(seed) {
		// The contact keeps the card with the newest issued second: the
		// new seed's card must not share the second of the last one.
		if last := nm.CardSentAt.Unix(); !nm.CardSentAt.IsZero() && now.Unix() <= last {
			now = time.Unix(last+1, 0)
		}
		b.sendCard(ctx, s, n, c, to, now)
	}
}

// sendUpdate seals the account's passport blocks to contact c and
// publishes them on the contact's inbox of today, its node first.
func (b *Accounts) sendUpdate(ctx context.Context, s *node.Session, n *Account, c accounts.Contact, to *card.Card, blocks []byte, now time.Time) {
	sealed, err := card.SealUpdate(rand.Reader, n.Key(), c.SharedKey, blocks)
	if err != nil {
		b.log.Error("bridge: seal passport update", "account", n.account, "err", err)
		return
	}
	t, hint := topic.Inbox(to.Seed, topic.InboxDay(now)), &node.PeerAddr{ID: to.Node, Addr: to.Addr}
	if err := s.PublishTo(ctx, t, hint, sealed); err != nil {
		b.log.Warn("bridge: send passport update", "account", n.account, "to", c.Passport, "err", err)
		return
	}
	if err := b.reg.RecordSent(ctx, n.account, c.Passport, nil, blocks); err != nil {
		b.log.Error("bridge: record passport update sent", "account", n.account, "err", err)
	}
	b.log.Info("bridge: passport update sent", "account", n.account, "to", c.Passport)
}

// TakeUpdate takes an opened passport update (plaintext p, sealed by
// sender). It is taken only when the passport is a v2 contact's, sealed
// by the shared key it carries (its owner holds that secret), and extends
// the copy held by the ledger rules (blocks signed by the passport's
// master keys, no fork). The contact's copy is then replaced, its shared
// key with it, and the node keeps it. forged reports an update that
// fails these checks.
func (n *Account) TakeUpdate(ctx context.Context, sender keys.SharedKey, p []byte) (forged bool, err error) {
	log := n.b.log.With("account", n.account)
	blocks, err := card.DecodeUpdate(p)
	if err != nil {
		log.Warn("bridge: malformed passport update dropped", "err", err)
		return true, nil
	}
	now := time.Now()
	fresh, err := passport.Import(blocks, now)
	if err != nil {
		log.Warn("bridge: passport update with an invalid passport dropped", "err", err)
		return true, nil
	}
	if key, ok := fresh.SharedKey(); !ok || key != sender {
		log.Warn("bridge: passport update not sealed by the key it carries dropped", "passport", fresh.ID())
		return true, nil
	}
	contact, err := n.b.reg.Contact(ctx, n.account, fresh.ID())
	if errors.Is(err, accounts.ErrNoContact) || (err == nil && contact.Pending()) {
		log.Info("bridge: passport update from a passport not in the address book dropped", "passport", fresh.ID())
		return false, nil
	}
	if err != nil || contact.SharedKey == sender {
		return false, err // a copy already taken
	}
	if err := extends(contact.Blocks, blocks, now); err != nil {
		log.Warn("bridge: passport update that does not extend the passport held dropped", "passport", contact.Passport, "err", err)
		return true, nil
	}
	updated, _, err := n.b.reg.UpdateContactPassport(ctx, n.account, contact.Passport, blocks)
	if err != nil {
		return false, err
	}
	if _, err := n.session.KeepPassport(ctx, updated.Blocks); err != nil {
		log.Warn("bridge: keep a contact's updated passport on the node", "passport", contact.Passport, "err", err)
	}
	log.Info("bridge: contact rotated its shared key (passport update)", "passport", contact.Passport)
	n.b.cfg.WakeOutbound()
	return false, nil
}

// extends checks that blocks add to the passport held without a fork.
func extends(held, blocks []byte, now time.Time) error {
	have, err := passport.Import(held, now)
	if err != nil {
		return err
	}
	bs, err := passport.DecodeBlocks(blocks)
	if err != nil {
		return err
	}
	added, err := have.Merge(bs, now)
	if err == nil && added == 0 {
		err = errors.New("no new block")
	}
	return err
}
