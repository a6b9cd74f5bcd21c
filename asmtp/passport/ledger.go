package passport

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/noise"
)

// MaxFutureSkew bounds how far ahead of the validator's clock a block time
// may be (upstream does not check).
const MaxFutureSkew = time.Hour

// MasterKey is an active master key and its alias.
type MasterKey struct {
	Key   keys.PublicKey
	Alias string
}

// Ledger is the state of a passport at its tip, without the blocks
// (upstream's LightPassport): enough to follow a contact's passport. A
// Ledger is never modified once returned; Apply returns a new one.
type Ledger struct {
	id     Hash
	tip    Hash
	author keys.PublicKey // author of the tip block
	time   Time           // time of the tip block
	active map[keys.PublicKey]string
	// aliases holds every alias ever registered: aliases are never freed.
	aliases map[string]keys.PublicKey
	shared  *SetSharedKey // the most recently applied SetSharedKey
}

// Genesis validates a genesis block and returns the ledger it creates.
// Rules: previous is zero (upstream does not check); the block time is at
// most MaxFutureSkew after now; the entries apply (see applyEntry) with the
// passport id = the block id; afterwards the author is an active master key
// (upstream panics instead).
func Genesis(b *Block, now time.Time) (*Ledger, error) {
	h := b.Header()
	if !h.Previous.IsZero() {
		return nil, fmt.Errorf("genesis %s: %w", b.ID(), ErrGenesisPrevious)
	}
	if err := checkFuture(h.Time, now); err != nil {
		return nil, fmt.Errorf("genesis %s: %w", b.ID(), err)
	}
	l := &Ledger{
		id:      b.ID(),
		tip:     b.ID(),
		author:  h.Author,
		time:    h.Time,
		active:  map[keys.PublicKey]string{},
		aliases: map[string]keys.PublicKey{},
	}
	if err := l.applyEntries(b.Entries()); err != nil {
		return nil, fmt.Errorf("genesis %s: %w", b.ID(), err)
	}
	if !l.IsActive(h.Author) {
		return nil, fmt.Errorf("genesis %s: author %s not registered: %w", b.ID(), h.Author, ErrUnauthorized)
	}
	return l, nil
}

// Apply validates a block against the tip and returns the new state; l is
// unchanged. Rules: the block is not the tip itself (ErrKnownBlock);
// previous = the tip; the author is an active master key; the block time is
// not before the tip's (upstream does not check) and at most MaxFutureSkew
// after now; then every entry applies in order (see applyEntry).
func (l *Ledger) Apply(b *Block, now time.Time) (*Ledger, error) {
	h := b.Header()
	if b.ID() == l.tip {
		return nil, fmt.Errorf("block %s: %w", b.ID(), ErrKnownBlock)
	}
	if h.Previous != l.tip {
		return nil, fmt.Errorf("block %s: previous %s, tip %s: %w", b.ID(), h.Previous, l.tip, ErrPreviousMismatch)
	}
	if !l.IsActive(h.Author) {
		return nil, fmt.Errorf("block %s: author %s: %w", b.ID(), h.Author, ErrUnauthorized)
	}
	if h.Time < l.time {
		return nil, fmt.Errorf("block %s: time %s, parent %s: %w", b.ID(), h.Time, l.time, ErrTimeBackwards)
	}
	if err := checkFuture(h.Time, now); err != nil {
		return nil, fmt.Errorf("block %s: %w", b.ID(), err)
	}
	n := l.clone()
	n.tip = b.ID()
	n.author = h.Author
	n.time = h.Time
	if err := n.applyEntries(b.Entries()); err != nil {
		return nil, fmt.Errorf("block %s: %w", b.ID(), err)
	}
	return n, nil
}

func checkFuture(t Time, now time.Time) error {
	if limit := now.Add(MaxFutureSkew).Unix(); t.Unix() > limit {
		return fmt.Errorf("time %s, now %s: %w", t, now.UTC().Format(time.RFC3339), ErrFutureTime)
	}
	return nil
}

func (l *Ledger) clone() *Ledger {
	n := *l
	n.active = maps.Clone(l.active)
	n.aliases = maps.Clone(l.aliases)
	return &n
}

func (l *Ledger) applyEntries(entries []Entry) error {
	for i, e := range entries {
		if err := l.applyEntry(e); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
	}
	return nil
}

