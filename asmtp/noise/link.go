package noise

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"golang.org/x/crypto/chacha20poly1305"
)

// NonceSize is the ChaCha20-Poly1305 nonce: 4 zero bytes ‖ u64 LE counter.
const NonceSize = chacha20poly1305.NonceSize

// rekeyNonce is the counter value Noise reserves for REKEY.
const rekeyNonce = math.MaxUint64

// LinkCipher is one direction of an established link (§5, §7):
// ChaCha20-Poly1305 with empty associated data and the nonce
// 4 zero bytes ‖ u64 little-endian counter, starting at 0. After every
// message both ends REKEY (k = first 32 bytes of
// ENCRYPT(k, 2^64−1, empty, 32 zero bytes)); the counter is not reset.
//
// It is the Noise CipherState that flynn/noise's handshake yields, plus
// the rekey, without flynn's per-message allocations: it is on the hot
// path of every link. TestLinkCipherMatchesFlynn checks they agree.
//
// A LinkCipher is not safe for concurrent use.
type LinkCipher struct {
	key   [KeyLen]byte
	aead  cipher.AEAD
	n     uint64
	nonce [NonceSize]byte
	rekey [KeyLen + TagLen]byte // scratch for REKEY
}

// NewLinkCipher returns a cipher with key k and counter 0, as after the
// handshake split. Tests and interoperability checks use it; links get
// theirs from Handshake.Split.
func NewLinkCipher(k [KeyLen]byte) *LinkCipher {
	return newLinkCipher(k, 0)
}

func newLinkCipher(k [KeyLen]byte, n uint64) *LinkCipher {
	l := &LinkCipher{n: n}
	l.setKey(k[:])
	return l
}

func (l *LinkCipher) setKey(k []byte) {
	copy(l.key[:], k)
	aead, err := chacha20poly1305.New(l.key[:])
	if err != nil {
		panic("noise: chacha20poly1305 rejected a 32-byte key: " + err.Error()) // sizes are constants
	}
	l.aead = aead
}

func (l *LinkCipher) nonceOf(n uint64) []byte {
	binary.LittleEndian.PutUint64(l.nonce[4:], n)
	return l.nonce[:]
}

// doRekey is the Noise REKEY(k).
func (l *LinkCipher) doRekey() {
	clear(l.rekey[:KeyLen])
	k := l.aead.Seal(l.rekey[:0], l.nonceOf(rekeyNonce), l.rekey[:KeyLen], nil)
	l.setKey(k[:KeyLen])
}

// errNonceExhausted: 2^64−1 messages in one direction. Unreachable in practice.
var errNonceExhausted = errors.New("nonce exhausted, a new handshake is needed")

// Seal appends the encryption of plaintext and its 16-byte tag to dst,
// then rekeys. To seal in place, pass plaintext[:0] as dst; otherwise dst
// and plaintext must not overlap.
func (l *LinkCipher) Seal(dst, plaintext []byte) ([]byte, error) {
	if l.n == rekeyNonce {
		return nil, fmt.Errorf("link seal: %w", errNonceExhausted)
	}
	out := l.aead.Seal(dst, l.nonceOf(l.n), plaintext, nil)
	l.n++
	l.doRekey()
	return out, nil
}

// Open authenticates and decrypts ciphertext (which ends with the tag),
// appends the plaintext to dst, then rekeys. To open in place, pass
// ciphertext[:0] as dst. On failure the state is unchanged and the error
// wraps ErrAuthentication; the link must then be dropped.
func (l *LinkCipher) Open(dst, ciphertext []byte) ([]byte, error) {
	if l.n == rekeyNonce {
		return nil, fmt.Errorf("link open: %w", errNonceExhausted)
	}
	if len(ciphertext) < TagLen {
		return nil, fmt.Errorf("link open: %d bytes, shorter than a tag: %w", len(ciphertext), ErrAuthentication)
	}
	out, err := l.aead.Open(dst, l.nonceOf(l.n), ciphertext, nil)
	if err != nil {
		return nil, fmt.Errorf("link open (nonce %d): %w", l.n, ErrAuthentication)
	}
	l.n++
	l.doRekey()
	return out, nil
}
