package keys

import (
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Vectors from PROTOCOL.md §10.
func TestNodeKeyVector(t *testing.T) {
	var e Entropy
	for i := range e {
		e[i] = byte(i)
	}
	seed := DeriveSeed(e[:], []byte("asmtp"))
	if got, want := hex.EncodeToString(seed[:]), "10400be71aff400b202ced4816c600a7a09fa33b97b7bdaea06f4bc6726674cf"; got != want {
		t.Fatalf("seed = %s, want %s", got, want)
	}
	k := seed.Ed25519()
	if got, want := hex.EncodeToString(k.Seed()), "f68ccd831361b402fe6c537e30c19ffe34a1aeb8613c44a45e1e072b74a37f4c"; got != want {
		t.Fatalf("ed25519 seed = %s, want %s", got, want)
	}
	if got, want := Public(NodeKey(e, "asmtp")).String(), "78f6b1cc94b56c934b8df791c8a8362e72b3decd8fbb0e132d2148a358ebf4e8"; got != want {
		t.Fatalf("public = %s, want %s", got, want)
	}
}

func TestChaChaKeystreamVector(t *testing.T) {
	var zero Seed
	k := zero.Ed25519()
	if got := hex.EncodeToString(k.Seed()[:8]); got != "76b8e0ada0f13d90" {
		t.Fatalf("keystream = %s", got)
	}
}

func TestPassphraseSeedVector(t *testing.T) {
	s := PassphraseSeed("asmtp")
	if got, want := hex.EncodeToString(s[:]), "a6110c43aa7d69ce7abb83f8c5ce4f992fe1c29ae4ecee41a3ceee7938933831"; got != want {
		t.Fatalf("psk = %s, want %s", got, want)
	}
}

func TestEd25519DHVector(t *testing.T) {
	a := ed25519.NewKeyFromSeed(mustHex(t, "f68ccd831361b402fe6c537e30c19ffe34a1aeb8613c44a45e1e072b74a37f4c"))
	b := ed25519.NewKeyFromSeed(mustHex(t, strings.Repeat("07", 32)))
	if got := Public(b).String(); got != "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c" {
		t.Fatalf("public of 0x07*32 = %s", got)
	}
	u, err := EdwardsToMontgomery(Public(b))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(u[:]); got != "761d88ec830413919dfe9d4d1d56f17e653c8c994082df5b137b90a0ae6edf74" {
		t.Fatalf("montgomery u = %s", got)
	}
	const want = "95b0784dab4f43990a7cacb5baddc059989d273c0814b72984dbe0ef47c83257"
	for _, c := range []struct {
		name string
		k    ed25519.PrivateKey
		peer PublicKey
	}{{"a with B", a, Public(b)}, {"b with A", b, Public(a)}} {
		dh, err := Ed25519DH(c.k, c.peer)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(dh[:]); got != want {
			t.Errorf("%s: dh = %s, want %s", c.name, got, want)
		}
	}
}

func TestEd25519DHRejectsBadPoint(t *testing.T) {
	k := ed25519.NewKeyFromSeed(make([]byte, 32))
	var bad PublicKey
	bad[0] = 2 // y = 2: (y²-1)/(dy²+1) has no square root, so no x exists
	if _, err := Ed25519DH(k, bad); err == nil {
		t.Fatal("accepted an invalid point")
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name, in string
		ok       bool
	}{
		{"valid", strings.Repeat("ab", 32), true},
		{"upper case accepted", strings.Repeat("AB", 32), true},
		{"short", strings.Repeat("ab", 31), false},
		{"long", strings.Repeat("ab", 33), false},
		{"bad char", strings.Repeat("zz", 32), false},
		{"empty", "", false},
	} {
		_, err := ParsePublicKey(c.in)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
		}
	}
	if _, err := ParseEntropy(strings.Repeat("0f", 64) + "\n"); err != nil {
		t.Errorf("entropy with trailing newline: %v", err)
	}
}

func TestSharedSecretClamped(t *testing.T) {
	s, err := GenerateSharedSecret(strings.NewReader(strings.Repeat("\xff", 32)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSharedSecret(s[:]); err != nil {
		t.Fatalf("generated secret does not parse: %v", err)
	}
	if _, err := ParseSharedSecret(make([]byte, 32)); err == nil {
		t.Fatal("accepted an unclamped secret")
	}
}
