package passport

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/noise"
)

func TestCreate(t *testing.T) {
	psk := testPSK(t)
	p, secret, err := Create(testRand(2), t0, "laptop", keyA, psk)
	if err != nil {
		t.Fatal(err)
	}
	blocks := p.Blocks()
	if len(blocks) != 1 || p.ID() != blocks[0].ID() || p.Ledger().Tip() != p.ID() {
		t.Fatalf("genesis: %d blocks, id %s", len(blocks), p.ID())
	}
	h := blocks[0].Header()
	if !h.Previous.IsZero() || h.Author != keys.Public(keyA) || h.Time.Time() != t0 || h.Version != CurrentVersion {
		t.Fatalf("genesis header = %+v", h)
	}
	if got := blocks[0].Len(); got != HeaderSize+EntryTypeSize+RegisterMasterKeySize+EntryTypeSize+SetSharedKeyMinSize+SealedRecipientSize {
		t.Fatalf("genesis is %d bytes", got)
	}
	if got, want := p.MasterKeys(), []MasterKey{{keys.Public(keyA), "laptop"}}; !slices.Equal(got, want) {
		t.Fatalf("master keys = %v", got)
	}
	if sk, ok := p.SharedKey(); !ok || sk != secret.Public() {
		t.Fatalf("shared key = %s, %v; want %s", sk, ok, secret.Public())
	}
	got, err := p.UnsealSharedSecret(keyA, psk)
	if err != nil || got != secret {
		t.Fatalf("unseal = %x, %v", got, err)
	}
	wrong := psk
	wrong[31] ^= 1
	if _, err := p.UnsealSharedSecret(keyA, wrong); !errors.Is(err, noise.ErrSharedSecretOpen) {
		t.Errorf("wrong psk: err = %v", err)
	}
	if _, err := p.UnsealSharedSecret(keyB, psk); !errors.Is(err, ErrNotRecipient) {
		t.Errorf("other key: err = %v", err)
	}
}

func TestCreateErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		alias string
		key   []byte
		rnd   []byte
	}{
		{"alias too long", "012345678901234567890123456789012", keyA, bytes.Repeat([]byte{1}, 64)},
		{"alias not ASCII", "läptop", keyA, bytes.Repeat([]byte{1}, 64)},
		{"alias with NUL", "a\x00b", keyA, bytes.Repeat([]byte{1}, 64)},
		{"short private key", "laptop", keyA[:32], bytes.Repeat([]byte{1}, 64)},
		{"randomness exhausted", "laptop", keyA, bytes.Repeat([]byte{1}, 40)},
	} {
		if _, _, err := Create(bytes.NewReader(c.rnd), t0, c.alias, c.key, testPSK(t)); err == nil {
			t.Errorf("%s: created", c.name)
		}
	}
	if _, _, err := Create(testRand(1), time.Unix(EpochUnix-1, 0), "laptop", keyA, testPSK(t)); err == nil {
		t.Error("created before the keynesis epoch")
	}
}

