package passport

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
)

// t0 is 2021-02-17T15:32:45Z, keynesis Time 0x0221561d (§18.1).
var t0 = time.Date(2021, 2, 17, 15, 32, 45, 0, time.UTC)

func at(seconds int) time.Time { return t0.Add(time.Duration(seconds) * time.Second) }

func kt(t testing.TB, seconds int) Time {
	t.Helper()
	v, err := TimeOf(at(seconds))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func testKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

// testPSK is keys.PassphraseSeed("asmtp") (PROTOCOL.md §10),
// written out so no test pays the 1e6-iteration PBKDF2.
func testPSK(t testing.TB) keys.Seed {
	t.Helper()
	var s keys.Seed
	if err := keys.DecodeHex(s[:], "a6110c43aa7d69ce7abb83f8c5ce4f992fe1c29ae4ecee41a3ceee7938933831", "psk"); err != nil {
		t.Fatal(err)
	}
	return s
}

// testRand is a deterministic randomness source.
func testRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

var (
	keyA = testKey(0x07) // author: "laptop"
	keyB = testKey(0x0b) // "phone"
	keyC = testKey(0x0c) // "tablet", removed in block 2
)

// scenario is a three-block passport:
//
//	genesis (t0, by A): register A "laptop", shared key s0 sealed to A
//	block 1 (t0+60, by A): register B "phone" and C "tablet", rotate to s1
//	block 2 (t0+120, by B): deregister C, rotate to s2 (sealed to A and B)
type scenario struct {
	p          *Passport
	s0, s1, s2 keys.SharedSecret
}

func newScenario(t testing.TB) scenario {
	t.Helper()
	psk := testPSK(t)
	rnd := testRand(1)
	var sc scenario
	var err error
	if sc.p, sc.s0, err = Create(rnd, t0, "laptop", keyA, psk); err != nil {
		t.Fatal(err)
	}
	b := sc.p.Next()
	must(t, b.AddMasterKey("phone", keyB))
	must(t, b.AddMasterKey("tablet", keyC))
	if sc.s1, err = b.RotateSharedKey(rnd, psk); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finalize(keyA, at(60)); err != nil {
		t.Fatal(err)
	}
	b = sc.p.Next()
	must(t, b.RemoveMasterKey(keys.Public(keyC)))
	if sc.s2, err = b.RotateSharedKey(rnd, psk); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finalize(keyB, at(120)); err != nil {
		t.Fatal(err)
	}
	return sc
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// mustSign signs a block without ledger checks (entries must still parse).
func mustSign(t testing.TB, tm Time, previous Hash, author ed25519.PrivateKey, entries ...Entry) *Block {
	t.Helper()
	b, err := signBlock(tm, previous, entries, author)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustRegister(t testing.TB, key ed25519.PrivateKey, alias string, id Hash, createdAt Time) RegisterMasterKey {
	t.Helper()
	e, err := NewRegisterMasterKey(key, alias, id, createdAt)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
