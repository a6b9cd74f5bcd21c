package accounts

import (
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/asmtp/asmtp/asmtp/keys"
)

// sealerInfo is the HKDF info string; bump its version to change the scheme.
const sealerInfo = "asmtp bridge secrets v1"

// ErrWrongNodeKey means the node key at hand is not the one the account
// secrets were sealed with: almost always a mistyped key password, since
// a wrong password silently derives another node key.
var ErrWrongNodeKey = errors.New("wrong key password or different node key")

// sealer encrypts account secrets at rest under a key derived from the
// node's Ed25519 seed (HKDF-SHA512, info sealerInfo), with
// XChaCha20-Poly1305. The node key is itself derived from the key password
// by a slow KDF, so the secrets need no second password and no second slow
// KDF. Each value is bound to its account and field through the AEAD's
// additional data, so sealed values cannot be swapped between rows or
// columns.
type sealer struct {
	aead cipher.AEAD
	node keys.PublicKey
}

func newSealer(nodeKey ed25519.PrivateKey) (*sealer, error) {
	if len(nodeKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("node key: %d bytes, want %d", len(nodeKey), ed25519.PrivateKeySize)
	}
	k, err := hkdf.Key(sha512.New, nodeKey.Seed(), nil, sealerInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive secrets key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, fmt.Errorf("secrets cipher: %w", err)
	}
	return &sealer{aead: aead, node: keys.Public(nodeKey)}, nil
}

// additionalData binds a sealed value to its place. Account names cannot
// contain NUL, so the encoding is unambiguous.
func additionalData(account, field string) []byte {
	return []byte(sealerInfo + "\x00" + account + "\x00" + field)
}

// seal returns nonce ‖ ciphertext.
func (s *sealer) seal(account, field string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal %s: %w", field, err)
	}
	return s.aead.Seal(nonce, nonce, plaintext, additionalData(account, field)), nil
}

func (s *sealer) open(account, field string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("open %s of account %s: %d bytes: too short", field, account, len(sealed))
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], additionalData(account, field))
	if err != nil {
		return nil, fmt.Errorf("open %s of account %s: %w", field, account, ErrWrongNodeKey)
	}
	return plain, nil
}