func TestLifecycleExportImportShuffled(t *testing.T) {
	sc := newScenario(t)
	psk := testPSK(t)
	blocks := sc.p.Blocks()
	if len(blocks) != 3 {
		t.Fatalf("%d blocks", len(blocks))
	}
	wantKeys := []MasterKey{{keys.Public(keyA), "laptop"}, {keys.Public(keyB), "phone"}}
	slices.SortFunc(wantKeys, func(a, b MasterKey) int { return bytes.Compare(a.Key[:], b.Key[:]) })

	for _, perm := range [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}} {
		shuffled := []*Block{blocks[perm[0]], blocks[perm[1]], blocks[perm[2]]}
		p, err := Import(EncodeBlocks(shuffled), at(120))
		if err != nil {
			t.Fatalf("%v: %v", perm, err)
		}
		if p.ID() != sc.p.ID() || !bytes.Equal(p.Export(), sc.p.Export()) {
			t.Fatalf("%v: imported passport differs", perm)
		}
		if got := p.MasterKeys(); !slices.Equal(got, wantKeys) {
			t.Fatalf("%v: master keys = %v", perm, got)
		}
		if sk, ok := p.SharedKey(); !ok || sk != sc.s2.Public() {
			t.Fatalf("%v: shared key = %s", perm, sk)
		}
		for _, k := range []struct {
			name string
			key  []byte
		}{{"A", keyA}, {"B", keyB}} {
			got, err := p.UnsealSharedSecret(k.key, psk)
			if err != nil || got != sc.s2 {
				t.Fatalf("%v: unseal with %s = %x, %v", perm, k.name, got, err)
			}
		}
		if _, err := p.UnsealSharedSecret(keyC, psk); !errors.Is(err, ErrNotRecipient) {
			t.Fatalf("%v: removed key C: err = %v", perm, err)
		}
	}

	// Before its removal, C could read s1 (so the rotation in block 2 matters).
	p1, err := FromBlocks(blocks[:2], at(60))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range [][]byte{keyA, keyB, keyC} {
		if got, err := p1.UnsealSharedSecret(k, psk); err != nil || got != sc.s1 {
			t.Fatalf("block 1: unseal = %x, %v", got, err)
		}
	}
	if sc.s0 == sc.s1 || sc.s1 == sc.s2 {
		t.Fatal("shared secrets not rotated")
	}
}

