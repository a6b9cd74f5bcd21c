package accounts

import (
	"context"
	"crypto/ed25519"
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

// namingMigration is the registry's step for naming v2 (PROTOCOL.md §16):
// each account's inbox seed, and what each contact's card said.
const namingMigration = `
-- The account's inbox seed (§16.3), sealed like its other secrets (field
-- "inbox seed"). The daemon draws it the first time it needs it.
CREATE TABLE inbox_seeds (
	account TEXT PRIMARY KEY REFERENCES accounts(name) ON DELETE CASCADE,
	sealed_seed BLOB NOT NULL,
	created_at INTEGER NOT NULL             -- unix seconds
) WITHOUT ROWID;
-- How the account talks to each contact. scheme: 0 = not known yet (our
-- card sent, no card back), 1 = v1 (pair topic), 2 = v2 (card received).
-- The card columns hold the contact's newest card; its seed is stored in
-- clear like the pair topic of a v1 contact: it names topics, it opens
-- nothing.
CREATE TABLE contact_naming (
	account TEXT NOT NULL,
	passport_id BLOB NOT NULL,
	scheme INTEGER NOT NULL DEFAULT 0 CHECK (scheme IN (0, 1, 2)),
	card_seed BLOB,
	card_node BLOB,
	card_addr TEXT,
	card_issued INTEGER,                    -- unix seconds
	card_sent_at INTEGER NOT NULL DEFAULT 0,-- unix seconds: when our card last went to the contact
	PRIMARY KEY (account, passport_id),
	FOREIGN KEY (account, passport_id) REFERENCES contacts(account, passport_id) ON DELETE CASCADE
) WITHOUT ROWID;
`

// fieldInboxSeed names the sealed inbox seed (sealer.go).
const fieldInboxSeed = "inbox seed"

// Scheme is how an account reaches a contact.
type Scheme uint8

const (
	// SchemeUnknown: the account's card went out and no card came back
	// yet. Mail waits (CardWait) rather than use the pair topic, which
	// would show the pair in gossip.
	SchemeUnknown Scheme = 0
	// SchemeV1: the pair topic and the contact's passport topic (§16.8):
	// the contact never answered with a card.
	SchemeV1 Scheme = 1
	// SchemeV2: the contact's inbox, from its card (§16.3).
	SchemeV2 Scheme = 2
)

func (s Scheme) String() string {
	switch s {
	case SchemeV1:
		return "v1"
	case SchemeV2:
		return "v2"
	}
	return "awaiting card"
}

// Naming is what the registry knows about how to reach one contact.
type Naming struct {
	Scheme     Scheme
	Card       *card.Card // the contact's newest card; nil before one came
	CardSentAt time.Time  // zero: the account's card never went out
}

// InboxSeed returns the account's inbox seed, drawing and storing one the
// first time. It needs the node key, which seals it.
func (r *Registry) InboxSeed(ctx context.Context, nodeKey ed25519.PrivateKey, account string) (topic.InboxSeed, error) {
	var seed topic.InboxSeed
	s, err := newSealer(nodeKey)
	if err != nil {
		return seed, fmt.Errorf("inbox seed of %s: %w", account, err)
	}
	seed, err = r.loadInboxSeed(ctx, s, account)
	if errors.Is(err, sql.ErrNoRows) {
		if err = r.drawInboxSeed(ctx, s, account); err == nil {
			seed, err = r.loadInboxSeed(ctx, s, account)
		}
	}
	return seed, err
}

// loadInboxSeed unseals the stored seed (sql.ErrNoRows: none yet).
func (r *Registry) loadInboxSeed(ctx context.Context, s *sealer, account string) (topic.InboxSeed, error) {
	var (
		seed   topic.InboxSeed
		sealed []byte
	)
	err := r.db.QueryRowContext(ctx, "SELECT sealed_seed FROM inbox_seeds WHERE account = ?", account).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return seed, err
	}
	if err != nil {
		return seed, fmt.Errorf("inbox seed of %s: %w", account, err)
	}
	plain, err := s.open(account, fieldInboxSeed, sealed)
	if err != nil {
		return seed, err
	}
	if len(plain) != len(seed) {
		return seed, fmt.Errorf("inbox seed of %s: %d bytes", account, len(plain))
	}
	copy(seed[:], plain)
	return seed, nil
}

// drawInboxSeed stores a fresh seed, unless another process stored one
// first.
func (r *Registry) drawInboxSeed(ctx context.Context, s *sealer, account string) error {
	var seed topic.InboxSeed
	if _, err := rand.Read(seed[:]); err != nil {
		return fmt.Errorf("draw inbox seed: %w", err)
	}
	sealed, err := s.seal(account, fieldInboxSeed, seed[:])
	if err != nil {
		return err
	}
	_, err = r.db.ExecContext(ctx, "INSERT INTO inbox_seeds (account, sealed_seed, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
		account, sealed, time.Now().Unix())
	if err != nil {
		return fmt.Errorf("store inbox seed of %s: %w", account, err)
	}
	return nil
}

