package noise

// The passport shared-key seal (PROTOCOL.md §P.5).
//
// A passport's Curve25519 shared secret is sealed to each master key with a
// one-message Noise construction that keynesis names
// "Noise_Kpsk0_ed25519_ChaChaPoly_BLAKE2b". It is the one-way N pattern with
// a psk, but the psk is mixed BEFORE the pre-message (standard Npsk0 mixes
// the pre-message first), so no stock Noise library can produce it. This file
// implements it over its own BLAKE2b symmetric state and depends on nothing
// else in this package.

import (
	"crypto/ed25519"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/asmtp/asmtp/asmtp/keys"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// SharedKeyProtocolName is hashed into the initial handshake hash; it
	// must be reproduced byte for byte.
	SharedKeyProtocolName = "Noise_Kpsk0_ed25519_ChaChaPoly_BLAKE2b"
	// SealedSharedSecretSize is e.pub (32) ‖ ChaChaPoly(secret) (32 + 16).
	SealedSharedSecretSize = keys.PublicKeySize + keys.SharedSecretSize + chacha20poly1305.Overhead

	symmetricStateHashLen = blake2b.Size // 64
	symmetricStateKeyLen  = chacha20poly1305.KeySize
)

// ErrSharedSecretOpen is returned when a sealed shared secret does not
// authenticate: wrong master key, wrong passphrase or tampered bytes.
var ErrSharedSecretOpen = errors.New("noise: sealed shared secret does not open (wrong key, wrong passphrase or corrupted)")

// SealSharedSecret seals secret to the master key recipient under the
// passphrase seed psk. rand supplies the 32-byte ephemeral Ed25519 seed.
func SealSharedSecret(rand io.Reader, recipient keys.PublicKey, psk keys.Seed, secret keys.SharedSecret) ([SealedSharedSecretSize]byte, error) {
	var out [SealedSharedSecretSize]byte
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return out, fmt.Errorf("seal shared secret: ephemeral key: %w", err)
	}
	e := ed25519.NewKeyFromSeed(seed)
	ePub := keys.Public(e)

	s := symmetricStateBegin(psk, recipient)
	s.mixEphemeral(ePub)
	dh, err := keys.Ed25519DH(e, recipient)
	if err != nil {
		return out, fmt.Errorf("seal shared secret: recipient key: %w", err)
	}
	s.mixKey(dh[:])
	ct := s.encryptAndHash(secret[:])

	copy(out[:keys.PublicKeySize], ePub[:])
	copy(out[keys.PublicKeySize:], ct)
	return out, nil
}

// OpenSharedSecret opens a sealed shared secret with the master key it was
// sealed to and the same passphrase seed. The result must be a clamped
// Curve25519 secret, as keynesis requires.
func OpenSharedSecret(master ed25519.PrivateKey, psk keys.Seed, sealed []byte) (keys.SharedSecret, error) {
	var secret keys.SharedSecret
	if len(sealed) != SealedSharedSecretSize {
		return secret, fmt.Errorf("open shared secret: %d bytes, want %d", len(sealed), SealedSharedSecretSize)
	}
	if len(master) != ed25519.PrivateKeySize {
		return secret, fmt.Errorf("open shared secret: master key is %d bytes, want %d", len(master), ed25519.PrivateKeySize)
	}
	var ePub keys.PublicKey
	copy(ePub[:], sealed[:keys.PublicKeySize])

	s := symmetricStateBegin(psk, keys.Public(master))
	s.mixEphemeral(ePub)
	dh, err := keys.Ed25519DH(master, ePub)
	if err != nil {
		return secret, fmt.Errorf("open shared secret: ephemeral key: %w", err)
	}
	s.mixKey(dh[:])
	pt, err := s.decryptAndHash(sealed[keys.PublicKeySize:])
	if err != nil {
		return secret, fmt.Errorf("open shared secret: %w", err)
	}
	secret, err = keys.ParseSharedSecret(pt)
	if err != nil {
		return secret, fmt.Errorf("open shared secret: %w", err)
	}
	return secret, nil
}

// symmetricStateBegin runs the steps both sides share, in keynesis' order:
// InitializeSymmetric(name), MixHash(empty prologue), MixKeyAndHash(psk),
// then MixHash(rs) for the pre-message.
func symmetricStateBegin(psk keys.Seed, rs keys.PublicKey) *symmetricState {
	s := newSymmetricState(SharedKeyProtocolName)
	s.mixHash(nil)
	s.mixKeyAndHash(psk[:])
	s.mixHash(rs[:])
	return s
}