func TestApplyBlockByBlock(t *testing.T) {
	sc := newScenario(t)
	blocks := sc.p.Blocks()
	p, err := FromBlocks(blocks[:1], t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(blocks[2], at(120)); !errors.Is(err, ErrPreviousMismatch) {
		t.Fatalf("out of order: err = %v", err)
	}
	if err := p.Apply(blocks[0], at(120)); !errors.Is(err, ErrKnownBlock) {
		t.Fatalf("genesis again: err = %v", err)
	}
	must(t, p.Apply(blocks[1], at(60)))
	if err := p.Apply(blocks[1], at(60)); !errors.Is(err, ErrKnownBlock) {
		t.Fatalf("duplicate: err = %v", err)
	}
	tip := p.Ledger().Tip()
	if err := p.Apply(blocks[2], at(120-int(MaxFutureSkew.Seconds())-1)); !errors.Is(err, ErrFutureTime) {
		t.Fatalf("future: err = %v", err)
	}
	if p.Ledger().Tip() != tip || len(p.Blocks()) != 2 {
		t.Fatal("failed Apply changed the passport")
	}
	must(t, p.Apply(blocks[2], at(120)))
	if !bytes.Equal(p.Export(), sc.p.Export()) {
		t.Fatal("block-by-block passport differs")
	}
}

func TestMerge(t *testing.T) {
	sc := newScenario(t)
	blocks := sc.p.Blocks()
	p, err := FromBlocks(blocks[:1], t0)
	if err != nil {
		t.Fatal(err)
	}
	n, err := p.Merge([]*Block{blocks[2], blocks[0], blocks[1]}, at(120))
	if err != nil || n != 2 {
		t.Fatalf("merge = %d, %v", n, err)
	}
	if n, err := p.Merge(blocks, at(120)); err != nil || n != 0 {
		t.Fatalf("merge again = %d, %v", n, err)
	}
	if !bytes.Equal(p.Export(), sc.p.Export()) {
		t.Fatal("merged passport differs")
	}

	other, _, err := Create(testRand(9), t0, "other", keyB, testPSK(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Merge(other.Blocks(), at(120)); !errors.Is(err, ErrOrphan) {
		t.Fatalf("merge of another passport: err = %v", err)
	}
	// A block on an older parent is a fork.
	fork := mustSign(t, kt(t, 130), blocks[1].ID(), keyA, DeregisterMasterKey{keys.Public(keyB), kt(t, 130)})
	if _, err := p.Merge([]*Block{fork}, at(130)); !errors.Is(err, ErrFork) {
		t.Fatalf("merge of a fork: err = %v", err)
	}
	if !bytes.Equal(p.Export(), sc.p.Export()) {
		t.Fatal("failed merge changed the passport")
	}
}

func TestBuilderErrors(t *testing.T) {
	psk := testPSK(t)
	pubC := keys.Public(keyC)
	for _, c := range []struct {
		name string
		run  func(p *Passport) error
		want error // nil: any error
	}{
		{"add active key", func(p *Passport) error { return p.Next().AddMasterKey("again", keyA) }, ErrKeyAlreadyActive},
		{"alias taken", func(p *Passport) error { return p.Next().AddMasterKey("laptop", keyB) }, ErrAliasTaken},
		{"alias taken within block", func(p *Passport) error {
			b := p.Next()
			must(t, b.AddMasterKey("x", keyB))
			return b.AddMasterKey("x", keyC)
		}, ErrAliasTaken},
		{"alias too long", func(p *Passport) error { return p.Next().AddMasterKey("012345678901234567890123456789012", keyB) }, ErrMalformed},
		{"remove inactive key", func(p *Passport) error { return p.Next().RemoveMasterKey(pubC) }, ErrKeyNotActive},
		{"remove last key", func(p *Passport) error { return p.Next().RemoveMasterKey(keys.Public(keyA)) }, ErrLastKey},
		{"empty block", func(p *Passport) error { _, err := p.Next().Finalize(keyA, at(1)); return err }, ErrEmptyBlock},
		{"author not active", func(p *Passport) error {
			b := p.Next()
			must(t, b.AddMasterKey("phone", keyB))
			_, err := b.Finalize(keyB, at(1)) // B is only active once the block applies
			return err
		}, ErrUnauthorized},
		{"time backwards", func(p *Passport) error {
			b := p.Next()
			must(t, b.AddMasterKey("phone", keyB))
			_, err := b.Finalize(keyA, at(-1))
			return err
		}, ErrTimeBackwards},
		{"stale builder", func(p *Passport) error {
			stale := p.Next()
			must(t, stale.AddMasterKey("phone", keyB))
			b := p.Next()
			must(t, b.AddMasterKey("tablet", keyC))
			if _, err := b.Finalize(keyA, at(1)); err != nil {
				return err
			}
			_, err := stale.Finalize(keyA, at(2))
			return err
		}, ErrPreviousMismatch},
		{"finalize twice", func(p *Passport) error {
			b := p.Next()
			must(t, b.AddMasterKey("phone", keyB))
			if _, err := b.Finalize(keyA, at(1)); err != nil {
				return err
			}
			_, err := b.Finalize(keyA, at(2))
			return err
		}, errBuilderDone},
		{"rotate without randomness", func(p *Passport) error {
			_, err := p.Next().RotateSharedKey(bytes.NewReader(nil), psk)
			return err
		}, nil},
	} {
		p, _, err := Create(testRand(3), t0, "laptop", keyA, psk)
		if err != nil {
			t.Fatal(err)
		}
		err = c.run(p)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

// TestRotateBeforeAdd documents the order rule: a key added after the
// rotation cannot read the new shared key.
func TestRotateBeforeAdd(t *testing.T) {
	psk := testPSK(t)
	p, _, err := Create(testRand(4), t0, "laptop", keyA, psk)
	if err != nil {
		t.Fatal(err)
	}
	b := p.Next()
	if _, err := b.RotateSharedKey(testRand(5), psk); err != nil {
		t.Fatal(err)
	}
	must(t, b.AddMasterKey("phone", keyB))
	if _, err := b.Finalize(keyA, at(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UnsealSharedSecret(keyB, psk); !errors.Is(err, ErrNotRecipient) {
		t.Fatalf("err = %v", err)
	}
}
