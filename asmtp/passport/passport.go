package passport

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/noise"
)

// Passport is a passport with its blocks. It is not safe for concurrent
// mutation; its Ledger snapshots are.
type Passport struct {
	ledger *Ledger
	blocks []*Block
	known  map[Hash]bool
}

// Create makes a new passport: one genesis block (time = now, previous = 0,
// signed by author) holding RegisterMasterKey(author, alias, passport id 0)
// and a SetSharedKey for a fresh shared secret sealed to the author under
// psk (keys.PassphraseSeed of the user's passphrase). It returns the shared
// secret too.
func Create(rand io.Reader, now time.Time, alias string, author ed25519.PrivateKey, psk keys.Seed) (*Passport, keys.SharedSecret, error) {
	var secret keys.SharedSecret
	t, err := TimeOf(now)
	if err != nil {
		return nil, secret, fmt.Errorf("create passport: %w", err)
	}
	reg, err := NewRegisterMasterKey(author, alias, Hash{}, t)
	if err != nil {
		return nil, secret, fmt.Errorf("create passport: %w", err)
	}
	shared, secret, err := newSetSharedKey(rand, t, []keys.PublicKey{reg.Key}, psk)
	if err != nil {
		return nil, secret, fmt.Errorf("create passport: %w", err)
	}
	b, err := signBlock(t, Hash{}, []Entry{reg, shared}, author)
	if err != nil {
		return nil, secret, fmt.Errorf("create passport: %w", err)
	}
	p, err := newPassport(b, now)
	if err != nil {
		return nil, secret, fmt.Errorf("create passport: %w", err)
	}
	return p, secret, nil
}

// newSetSharedKey draws a shared secret and seals it to each recipient.
func newSetSharedKey(rand io.Reader, t Time, recipients []keys.PublicKey, psk keys.Seed) (SetSharedKey, keys.SharedSecret, error) {
	var e SetSharedKey
	if len(recipients) == 0 || len(recipients) > MaxRecipients {
		return e, keys.SharedSecret{}, fmt.Errorf("set shared key: %d recipients, want 1 to %d", len(recipients), MaxRecipients)
	}
	secret, err := keys.GenerateSharedSecret(rand)
	if err != nil {
		return e, secret, fmt.Errorf("set shared key: %w", err)
	}
	e = SetSharedKey{Key: secret.Public(), CreatedAt: t, Recipients: make([]SealedRecipient, len(recipients))}
	for i, k := range recipients {
		sealed, err := noise.SealSharedSecret(rand, k, psk, secret)
		if err != nil {
			return e, secret, fmt.Errorf("set shared key for %s: %w", k, err)
		}
		e.Recipients[i] = SealedRecipient{ID: RecipientID(k), Sealed: sealed}
	}
	return e, secret, nil
}

func newPassport(genesis *Block, now time.Time) (*Passport, error) {
	l, err := Genesis(genesis, now)
	if err != nil {
		return nil, err
	}
	return &Passport{ledger: l, blocks: []*Block{genesis}, known: map[Hash]bool{genesis.ID(): true}}, nil
}

// FromBlocks builds a passport from all its blocks, in any order: they are
// ordered by previous from the single genesis block and applied in chain
// order. Duplicates, forks and blocks that do not chain are errors.
func FromBlocks(blocks []*Block, now time.Time) (*Passport, error) {
	if len(blocks) == 0 {
		return nil, fmt.Errorf("passport: no blocks: %w", ErrNoGenesis)
	}
	ordered, err := chainOrder(Hash{}, blocks)
	if err != nil {
		return nil, fmt.Errorf("passport: %w", err)
	}
	p, err := newPassport(ordered[0], now)
	if err != nil {
		return nil, fmt.Errorf("passport: %w", err)
	}
	for _, b := range ordered[1:] {
		if err := p.Apply(b, now); err != nil {
			return nil, fmt.Errorf("passport %s: %w", p.ID(), err)
		}
	}
	return p, nil
}

// Import decodes a PassportBlocks export and builds the passport (FromBlocks).
func Import(data []byte, now time.Time) (*Passport, error) {
	blocks, err := DecodeBlocks(data)
	if err != nil {
		return nil, fmt.Errorf("import passport: %w", err)
	}
	p, err := FromBlocks(blocks, now)
	if err != nil {
		return nil, fmt.Errorf("import passport: %w", err)
	}
	return p, nil
}

// Export encodes the blocks as PassportBlocks, in chain order.
func (p *Passport) Export() []byte { return EncodeBlocks(p.blocks) }

// Apply validates one block against the tip ((*Ledger).Apply) and appends
// it; on error the passport is unchanged. A block already in the passport
// gives ErrKnownBlock, so a node can ignore re-gossiped blocks.
func (p *Passport) Apply(b *Block, now time.Time) error {
	if p.known[b.ID()] {
		return fmt.Errorf("passport %s: block %s: %w", p.ID(), b.ID(), ErrKnownBlock)
	}
	l, err := p.ledger.Apply(b, now)
	if err != nil {
		return fmt.Errorf("passport %s: %w", p.ID(), err)
	}
	p.ledger = l
	p.blocks = append(p.blocks, b)
	p.known[b.ID()] = true
	return nil
}

// Merge applies the blocks of another copy of the passport that this one
// lacks (for re-uploads of a known passport): blocks already present are
// skipped, the rest must chain from the tip. It returns how many blocks
// were added; on error the passport is unchanged.
func (p *Passport) Merge(blocks []*Block, now time.Time) (int, error) {
	var fresh []*Block
	for _, b := range blocks {
		if p.known[b.ID()] {
			continue
		}
		if prev := b.Header().Previous; prev != p.ledger.tip && p.known[prev] {
			return 0, fmt.Errorf("passport %s: block %s follows %s, not the tip %s: %w", p.ID(), b.ID(), prev, p.ledger.tip, ErrFork)
		}
		fresh = append(fresh, b)
	}
	if len(fresh) == 0 {
		return 0, nil
	}
	ordered, err := chainOrder(p.ledger.tip, fresh)
	if err != nil {
		return 0, fmt.Errorf("passport %s: %w", p.ID(), err)
	}
	l := p.ledger
	for _, b := range ordered {
		if l, err = l.Apply(b, now); err != nil {
			return 0, fmt.Errorf("passport %s: %w", p.ID(), err)
		}
	}
	p.ledger = l
	for _, b := range ordered {
		p.blocks = append(p.blocks, b)
		p.known[b.ID()] = true
	}
	return len(ordered), nil
}

// ID is the passport id (the genesis block id).
func (p *Passport) ID() Hash { return p.ledger.ID() }

// Blocks returns the blocks in chain order (genesis first).
func (p *Passport) Blocks() []*Block { return append([]*Block(nil), p.blocks...) }

// Ledger returns the current state; it stays valid after later updates.
func (p *Passport) Ledger() *Ledger { return p.ledger }

// SharedKey returns the current shared key; ok is false if there is none.
func (p *Passport) SharedKey() (key keys.SharedKey, ok bool) {
	key, _, ok = p.ledger.SharedKey()
	return key, ok
}

// MasterKeys returns the active master keys and their aliases.
func (p *Passport) MasterKeys() []MasterKey { return p.ledger.MasterKeys() }

// UnsealSharedSecret recovers the current shared secret with an active
// master key and the passphrase seed.
func (p *Passport) UnsealSharedSecret(master ed25519.PrivateKey, psk keys.Seed) (keys.SharedSecret, error) {
	return p.ledger.UnsealSharedSecret(master, psk)
}