// mixEphemeral is token e in psk mode: MixHash(e.pub) then MixKey(e.pub).
func (s *symmetricState) mixEphemeral(ePub keys.PublicKey) {
	s.mixHash(ePub[:])
	s.mixKey(ePub[:])
}

// symmetricState is a Noise (rev 34) SymmetricState with HASH = BLAKE2b-512
// and a ChaChaPoly CipherState whose nonce is 4 zero bytes ‖ u64 LE.
type symmetricState struct {
	ck     [symmetricStateHashLen]byte
	h      [symmetricStateHashLen]byte
	k      [symmetricStateKeyLen]byte
	n      uint64
	hasKey bool
}

func newSymmetricState(protocolName string) *symmetricState {
	s := &symmetricState{}
	if len(protocolName) <= symmetricStateHashLen {
		copy(s.h[:], protocolName)
	} else {
		s.h = blake2b.Sum512([]byte(protocolName))
	}
	s.ck = s.h
	return s
}

func (s *symmetricState) mixHash(data []byte) {
	d := symmetricStateNewHash()
	d.Write(s.h[:])
	d.Write(data)
	d.Sum(s.h[:0])
}

func (s *symmetricState) mixKey(ikm []byte) {
	ck, tempK, _ := symmetricStateHKDF(s.ck[:], ikm, 2)
	s.ck = ck
	s.initializeKey(tempK)
}

func (s *symmetricState) mixKeyAndHash(ikm []byte) {
	ck, tempH, tempK := symmetricStateHKDF(s.ck[:], ikm, 3)
	s.ck = ck
	s.mixHash(tempH[:])
	s.initializeKey(tempK)
}

func (s *symmetricState) initializeKey(tempK [symmetricStateHashLen]byte) {
	copy(s.k[:], tempK[:symmetricStateKeyLen])
	s.n = 0
	s.hasKey = true
}

func (s *symmetricState) nonce() []byte {
	var nonce [chacha20poly1305.NonceSize]byte
	binary.LittleEndian.PutUint64(nonce[4:], s.n)
	return nonce[:]
}

// encryptAndHash is only called once a key is set (after MixKeyAndHash), so
// the no-key pass-through of the Noise spec is not needed.
func (s *symmetricState) encryptAndHash(plaintext []byte) []byte {
	aead, err := chacha20poly1305.New(s.k[:])
	if err != nil {
		panic("noise: chacha20poly1305 rejected a 32-byte key: " + err.Error()) // sizes are constants
	}
	ct := aead.Seal(nil, s.nonce(), plaintext, s.h[:])
	s.n++
	s.mixHash(ct)
	return ct
}

func (s *symmetricState) decryptAndHash(ciphertext []byte) ([]byte, error) {
	aead, err := chacha20poly1305.New(s.k[:])
	if err != nil {
		panic("noise: chacha20poly1305 rejected a 32-byte key: " + err.Error()) // sizes are constants
	}
	pt, err := aead.Open(nil, s.nonce(), ciphertext, s.h[:])
	if err != nil {
		return nil, ErrSharedSecretOpen
	}
	s.n++
	s.mixHash(ciphertext)
	return pt, nil
}

func symmetricStateNewHash() hash.Hash {
	d, err := blake2b.New512(nil)
	if err != nil {
		panic("noise: blake2b-512 rejected a nil key: " + err.Error()) // unkeyed never fails
	}
	return d
}

// symmetricStateHKDF is the Noise HKDF over HMAC-BLAKE2b-512, returning
// n = 2 or 3 outputs (the third is zero when n = 2).
func symmetricStateHKDF(ck, ikm []byte, n int) (o1, o2, o3 [symmetricStateHashLen]byte) {
	tempKey := symmetricStateHMAC(ck, ikm)
	o1 = symmetricStateHMAC(tempKey[:], []byte{0x01})
	o2 = symmetricStateHMAC(tempKey[:], append(o1[:], 0x02))
	if n == 3 {
		o3 = symmetricStateHMAC(tempKey[:], append(o2[:], 0x03))
	}
	return o1, o2, o3
}

func symmetricStateHMAC(key, data []byte) [symmetricStateHashLen]byte {
	m := hmac.New(symmetricStateNewHash, key)
	m.Write(data)
	var out [symmetricStateHashLen]byte
	m.Sum(out[:0])
	return out
}
