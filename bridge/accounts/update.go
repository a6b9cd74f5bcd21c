package accounts

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// sentMigration is the registry's step for what each v2 contact was last
// told (PROTOCOL.md §16.3): which inbox seed its newest card from us
// carried and which passport it holds of ours. When the account's seed
// (a removed contact) or passport (a rotation) no longer matches, the
// daemon sends the contact a new card or a passport update, and records
// it only once the node stored the sealed message, so a crash in between
// sends it again.
const sentMigration = `
CREATE TABLE contact_sent (
	account TEXT NOT NULL,
	passport_id BLOB NOT NULL,
	seed_hash BLOB,                         -- SHA-256 of the inbox seed our last card carried
	passport_hash BLOB,                     -- SHA-256 of our PassportBlocks the contact holds
	PRIMARY KEY (account, passport_id),
	FOREIGN KEY (account, passport_id) REFERENCES contacts(account, passport_id) ON DELETE CASCADE
) WITHOUT ROWID;
`

// retiredSeedsMigration keeps the inbox seeds that a removed contact knew
// until the daemon deregistered their inboxes from the node, which keeps
// registrations across restarts: a contact removed while the daemon is
// down must not leave the old inboxes registered.
const retiredSeedsMigration = `
CREATE TABLE retired_inbox_seeds (
	account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
	sealed_seed BLOB NOT NULL,              -- as inbox_seeds.sealed_seed
	retired_at INTEGER NOT NULL,            -- unix seconds
	PRIMARY KEY (account, sealed_seed)
) WITHOUT ROWID;
`

// Sent is what a contact was last told of the account: hashes (SHA-256)
// of the inbox seed its last card carried and of the passport it holds.
// A zero hash: nothing recorded.
type Sent struct {
	Seed     [sha256.Size]byte
	Passport [sha256.Size]byte
}

// SeedHash is the hash Sent records of an inbox seed.
func SeedHash(s topic.InboxSeed) [sha256.Size]byte { return sha256.Sum256(s[:]) }

// PassportHash is the hash Sent records of PassportBlocks.
func PassportHash(blocks []byte) [sha256.Size]byte { return sha256.Sum256(blocks) }

// SentTo lists what each contact of the account with a record was last
// told.
func (r *Registry) SentTo(ctx context.Context, account string) (map[passport.Hash]Sent, error) {
	rows, err := r.db.QueryContext(ctx, "SELECT passport_id, seed_hash, passport_hash FROM contact_sent WHERE account = ?", account)
	if err != nil {
		return nil, fmt.Errorf("read what the contacts of %s were told: %w", account, err)
	}
	defer rows.Close()
	out := make(map[passport.Hash]Sent)
	for rows.Next() {
		var id, seed, pp []byte
		if err := rows.Scan(&id, &seed, &pp); err != nil {
			return nil, fmt.Errorf("read what the contacts of %s were told: %w", account, err)
		}
		var s Sent
		copy(s.Seed[:], seed)
		copy(s.Passport[:], pp)
		out[passport.Hash(id)] = s
	}
	return out, rows.Err()
}

// RecordSent records what contact id was told: the seed (nil: unchanged)
// and the passport (nil: unchanged).
func (r *Registry) RecordSent(ctx context.Context, account string, id passport.Hash, seed *topic.InboxSeed, blocks []byte) error {
	var seedHash, ppHash []byte
	if seed != nil {
		h := SeedHash(*seed)
		seedHash = h[:]
	}
	if blocks != nil {
		h := PassportHash(blocks)
		ppHash = h[:]
	}
	_, err := r.db.ExecContext(ctx, `INSERT INTO contact_sent (account, passport_id, seed_hash, passport_hash)
		SELECT account, passport_id, ?, ? FROM contacts WHERE account = ? AND passport_id = ?
		ON CONFLICT (account, passport_id) DO UPDATE SET seed_hash = coalesce(excluded.seed_hash, seed_hash),
			passport_hash = coalesce(excluded.passport_hash, passport_hash)`,
		seedHash, ppHash, account, id[:])
	if err != nil {
		return fmt.Errorf("record what %s told %s: %w", account, id, err)
	}
	return nil
}

