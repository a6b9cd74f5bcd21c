package passport

import (
	"encoding/hex"

	"github.com/asmtp/asmtp/asmtp/keys"
	"golang.org/x/crypto/blake2b"
)

// HashSize is the length of a keynesis Hash: BLAKE2b with a 16-byte digest.
const HashSize = 16

// Hash is a keynesis Hash: the parameterised BLAKE2b-128 digest (not a
// truncated BLAKE2b-512). Passport ids and block ids are Hashes.
type Hash [HashSize]byte

// HashOf returns BLAKE2b-128(b).
func HashOf(b []byte) Hash {
	d, err := blake2b.New(HashSize, nil)
	if err != nil {
		panic("passport: blake2b rejected a 16-byte digest: " + err.Error()) // sizes are constants
	}
	d.Write(b)
	var h Hash
	d.Sum(h[:0])
	return h
}

// IsZero reports whether h is the all-zero hash (the genesis' previous).
func (h Hash) IsZero() bool { return h == Hash{} }

// String is the lowercase hex form.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash parses 32 hex characters.
func ParseHash(s string) (Hash, error) {
	var h Hash
	return h, keys.DecodeHex(h[:], s, "hash")
}
