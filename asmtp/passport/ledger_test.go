package passport

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
)

func sharedKeyFor(t testing.TB, tm Time, to ...ed25519.PrivateKey) SetSharedKey {
	t.Helper()
	var pubs []keys.PublicKey
	for _, k := range to {
		pubs = append(pubs, keys.Public(k))
	}
	e, _, err := newSetSharedKey(testRand(7), tm, pubs, testPSK(t))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestGenesisRules(t *testing.T) {
	t0k := kt(t, 0)
	skew := int(MaxFutureSkew / time.Second)
	regA := mustRegister(t, keyA, "laptop", Hash{}, t0k)
	for _, c := range []struct {
		name  string
		block func() *Block
		now   time.Time
		want  error // nil: valid
	}{
		{"valid", func() *Block { return mustSign(t, t0k, Hash{}, keyA, regA, sharedKeyFor(t, t0k, keyA)) }, t0, nil},
		{"valid without shared key", func() *Block { return mustSign(t, t0k, Hash{}, keyA, regA) }, t0, nil},
		{"previous not zero", func() *Block { return mustSign(t, t0k, HashOf([]byte("x")), keyA, regA) }, t0, ErrGenesisPrevious},
		{"author not registered", func() *Block { return mustSign(t, t0k, Hash{}, keyA, sharedKeyFor(t, t0k, keyA)) }, t0, ErrUnauthorized},
		{"empty genesis", func() *Block { return mustSign(t, t0k, Hash{}, keyA) }, t0, ErrUnauthorized},
		{"author registers another key only", func() *Block {
			return mustSign(t, t0k, Hash{}, keyA, mustRegister(t, keyB, "phone", Hash{}, t0k))
		}, t0, ErrWrongPassportID},
		{"second key in genesis", func() *Block {
			return mustSign(t, t0k, Hash{}, keyA, regA, mustRegister(t, keyB, "phone", Hash{}, t0k))
		}, t0, ErrWrongPassportID},
		{"self registration twice", func() *Block {
			return mustSign(t, t0k, Hash{}, keyA, regA, mustRegister(t, keyA, "again", Hash{}, t0k))
		}, t0, ErrKeyAlreadyActive},
		{"registration created after block", func() *Block {
			return mustSign(t, t0k, Hash{}, keyA, mustRegister(t, keyA, "laptop", Hash{}, kt(t, 1)))
		}, t0, ErrEntryTime},
		{"registration window edge", func() *Block {
			return mustSign(t, t0k, Hash{}, keyA, mustRegister(t, keyA, "laptop", Hash{}, kt(t, -RegistrationTimeout)))
		}, t0, nil},
		{"registration expired", func() *Block {
			return mustSign(t, t0k, Hash{}, keyA, mustRegister(t, keyA, "laptop", Hash{}, kt(t, -RegistrationTimeout-1)))
		}, t0, ErrRegistrationExpired},
		{"shared key created after block", func() *Block {
			return mustSign(t, t0k, Hash{}, keyA, regA, sharedKeyFor(t, kt(t, 1), keyA))
		}, t0, ErrEntryTime},
		{"future edge", func() *Block {
			return mustSign(t, kt(t, skew), Hash{}, keyA, regA)
		}, t0, nil},
		{"future", func() *Block {
			return mustSign(t, kt(t, skew+1), Hash{}, keyA, regA)
		}, t0, ErrFutureTime},
	} {
		_, err := Genesis(c.block(), c.now)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestApplyRules(t *testing.T) {
	pubA, pubB, pubC := keys.Public(keyA), keys.Public(keyB), keys.Public(keyC)
	other, _, err := Create(testRand(8), t0, "other", keyB, testPSK(t))
	if err != nil {
		t.Fatal(err)
	}
	skew := int(MaxFutureSkew / time.Second)

	// Each case builds blocks on a fresh genesis (by A at t0); all but the
	// last must apply, the last must fail with want (nil: must apply).
	type chain struct {
		t    *testing.T
		id   Hash
		prev Hash
	}
	next := func(c *chain, s int, author ed25519.PrivateKey, entries ...Entry) *Block {
		b := mustSign(c.t, kt(c.t, s), c.prev, author, entries...)
		c.prev = b.ID()
		return b
	}
	reg := func(c *chain, key ed25519.PrivateKey, alias string, s int) RegisterMasterKey {
		return mustRegister(c.t, key, alias, c.id, kt(c.t, s))
	}
	dereg := func(k keys.PublicKey, s int) DeregisterMasterKey { return DeregisterMasterKey{k, kt(t, s)} }

	for _, tc := range []struct {
		name   string
		blocks func(c *chain) []*Block
		now    int // seconds after t0 for the last block; 0: its own time
		want   error
	}{
		{"valid add", func(c *chain) []*Block { return []*Block{next(c, 10, keyA, reg(c, keyB, "phone", 10))} }, 0, nil},
		{"same time as parent", func(c *chain) []*Block { return []*Block{next(c, 0, keyA, reg(c, keyB, "phone", 0))} }, 0, nil},
		{"previous mismatch", func(c *chain) []*Block {
			c.prev = HashOf([]byte("elsewhere"))
			return []*Block{next(c, 10, keyA, reg(c, keyB, "phone", 10))}
		}, 0, ErrPreviousMismatch},
		{"second genesis", func(c *chain) []*Block {
			c.prev = Hash{}
			return []*Block{next(c, 10, keyA, reg(c, keyB, "phone", 10))}
		}, 0, ErrPreviousMismatch},
		{"genesis again", func(c *chain) []*Block {
			c.prev = Hash{}
			return []*Block{next(c, 0, keyA, mustRegister(t, keyA, "laptop", Hash{}, kt(t, 0)), sharedKeyFor(t, kt(t, 0), keyA))}
		}, 0, ErrPreviousMismatch},
		{"author not active", func(c *chain) []*Block { return []*Block{next(c, 10, keyB, reg(c, keyC, "tablet", 10))} }, 0, ErrUnauthorized},
		{"removed author", func(c *chain) []*Block {
			return []*Block{
				next(c, 10, keyA, reg(c, keyB, "phone", 10)),
				next(c, 20, keyB, dereg(pubA, 20)),
				next(c, 30, keyA, reg(c, keyC, "tablet", 30)),
			}
		}, 0, ErrUnauthorized},
		{"time backwards", func(c *chain) []*Block { return []*Block{next(c, -1, keyA, reg(c, keyB, "phone", -1))} }, 0, ErrTimeBackwards},
		{"future edge", func(c *chain) []*Block { return []*Block{next(c, 10+skew, keyA, reg(c, keyB, "phone", 10))} }, 10, nil},
		{"future", func(c *chain) []*Block { return []*Block{next(c, 11+skew, keyA, reg(c, keyB, "phone", 10))} }, 10, ErrFutureTime},
		{"registration with zero passport id", func(c *chain) []*Block {
			return []*Block{next(c, 10, keyA, mustRegister(t, keyB, "phone", Hash{}, kt(t, 10)))}
		}, 0, ErrWrongPassportID},
		{"registration for another passport", func(c *chain) []*Block {
			return []*Block{next(c, 10, keyA, mustRegister(t, keyC, "tablet", other.ID(), kt(t, 10)))}
		}, 0, ErrWrongPassportID},
		{"register active key", func(c *chain) []*Block { return []*Block{next(c, 10, keyA, reg(c, keyA, "again", 10))} }, 0, ErrKeyAlreadyActive},
		{"alias taken", func(c *chain) []*Block { return []*Block{next(c, 10, keyA, reg(c, keyB, "laptop", 10))} }, 0, ErrAliasTaken},
		{"alias of a removed key", func(c *chain) []*Block {
			return []*Block{
				next(c, 10, keyA, reg(c, keyB, "phone", 10)),
				next(c, 20, keyA, dereg(pubB, 20)),
				next(c, 30, keyA, reg(c, keyC, "phone", 30)),
			}
		}, 0, ErrAliasTaken},
		{"removed key re-registered under a new alias", func(c *chain) []*Block {
			return []*Block{
				next(c, 10, keyA, reg(c, keyB, "phone", 10)),
				next(c, 20, keyA, dereg(pubB, 20)),
				next(c, 30, keyA, reg(c, keyB, "phone2", 30)),
			}
		}, 0, nil},
		{"registration created after block", func(c *chain) []*Block { return []*Block{next(c, 10, keyA, reg(c, keyB, "phone", 11))} }, 0, ErrEntryTime},
		{"registration window edge", func(c *chain) []*Block {
			return []*Block{next(c, 10+RegistrationTimeout, keyA, reg(c, keyB, "phone", 10))}
		}, 0, nil},
		{"registration expired", func(c *chain) []*Block {
			return []*Block{next(c, 11+RegistrationTimeout, keyA, reg(c, keyB, "phone", 10))}
		}, 0, ErrRegistrationExpired},
		{"deregister inactive key", func(c *chain) []*Block { return []*Block{next(c, 10, keyA, dereg(pubC, 10))} }, 0, ErrKeyNotActive},
		{"deregister twice", func(c *chain) []*Block {
			return []*Block{next(c, 10, keyA, reg(c, keyB, "phone", 10), dereg(pubB, 10), dereg(pubB, 10))}
		}, 0, ErrKeyNotActive},
		{"deregister last key", func(c *chain) []*Block { return []*Block{next(c, 10, keyA, dereg(pubA, 10))} }, 0, ErrLastKey},
		{"deregister created after block", func(c *chain) []*Block {
			return []*Block{next(c, 10, keyA, reg(c, keyB, "phone", 10), dereg(pubB, 11))}
		}, 0, ErrEntryTime},
		{"shared key created after block", func(c *chain) []*Block {
			return []*Block{next(c, 10, keyA, sharedKeyFor(t, kt(t, 11), keyA))}
		}, 0, ErrEntryTime},
		{"block applied twice", func(c *chain) []*Block {
			b := next(c, 10, keyA, reg(c, keyB, "phone", 10))
			return []*Block{b, b}
		}, 0, ErrKnownBlock},
	} {
		g, _, err := Create(testRand(6), t0, "laptop", keyA, testPSK(t))
		if err != nil {
			t.Fatal(err)
		}
		c := &chain{t: t, id: g.ID(), prev: g.ID()}
		blocks := tc.blocks(c)
		l := g.Ledger()
		for i, b := range blocks {
			now := b.Header().Time.Time()
			last := i == len(blocks)-1
			if last && tc.now != 0 {
				now = at(tc.now)
			}
			n, err := l.Apply(b, now)
			if !last {
				if err != nil {
					t.Fatalf("%s: setup block %d: %v", tc.name, i, err)
				}
				l = n
				continue
			}
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
			}
			if err != nil && n != nil {
				t.Errorf("%s: failed Apply returned a ledger", tc.name)
			}
		}
	}
}

// TestLedgerApplyIsAtomic checks that a block failing on its last entry
// leaves the ledger as it was.
func TestLedgerApplyIsAtomic(t *testing.T) {
	g, _, err := Create(testRand(6), t0, "laptop", keyA, testPSK(t))
	if err != nil {
		t.Fatal(err)
	}
	l := g.Ledger()
	before := l.MasterKeys()
	b := mustSign(t, kt(t, 10), g.ID(), keyA,
		mustRegister(t, keyB, "phone", g.ID(), kt(t, 10)),
		sharedKeyFor(t, kt(t, 10), keyA, keyB),
		DeregisterMasterKey{keys.Public(keyC), kt(t, 10)})
	if _, err := l.Apply(b, at(10)); !errors.Is(err, ErrKeyNotActive) {
		t.Fatalf("err = %v", err)
	}
	if got := l.MasterKeys(); len(got) != len(before) || l.Tip() != g.ID() || l.IsActive(keys.Public(keyB)) {
		t.Fatalf("ledger changed: %v", got)
	}
	if sk, _, _ := l.SharedKey(); sk != mustSharedKey(t, g) {
		t.Fatal("shared key changed")
	}
}

func mustSharedKey(t testing.TB, p *Passport) keys.SharedKey {
	t.Helper()
	sk, ok := p.SharedKey()
	if !ok {
		t.Fatal("no shared key")
	}
	return sk
}
