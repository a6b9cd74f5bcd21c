// Package keys holds the identities of ASMTP: Ed25519 keys for nodes and
// devices (derived from entropy and a password exactly as upstream asmtpd
// does), Curve25519 shared keys for mail encryption, the Ed25519-as-DH
// exchange Noise uses with them, and their lowercase hex text form.
package keys

import (
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/pbkdf2"
)

const (
	// EntropySize is the length of an asmtpd entropy file's content, in bytes.
	EntropySize = 64
	// SeedSize is the length of a keynesis Seed.
	SeedSize = 32
	// PublicKeySize is the length of an Ed25519 or Curve25519 public key.
	PublicKeySize = 32
	// SharedSecretSize is the length of a Curve25519 secret key.
	SharedSecretSize = 32

	// SeedIterations is keynesis' Seed::derive_from_key PBKDF2 cost.
	SeedIterations = 1_000_000
)

// Entropy is the 64 random bytes an asmtpd node key is derived from.
type Entropy [EntropySize]byte

// Seed is a keynesis Seed: the key of a ChaCha20 stream whose first 32
// bytes are an Ed25519 seed.
type Seed [SeedSize]byte

// PublicKey is an Ed25519 public key (node id, device id, master key).
type PublicKey [PublicKeySize]byte

// SharedKey is a Curve25519 public key (a passport's shared key).
type SharedKey [PublicKeySize]byte

// SharedSecret is a clamped Curve25519 secret key.
type SharedSecret [SharedSecretSize]byte

// GenerateEntropy reads fresh entropy from r (crypto/rand.Reader in production).
func GenerateEntropy(r io.Reader) (Entropy, error) {
	var e Entropy
	if _, err := io.ReadFull(r, e[:]); err != nil {
		return e, fmt.Errorf("generate entropy: %w", err)
	}
	return e, nil
}

// DeriveSeed is keynesis Seed::derive_from_key(key, password): PBKDF2-HMAC-SHA512
// with the password as PBKDF2 password and key as salt. It costs about a second.
func DeriveSeed(key []byte, password []byte) Seed {
	var s Seed
	copy(s[:], pbkdf2.Key(password, key, SeedIterations, SeedSize, sha512.New))
	return s
}

// Ed25519 turns a Seed into the Ed25519 key keynesis draws from its ChaCha20
// RNG: the first 32 keystream bytes (key = seed, zero nonce, counter 0).
func (s Seed) Ed25519() ed25519.PrivateKey {
	c, err := chacha20.NewUnauthenticatedCipher(s[:], make([]byte, chacha20.NonceSize))
	if err != nil {
		panic("keys: chacha20 rejected a 32-byte key: " + err.Error()) // sizes are constants
	}
	var seed [ed25519.SeedSize]byte
	c.XORKeyStream(seed[:], seed[:])
	return ed25519.NewKeyFromSeed(seed[:])
}

// NodeKey derives an asmtpd node key from its entropy file and password, as
// upstream does. A wrong password silently yields another identity; callers
// that know the expected id must compare it.
func NodeKey(e Entropy, password string) ed25519.PrivateKey {
	return DeriveSeed(e[:], []byte(password)).Ed25519()
}

// PassphraseSeed is the 32-byte psk that seals a passport's shared secret:
// Seed::derive_from_key(BLAKE2b-256(passphrase), "").
func PassphraseSeed(passphrase string) Seed {
	h := blake2b.Sum256([]byte(passphrase))
	return DeriveSeed(h[:], nil)
}

// Public returns the public half of an Ed25519 private key.
func Public(k ed25519.PrivateKey) PublicKey {
	var p PublicKey
	copy(p[:], k.Public().(ed25519.PublicKey))
	return p
}

// GenerateSharedSecret draws a clamped Curve25519 secret key from r.
func GenerateSharedSecret(r io.Reader) (SharedSecret, error) {
	var s SharedSecret
	if _, err := io.ReadFull(r, s[:]); err != nil {
		return s, fmt.Errorf("generate shared secret: %w", err)
	}
	s[0] &= 0xf8
	s[31] &= 0x3f
	s[31] |= 0x40
	return s, nil
}

// ParseSharedSecret accepts only clamped secrets, as keynesis does.
func ParseSharedSecret(b []byte) (SharedSecret, error) {
	var s SharedSecret
	if len(b) != SharedSecretSize {
		return s, fmt.Errorf("shared secret: %d bytes, want %d", len(b), SharedSecretSize)
	}
	if b[0]&0x07 != 0 || b[31]&0xc0 != 0x40 {
		return s, errors.New("shared secret: not clamped")
	}
	copy(s[:], b)
	return s, nil
}

// Public returns X25519(s, 9).
func (s SharedSecret) Public() SharedKey {
	var p SharedKey
	curve25519.ScalarBaseMult((*[32]byte)(&p), (*[32]byte)(&s))
	return p
}

// String is the lowercase hex form.
func (p PublicKey) String() string { return hex.EncodeToString(p[:]) }

// String is the lowercase hex form.
func (p SharedKey) String() string { return hex.EncodeToString(p[:]) }

// String is the lowercase hex form.
func (e Entropy) String() string { return hex.EncodeToString(e[:]) }

// ParsePublicKey parses 64 hex characters into an Ed25519 public key.
func ParsePublicKey(s string) (PublicKey, error) {
	var p PublicKey
	return p, DecodeHex(p[:], s, "public key")
}

// ParseSharedKey parses 64 hex characters into a Curve25519 public key.
func ParseSharedKey(s string) (SharedKey, error) {
	var p SharedKey
	return p, DecodeHex(p[:], s, "shared key")
}

// ParseEntropy parses the content of an entropy file. Surrounding whitespace
// is ignored (upstream choked on a trailing newline).
func ParseEntropy(s string) (Entropy, error) {
	var e Entropy
	return e, DecodeHex(e[:], strings.TrimSpace(s), "entropy")
}

// DecodeHex decodes exactly len(dst) bytes of hex from s into dst, with an
// error naming what was expected. Upper-case digits are accepted on input;
// output is always lower-case.
func DecodeHex(dst []byte, s, what string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("%s: %d hex characters, want %d", what, len(s), 2*len(dst))
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
