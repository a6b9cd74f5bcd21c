package keys

import (
	"crypto/ed25519"
	"crypto/sha512"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
	"golang.org/x/crypto/curve25519"
)

// ErrBadPoint is returned for a public key that is not a valid Edwards point.
// Upstream accepts such keys; honest peers never send them.
var ErrBadPoint = errors.New("not a valid Ed25519 point")

// EdwardsToMontgomery maps an Ed25519 public key to its Curve25519
// u-coordinate: u = (1 + y) / (1 - y).
func EdwardsToMontgomery(pub PublicKey) ([32]byte, error) {
	var u [32]byte
	if _, err := new(edwards25519.Point).SetBytes(pub[:]); err != nil {
		return u, fmt.Errorf("edwards to montgomery: %w", ErrBadPoint)
	}
	var b [32]byte
	copy(b[:], pub[:])
	b[31] &= 0x7f // the sign of x is irrelevant to u
	y, err := new(field.Element).SetBytes(b[:])
	if err != nil {
		return u, fmt.Errorf("edwards to montgomery: %w", err)
	}
	one := new(field.Element).One()
	num := new(field.Element).Add(one, y)
	den := new(field.Element).Subtract(one, y)
	// y = 1 is the identity point; Invert(0) = 0 gives u = 0, as upstream.
	den.Invert(den)
	copy(u[:], new(field.Element).Multiply(num, den).Bytes())
	return u, nil
}

// Ed25519Scalar is the clamped X25519 scalar of an Ed25519 seed: the first
// half of SHA-512(seed), clamped.
func Ed25519Scalar(k ed25519.PrivateKey) [32]byte {
	h := sha512.Sum512(k.Seed())
	var s [32]byte
	copy(s[:], h[:32])
	s[0] &= 248
	s[31] &= 127
	s[31] |= 64
	return s
}

// Ed25519DH is keynesis' Diffie-Hellman over Ed25519 keys (Noise DH name
// "ed25519"): X25519(clamped SHA-512(seed)[:32], montgomery(peer)). Like
// upstream, an all-zero result is not rejected; unlike upstream, an invalid
// point is.
func Ed25519DH(k ed25519.PrivateKey, peer PublicKey) ([32]byte, error) {
	var out [32]byte
	u, err := EdwardsToMontgomery(peer)
	if err != nil {
		return out, err
	}
	s := Ed25519Scalar(k)
	//lint:ignore SA1019 ScalarMult, unlike X25519, keeps an all-zero output as upstream does
	curve25519.ScalarMult(&out, &s, &u)
	return out, nil
}