// ContactNaming is how the account reaches contact id (a zero Naming when
// nothing was recorded yet).
func (r *Registry) ContactNaming(ctx context.Context, account string, id passport.Hash) (Naming, error) {
	all, err := r.namings(ctx, "account = ? AND passport_id = ?", account, id[:])
	if err != nil {
		return Naming{}, err
	}
	return all[id], nil
}

// Namings is how the account reaches each contact that has a record.
func (r *Registry) Namings(ctx context.Context, account string) (map[passport.Hash]Naming, error) {
	return r.namings(ctx, "account = ?", account)
}

func (r *Registry) namings(ctx context.Context, where string, args ...any) (map[passport.Hash]Naming, error) {
	rows, err := r.db.QueryContext(ctx, "SELECT passport_id, scheme, card_seed, card_node, card_addr, card_issued, card_sent_at FROM contact_naming WHERE "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read contact naming: %w", err)
	}
	defer rows.Close()
	out := make(map[passport.Hash]Naming)
	for rows.Next() {
		id, n, err := scanNaming(rows)
		if err != nil {
			return nil, fmt.Errorf("read contact naming: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}

func scanNaming(rows *sql.Rows) (passport.Hash, Naming, error) {
	var (
		id, seed, node []byte
		addr           sql.NullString
		issued         sql.NullInt64
		scheme, sent   int64
		n              Naming
	)
	if err := rows.Scan(&id, &scheme, &seed, &node, &addr, &issued, &sent); err != nil {
		return passport.Hash{}, n, err
	}
	if len(id) != passport.HashSize {
		return passport.Hash{}, n, errors.New("corrupt row")
	}
	n.Scheme = Scheme(scheme)
	if sent > 0 {
		n.CardSentAt = time.Unix(sent, 0)
	}
	if len(seed) == topic.InboxSeedSize && len(node) == keys.PublicKeySize && addr.Valid && issued.Valid {
		c := card.Card{Scheme: card.SchemeV2, Passport: passport.Hash(id), Addr: addr.String, Issued: time.Unix(issued.Int64, 0).UTC()}
		copy(c.Seed[:], seed)
		copy(c.Node[:], node)
		n.Card = &c
	}
	return passport.Hash(id), n, nil
}

// TakeCard records a contact's card, verified by the caller, unless an
// equally new or newer one is recorded already; the contact becomes a v2
// contact. It reports whether the card was recorded. A card from a
// passport that is no contact of the account fails with ErrNoContact.
func (r *Registry) TakeCard(ctx context.Context, account string, c card.Card) (bool, error) {
	res, err := r.db.ExecContext(ctx, `INSERT INTO contact_naming (account, passport_id, scheme, card_seed, card_node, card_addr, card_issued)
		SELECT account, passport_id, 2, ?, ?, ?, ? FROM contacts WHERE account = ? AND passport_id = ?
		ON CONFLICT (account, passport_id) DO UPDATE SET scheme = 2, card_seed = excluded.card_seed, card_node = excluded.card_node,
			card_addr = excluded.card_addr, card_issued = excluded.card_issued
		WHERE card_issued IS NULL OR card_issued < excluded.card_issued`,
		c.Seed[:], c.Node[:], c.Addr, c.Issued.Unix(), account, c.Passport[:])
	if err != nil {
		return false, fmt.Errorf("record card of %s for %s: %w", c.Passport, account, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return true, nil
	}
	if _, err := r.Contact(ctx, account, c.Passport); err != nil {
		return false, fmt.Errorf("card of %s for %s: %w", c.Passport, account, err)
	}
	return false, nil
}

// CardSent records that the account's card went to contact id at.
func (r *Registry) CardSent(ctx context.Context, account string, id passport.Hash, at time.Time) error {
	_, err := r.db.ExecContext(ctx, `INSERT INTO contact_naming (account, passport_id, card_sent_at) VALUES (?, ?, ?)
		ON CONFLICT (account, passport_id) DO UPDATE SET card_sent_at = excluded.card_sent_at`, account, id[:], at.Unix())
	if err != nil {
		return fmt.Errorf("record card sent to %s by %s: %w", id, account, err)
	}
	return nil
}

// FallBackToV1 makes contact id a v1 contact, unless a card came meanwhile.
func (r *Registry) FallBackToV1(ctx context.Context, account string, id passport.Hash) error {
	_, err := r.db.ExecContext(ctx, `INSERT INTO contact_naming (account, passport_id, scheme) VALUES (?, ?, 1)
		ON CONFLICT (account, passport_id) DO UPDATE SET scheme = 1 WHERE scheme = 0`, account, id[:])
	if err != nil {
		return fmt.Errorf("make %s a v1 contact of %s: %w", id, account, err)
	}
	return nil
}