// applyEntry applies one entry at the current block time l.time. Every
// entry must have created_at <= the block time. RegisterMasterKey: the block
// time is within [created_at, registration_timeout]; a key other than the
// block author must carry the passport id; the key is not active; the alias
// was never used. DeregisterMasterKey: the key is active and is not the last
// one. SetSharedKey: becomes the current shared key.
func (l *Ledger) applyEntry(e Entry) error {
	switch e := e.(type) {
	case RegisterMasterKey:
		if e.CreatedAt > l.time {
			return fmt.Errorf("register %s: created %s, block %s: %w", e.Key, e.CreatedAt, l.time, ErrEntryTime)
		}
		if l.time > e.RegistrationTimeout {
			return fmt.Errorf("register %s: timeout %s, block %s: %w", e.Key, e.RegistrationTimeout, l.time, ErrRegistrationExpired)
		}
		if e.Key != l.author && e.PassportID != l.id {
			return fmt.Errorf("register %s: passport id %s, want %s: %w", e.Key, e.PassportID, l.id, ErrWrongPassportID)
		}
		if l.IsActive(e.Key) {
			return fmt.Errorf("register %s: %w", e.Key, ErrKeyAlreadyActive)
		}
		if _, used := l.aliases[e.Alias]; used {
			return fmt.Errorf("register %s: alias %q: %w", e.Key, e.Alias, ErrAliasTaken)
		}
		l.active[e.Key] = e.Alias
		l.aliases[e.Alias] = e.Key
	case DeregisterMasterKey:
		if e.CreatedAt > l.time {
			return fmt.Errorf("deregister %s: created %s, block %s: %w", e.Key, e.CreatedAt, l.time, ErrEntryTime)
		}
		if !l.IsActive(e.Key) {
			return fmt.Errorf("deregister %s: %w", e.Key, ErrKeyNotActive)
		}
		if len(l.active) == 1 {
			return fmt.Errorf("deregister %s: %w", e.Key, ErrLastKey)
		}
		delete(l.active, e.Key)
	case SetSharedKey:
		if e.CreatedAt > l.time {
			return fmt.Errorf("set shared key %s: created %s, block %s: %w", e.Key, e.CreatedAt, l.time, ErrEntryTime)
		}
		l.shared = &e
	default:
		return fmt.Errorf("entry type %T: %w", e, ErrMalformed)
	}
	return nil
}

// ID is the passport id: the genesis block id.
func (l *Ledger) ID() Hash { return l.id }

// Tip is the id of the last applied block.
func (l *Ledger) Tip() Hash { return l.tip }

// Time is the time of the last applied block.
func (l *Ledger) Time() Time { return l.time }

// IsActive reports whether k is an active master key.
func (l *Ledger) IsActive(k keys.PublicKey) bool {
	_, ok := l.active[k]
	return ok
}

// MasterKeys returns the active master keys with their aliases, sorted by key.
func (l *Ledger) MasterKeys() []MasterKey {
	out := make([]MasterKey, 0, len(l.active))
	for k, a := range l.active {
		out = append(out, MasterKey{Key: k, Alias: a})
	}
	slices.SortFunc(out, func(a, b MasterKey) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	return out
}

// activeKeys returns the active master keys, sorted.
func (l *Ledger) activeKeys() []keys.PublicKey {
	var out []keys.PublicKey
	for _, m := range l.MasterKeys() {
		out = append(out, m.Key)
	}
	return out
}

// SharedKey returns the current shared key and its created_at; ok is false
// before any SetSharedKey.
func (l *Ledger) SharedKey() (key keys.SharedKey, createdAt Time, ok bool) {
	if l.shared == nil {
		return key, 0, false
	}
	return l.shared.Key, l.shared.CreatedAt, true
}

// UnsealSharedSecret recovers the current shared secret with one of the
// passport's master keys and the passphrase seed (keys.PassphraseSeed).
// Every recipient slot whose id matches the key is tried; the result must
// match the published shared key.
func (l *Ledger) UnsealSharedSecret(master ed25519.PrivateKey, psk keys.Seed) (keys.SharedSecret, error) {
	var secret keys.SharedSecret
	if l.shared == nil {
		return secret, fmt.Errorf("unseal shared secret: %w", ErrNoSharedKey)
	}
	if len(master) != ed25519.PrivateKeySize {
		return secret, fmt.Errorf("unseal shared secret: master key is %d bytes, want %d", len(master), ed25519.PrivateKeySize)
	}
	pub := keys.Public(master)
	id := RecipientID(pub)
	err := fmt.Errorf("unseal shared secret for %s: %w", pub, ErrNotRecipient)
	for _, r := range l.shared.Recipients {
		if r.ID != id {
			continue
		}
		s, openErr := noise.OpenSharedSecret(master, psk, r.Sealed[:])
		if openErr != nil {
			err = fmt.Errorf("unseal shared secret: %w", openErr)
			continue
		}
		if s.Public() != l.shared.Key {
			return secret, fmt.Errorf("unseal shared secret: sealed secret does not match shared key %s", l.shared.Key)
		}
		return s, nil
	}
	return secret, err
}
