package card

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/noise"
	"github.com/asmtp/asmtp/asmtp/passport"
)

// Card vector (PROTOCOL.md §16.5). COMPUTED BY US with this code; the sealed
// form was opened by an independent Python implementation (cryptography's
// X25519 and ChaCha20-Poly1305, hashlib's BLAKE2b).
const (
	// vectorPlainPrefix is the plaintext up to the end of the address; the
	// rest (to PayloadSize) is zero.
	vectorPlainPrefix = "f8010302" + "01" + "0000000069354918" +
		"00112233445566778899aabbccddeeff" +
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" +
		"2020202020202020202020202020202020202020202020202020202020202020" +
		"11" + "3139382e35312e3130302e373a31333537"
	// vectorSealedSHA256 is SHA-256 of the SealedSize-byte sealed card,
	// with the P.7 sender and recipient keys and e = 0x0a × 32.
	vectorSealedSHA256 = "9441f9b0e9c2bb4da318426c8c840095973a3d941ab3d41db4fb5ce744bb0b6b"
)

func vectorCard() Card {
	c := Card{
		Scheme: SchemeV2,
		Answer: true,
		Issued: time.Date(2025, 12, 7, 9, 30, 0, 0, time.UTC),
		Addr:   "198.51.100.7:1357",
	}
	copy(c.Passport[:], mustHex("00112233445566778899aabbccddeeff"))
	for i := range c.Seed {
		c.Seed[i] = byte(i)
	}
	for i := range c.Node {
		c.Node[i] = 0x20
	}
	return c
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// p7Keys are the sender and recipient secrets of the P.7 vector.
func p7Keys(t *testing.T) (sender, recipient keys.SharedSecret) {
	t.Helper()
	s, err := keys.ParseSharedSecret(mustHex("0808080808080808080808080808080808080808080808080808080808080848"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := keys.ParseSharedSecret(mustHex("0809090909090909090909090909090909090909090909090909090909090949"))
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

func TestCardVector(t *testing.T) {
	c := vectorCard()
	p, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := append(mustHex(vectorPlainPrefix), make([]byte, PayloadSize-len(vectorPlainPrefix)/2)...)
	if !bytes.Equal(p, want) {
		t.Fatalf("plaintext:\n got %x\nwant %x", p[:offAddr+len(c.Addr)], want[:offAddr+len(c.Addr)])
	}
	s, r := p7Keys(t)
	sealed, err := Seal(bytes.NewReader(bytes.Repeat([]byte{0x0a}, 32)), noise.NewXKey(s), r.Public(), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != SealedSize {
		t.Fatalf("sealed %d bytes, want %d", len(sealed), SealedSize)
	}
	if got := hex.EncodeToString(sha256Of(sealed)); got != vectorSealedSHA256 {
		t.Errorf("SHA-256 of sealed card = %s, want %s", got, vectorSealedSHA256)
	}
	got, sender, err := Open(noise.NewXKey(r), sealed)
	if err != nil {
		t.Fatal(err)
	}
	if got != c || sender != s.Public() {
		t.Fatalf("opened %+v from %s, want %+v from %s", got, sender, c, s.Public())
	}
}

func sha256Of(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

func TestCardRoundTrip(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:1", "[2001:db8::1]:9800", "node.example.org:443", strings.Repeat("a", MaxAddrLen-3) + ":99"} {
		for _, answer := range []bool{false, true} {
			c := vectorCard()
			c.Addr, c.Answer = addr, answer
			p, err := c.Encode()
			if err != nil {
				t.Fatalf("%q: %v", addr, err)
			}
			got, err := Decode(p)
			if err != nil || got != c {
				t.Fatalf("%q answer=%v: decoded %+v, %v", addr, answer, got, err)
			}
		}
	}
}

// TestCardLimits: each broken rule is refused with the error it names.
func TestCardLimits(t *testing.T) {
	good, err := vectorCard().Encode()
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(p []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		p    []byte
		want error
	}{
		{"empty", nil, ErrNotCard},
		{"mail chunk", mutate(func(p []byte) []byte { p[2] = 0x01; return p }), ErrNotCard},
		{"legacy text", []byte("hello, this is upstream text"), ErrNotCard},
		{"short", good[:PayloadSize-1], ErrMalformed},
		{"long", append(append([]byte(nil), good...), 0), ErrMalformed},
		{"scheme 1", mutate(func(p []byte) []byte { p[offScheme] = 1; return p }), ErrScheme},
		{"scheme 3", mutate(func(p []byte) []byte { p[offScheme] = 3; return p }), ErrScheme},
		{"unknown flag", mutate(func(p []byte) []byte { p[offFlags] |= 0x80; return p }), ErrMalformed},
		{"padding", mutate(func(p []byte) []byte { p[PayloadSize-1] = 1; return p }), ErrMalformed},
		{"address runs into padding", mutate(func(p []byte) []byte { p[offAddrLen]++; return p }), ErrMalformed},
		{"address without port", mutate(func(p []byte) []byte { p[offAddrLen] = 3; clear(p[offAddr+3:]); return p }), ErrMalformed},
		{"control byte in address", mutate(func(p []byte) []byte { p[offAddr] = '\n'; return p }), ErrMalformed},
		{"issued out of range", mutate(func(p []byte) []byte { p[offIssued] = 0xff; return p }), ErrMalformed},
	} {
		if _, err := Decode(tc.p); !errors.Is(err, tc.want) {
			t.Errorf("%s: Decode = %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, c := range []Card{
		func() Card { c := vectorCard(); c.Scheme = 1; return c }(),
		func() Card { c := vectorCard(); c.Addr = strings.Repeat("a", MaxAddrLen) + ":1"; return c }(),
		func() Card { c := vectorCard(); c.Addr = ""; return c }(),
		func() Card { c := vectorCard(); c.Issued = time.Unix(-1, 0); return c }(),
	} {
		if _, err := c.Encode(); err == nil {
			t.Errorf("Encode(%+v) accepted", c)
		}
	}
}

// newPassport makes a real passport and its shared secret.
func newPassport(t *testing.T, alias string) (*passport.Passport, keys.SharedSecret) {
	t.Helper()
	author := keys.PassphraseSeed(alias).Ed25519()
	p, secret, err := passport.Create(rand.Reader, time.Now(), alias, author, keys.PassphraseSeed(alias+" psk"))
	if err != nil {
		t.Fatal(err)
	}
	return p, secret
}

// TestCardOpenVerify: only the recipient opens a card, only a card-sized
// content is tried, and Verify accepts only the passport that sealed it.
func TestCardOpenVerify(t *testing.T) {
	alice, aliceSecret := newPassport(t, "alice")
	bob, bobSecret := newPassport(t, "bob")
	mallory, mallorySecret := newPassport(t, "mallory")
	bobKey, _ := bob.SharedKey()
	c := vectorCard()
	c.Passport = alice.ID()
	sealed, err := Seal(nil, noise.NewXKey(aliceSecret), bobKey, c)
	if err != nil {
		t.Fatal(err)
	}
	got, sender, err := Open(noise.NewXKey(bobSecret), sealed)
	if err != nil || got != c {
		t.Fatalf("bob opens: %+v, %v", got, err)
	}
	if err := Verify(got, sender, alice); err != nil {
		t.Fatalf("verify alice: %v", err)
	}
	if err := Verify(got, sender, mallory); !errors.Is(err, ErrWrongSender) {
		t.Fatalf("verify against mallory's passport: %v", err)
	}
	if _, _, err := Open(noise.NewXKey(mallorySecret), sealed); !errors.Is(err, noise.ErrAuthentication) {
		t.Fatalf("mallory opens bob's card: %v", err)
	}
	// Mallory claims alice's passport id in a card she seals herself.
	forged, err := Seal(nil, noise.NewXKey(mallorySecret), bobKey, c)
	if err != nil {
		t.Fatal(err)
	}
	got, sender, err = Open(noise.NewXKey(bobSecret), forged)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(got, sender, alice); !errors.Is(err, ErrWrongSender) {
		t.Fatalf("forged card verified: %v", err)
	}
	if _, _, err := Open(noise.NewXKey(bobSecret), append(sealed, 0)); !errors.Is(err, ErrNotCard) {
		t.Fatalf("1025-byte content: %v", err)
	}
}

// FuzzDecode: Decode never panics, every error is classified, and whatever
// decodes re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	good, err := vectorCard().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{marker, payloadVersion, Kind, SchemeV2})
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := Decode(p)
		if err != nil {
			if !errors.Is(err, ErrNotCard) && !errors.Is(err, ErrScheme) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("re-encode %+v: %v", c, err)
		}
		if !bytes.Equal(enc, p) {
			t.Fatal("decoded card re-encodes differently")
		}
	})
}
