package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/asmtp/asmtp/asmtp/card"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// namingSchema (version 3) is naming v2 (asmtp/PROTOCOL.md §16): the
// profile's inbox seed and, per contact, how we reach them and their
// newest card. The seed is stored in clear like the messages: the
// database is the user's own (mode 0600). synced_at is the sync cursor of
// the own inboxes and intro bucket, as contacts.synced_at is of a pair
// topic. The contacts held before are v1 contacts, whose pair topic shows
// in gossip already: mail keeps flowing with a peer that never answers a
// card, and one card offers them v2.
const namingSchema = `
CREATE TABLE own_naming (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	inbox_seed BLOB NOT NULL,
	synced_at  INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE contacts ADD COLUMN scheme INTEGER NOT NULL DEFAULT 0 CHECK (scheme IN (0, 1, 2));
ALTER TABLE contacts ADD COLUMN card_seed BLOB;
ALTER TABLE contacts ADD COLUMN card_node BLOB;
ALTER TABLE contacts ADD COLUMN card_addr TEXT;
ALTER TABLE contacts ADD COLUMN card_issued INTEGER;
ALTER TABLE contacts ADD COLUMN card_sent_at INTEGER NOT NULL DEFAULT 0;
UPDATE contacts SET scheme = 1;
PRAGMA user_version = 3;
`

// scheme is how we reach a contact, as the bridge's accounts.Scheme.
type scheme uint8

const (
	// schemeUnknown: our card went out (or is about to), none came back.
	schemeUnknown scheme = 0
	// schemeV1: the pair topic; the contact never answered with a card.
	schemeV1 scheme = 1
	// schemeV2: the contact's inbox, from its card.
	schemeV2 scheme = 2
)

func (s scheme) String() string {
	switch s {
	case schemeV1:
		return "v1"
	case schemeV2:
		return "v2"
	}
	return "awaiting-card"
}

// namingRow is the naming columns of a contacts row.
type namingRow struct {
	scheme, sentAt int64
	seed, node     []byte
	addr           sql.NullString
	issued         sql.NullInt64
}

// fill sets c's naming from the row; a card with a wrong-sized field is
// left out.
func (n namingRow) fill(c *contact) {
	c.naming = scheme(n.scheme)
	if n.sentAt > 0 {
		c.cardSentAt = time.Unix(n.sentAt, 0)
	}
	if len(n.seed) != topic.InboxSeedSize || len(n.node) != keys.PublicKeySize || !n.addr.Valid || !n.issued.Valid {
		return
	}
	cd := card.Card{Scheme: card.SchemeV2, Passport: c.passport, Addr: n.addr.String, Issued: time.Unix(n.issued.Int64, 0).UTC()}
	copy(cd.Seed[:], n.seed)
	copy(cd.Node[:], n.node)
	c.card = &cd
}

// inboxSeed returns the profile's inbox seed, drawing one the first time.
func (d *db) inboxSeed(ctx context.Context) (topic.InboxSeed, error) {
	var seed topic.InboxSeed
	if _, err := rand.Read(seed[:]); err != nil {
		return seed, fmt.Errorf("draw inbox seed: %w", err)
	}
	if _, err := d.sql.ExecContext(ctx, `INSERT INTO own_naming (id, inbox_seed) VALUES (1, ?) ON CONFLICT DO NOTHING`, seed[:]); err != nil {
		return seed, fmt.Errorf("store inbox seed: %w", err)
	}
	var b []byte
	if err := d.sql.QueryRowContext(ctx, `SELECT inbox_seed FROM own_naming WHERE id = 1`).Scan(&b); err != nil {
		return seed, fmt.Errorf("read inbox seed: %w", err)
	}
	if len(b) != topic.InboxSeedSize {
		return seed, fmt.Errorf("inbox seed: %d bytes, corrupt", len(b))
	}
	copy(seed[:], b)
	return seed, nil
}

// namingSyncedAt is the sync cursor of the own inboxes and bucket.
func (d *db) namingSyncedAt(ctx context.Context) (time.Time, error) {
	var at int64
	err := d.sql.QueryRowContext(ctx, `SELECT synced_at FROM own_naming WHERE id = 1`).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) || at == 0 {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read naming sync cursor: %w", err)
	}
	return time.Unix(at, 0), nil
}

func (d *db) setNamingSyncedAt(ctx context.Context, t time.Time) error {
	if _, err := d.sql.ExecContext(ctx, `UPDATE own_naming SET synced_at = ? WHERE id = 1`, t.Unix()); err != nil {
		return fmt.Errorf("save naming sync cursor: %w", err)
	}
	return nil
}

// takeCard records a contact's verified card unless an equally new or
// newer one is recorded; the contact becomes a v2 contact. It reports
// whether the card was recorded.
func (d *db) takeCard(ctx context.Context, c card.Card) (bool, error) {
	res, err := d.sql.ExecContext(ctx, `UPDATE contacts SET scheme = 2, card_seed = ?, card_node = ?, card_addr = ?, card_issued = ?
		WHERE passport_id = ? AND (card_issued IS NULL OR card_issued < ?)`,
		c.Seed[:], c.Node[:], c.Addr, c.Issued.Unix(), c.Passport[:], c.Issued.Unix())
	if err != nil {
		return false, fmt.Errorf("record card of %s: %w", c.Passport, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// cardSent records that our card went to contact id at.
func (d *db) cardSent(ctx context.Context, id passport.Hash, at time.Time) error {
	if _, err := d.sql.ExecContext(ctx, `UPDATE contacts SET card_sent_at = ? WHERE passport_id = ?`, at.Unix(), id[:]); err != nil {
		return fmt.Errorf("record card sent to %s: %w", id, err)
	}
	return nil
}

// fallBackToV1 makes contact id a v1 contact, unless its card came.
func (d *db) fallBackToV1(ctx context.Context, id passport.Hash) error {
	if _, err := d.sql.ExecContext(ctx, `UPDATE contacts SET scheme = 1 WHERE passport_id = ? AND scheme = 0`, id[:]); err != nil {
		return fmt.Errorf("make %s a v1 contact: %w", id, err)
	}
	return nil
}

// contactBySharedKey finds the contact whose passport's current shared
// key is k: who sealed a mail on one of our inboxes.
func (d *db) contactBySharedKey(ctx context.Context, k keys.SharedKey) (contact, bool, error) {
	c, err := scanContact(d.sql.QueryRowContext(ctx, `SELECT `+contactColumns+` FROM contacts WHERE shared_key = ?`, k[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("contact of key %s: %w", k, err)
	}
	return c, true, nil
}