// RotateSharedKey gives the account a new shared secret: a new block of
// its passport, signed by its device key, seals it under the passport
// seed. The contacts learn it from the passport update the daemon sends
// them (v2) or from the passport topic (v1). It fails if the passport
// changed meanwhile.
func (r *Registry) RotateSharedKey(ctx context.Context, nodeKey ed25519.PrivateKey, name string) (Account, error) {
	name = strings.ToLower(name)
	fail := func(err error) (Account, error) {
		return Account{}, fmt.Errorf("rotate the shared key of %s: %w", name, err)
	}
	a, err := r.Account(ctx, name)
	if err != nil {
		return fail(err)
	}
	s, err := r.Secrets(ctx, nodeKey, name)
	if err != nil {
		return fail(err)
	}
	now := time.Now()
	p, err := passport.Import(a.Blocks, now)
	if err != nil {
		return fail(err)
	}
	b := p.Next()
	if _, err := b.RotateSharedKey(rand.Reader, s.PassportSeed); err != nil {
		return fail(err)
	}
	if _, err := b.Finalize(s.Device, now); err != nil {
		return fail(err)
	}
	blocks := p.Export()
	res, err := r.db.ExecContext(ctx, "UPDATE accounts SET passport_blocks = ? WHERE name = ? AND passport_blocks = ?", blocks, name, a.Blocks)
	if err != nil {
		return fail(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fail(errors.New("the passport changed meanwhile"))
	}
	a.Blocks = blocks
	return a, nil
}

// dropInboxSeed retires the account's inbox seed, so that the next
// InboxSeed draws a new one (a contact was removed, §16.3).
func dropInboxSeed(ctx context.Context, tx *sql.Tx, account string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO retired_inbox_seeds (account, sealed_seed, retired_at)
		SELECT account, sealed_seed, ? FROM inbox_seeds WHERE account = ? ON CONFLICT DO NOTHING`, time.Now().Unix(), account)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "DELETE FROM inbox_seeds WHERE account = ?", account)
	return err
}

// RetiredInboxSeed is an inbox seed a removed contact knew, whose inboxes
// may still be registered on the node.
type RetiredInboxSeed struct {
	Seed      topic.InboxSeed
	RetiredAt time.Time
	sealed    []byte
}

// RetiredInboxSeeds lists the account's retired inbox seeds.
func (r *Registry) RetiredInboxSeeds(ctx context.Context, nodeKey ed25519.PrivateKey, account string) ([]RetiredInboxSeed, error) {
	fail := func(err error) ([]RetiredInboxSeed, error) {
		return nil, fmt.Errorf("retired inbox seeds of %s: %w", account, err)
	}
	s, err := newSealer(nodeKey)
	if err != nil {
		return fail(err)
	}
	rows, err := r.db.QueryContext(ctx, "SELECT sealed_seed, retired_at FROM retired_inbox_seeds WHERE account = ?", account)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []RetiredInboxSeed
	for rows.Next() {
		var rs RetiredInboxSeed
		var at int64
		if err := rows.Scan(&rs.sealed, &at); err != nil {
			return fail(err)
		}
		plain, err := s.open(account, fieldInboxSeed, rs.sealed)
		if err != nil || len(plain) != len(rs.Seed) {
			return fail(fmt.Errorf("unseal: %d bytes, %v", len(plain), err))
		}
		copy(rs.Seed[:], plain)
		rs.RetiredAt = unixTime(at)
		out = append(out, rs)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}

// ForgetRetiredInboxSeed forgets rs once its inboxes are deregistered.
func (r *Registry) ForgetRetiredInboxSeed(ctx context.Context, account string, rs RetiredInboxSeed) error {
	_, err := r.db.ExecContext(ctx, "DELETE FROM retired_inbox_seeds WHERE account = ? AND sealed_seed = ?", account, rs.sealed)
	if err != nil {
		return fmt.Errorf("forget a retired inbox seed of %s: %w", account, err)
	}
	return nil
}
