package passport

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
)

// Builder prepares the next block of a passport. Each call is validated at
// once against the passport plus the entries already added; created_at of
// every entry and the block time are set to now by Finalize.
//
// Order matters: RotateSharedKey seals to the keys active at the time of the
// call, so call it after AddMasterKey/RemoveMasterKey, in the same block;
// otherwise a new key cannot read the shared key and a removed key still can.
type Builder struct {
	p       *Passport
	base    *Ledger // the tip the block will extend
	work    *Ledger // base plus the entries added so far
	pending []func(createdAt Time) (Entry, error)
	done    bool
}

var errBuilderDone = errors.New("passport builder already finalized")

// Next starts a block extending the current tip.
func (p *Passport) Next() *Builder {
	return &Builder{p: p, base: p.ledger, work: p.ledger.clone()}
}

// push validates e (built with created_at = the tip time) on the working
// ledger and records how to rebuild it at Finalize time.
func (b *Builder) push(e Entry, rebuild func(Time) (Entry, error)) error {
	if b.done {
		return errBuilderDone
	}
	if err := b.work.applyEntry(e); err != nil {
		return err
	}
	b.pending = append(b.pending, rebuild)
	return nil
}

// AddMasterKey registers key (a new device) under alias; the key signs its
// own registration for this passport's id.
func (b *Builder) AddMasterKey(alias string, key ed25519.PrivateKey) error {
	id := b.base.ID()
	rebuild := func(t Time) (Entry, error) { return NewRegisterMasterKey(key, alias, id, t) }
	e, err := rebuild(b.work.time)
	if err != nil {
		return fmt.Errorf("add master key: %w", err)
	}
	if err := b.push(e, rebuild); err != nil {
		return fmt.Errorf("add master key: %w", err)
	}
	return nil
}

// RemoveMasterKey deregisters an active master key (not the last one).
func (b *Builder) RemoveMasterKey(key keys.PublicKey) error {
	e := DeregisterMasterKey{Key: key, CreatedAt: b.work.time}
	rebuild := func(t Time) (Entry, error) {
		e.CreatedAt = t
		return e, nil
	}
	if err := b.push(e, rebuild); err != nil {
		return fmt.Errorf("remove master key: %w", err)
	}
	return nil
}

// RotateSharedKey draws a new shared secret, seals it under psk to every
// master key active at this point of the block, and returns it.
func (b *Builder) RotateSharedKey(rand io.Reader, psk keys.Seed) (keys.SharedSecret, error) {
	if b.done {
		return keys.SharedSecret{}, errBuilderDone
	}
	e, secret, err := newSetSharedKey(rand, b.work.time, b.work.activeKeys(), psk)
	if err != nil {
		return secret, fmt.Errorf("rotate shared key: %w", err)
	}
	rebuild := func(t Time) (Entry, error) {
		e.CreatedAt = t
		return e, nil
	}
	if err := b.push(e, rebuild); err != nil {
		return secret, fmt.Errorf("rotate shared key: %w", err)
	}
	return secret, nil
}

// Finalize stamps the entries and the block with now, signs the block with
// author (an active master key), applies it to the passport and returns it,
// ready to be published on the passport topic. It fails, leaving the
// passport unchanged, if the block is empty or the passport moved on since
// Next.
func (b *Builder) Finalize(author ed25519.PrivateKey, now time.Time) (*Block, error) {
	if b.done {
		return nil, errBuilderDone
	}
	if len(b.pending) == 0 {
		return nil, fmt.Errorf("finalize: %w", ErrEmptyBlock)
	}
	t, err := TimeOf(now)
	if err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	entries := make([]Entry, len(b.pending))
	for i, rebuild := range b.pending {
		if entries[i], err = rebuild(t); err != nil {
			return nil, fmt.Errorf("finalize: entry %d: %w", i, err)
		}
	}
	blk, err := signBlock(t, b.base.Tip(), entries, author)
	if err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	if err := b.p.Apply(blk, now); err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	b.done = true
	return blk, nil
}
