package card

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/noise"
)

// A passport update (PROTOCOL.md §12.6 kind 0x04, §16.3) carries an
// account's whole passport (PassportBlocks) sealed to one contact's inbox:
// in naming v2 no node subscribes to a passport topic, so this is how a
// contact learns of a rotated shared key. Like a card it is a payload of
// its own kind; unlike a card it is padded to a mail bucket, so that on an
// inbox it looks like any small mail.

// UpdateKind is the mail payload kind of a passport update (§12.6).
const UpdateKind byte = 0x04

// Offsets of the update plaintext.
const (
	offUpdateLen    = 4                // u32 length of the blocks; byte 3 is zero
	offUpdateBlocks = offUpdateLen + 4 // 8
	// MaxUpdateBlocks bounds the passport an update carries: what the
	// largest mail bucket holds.
	MaxUpdateBlocks = mail.MaxPayloadSize - offUpdateBlocks
)

// IsUpdate reports whether the plaintext p of an opened content is a
// passport update.
func IsUpdate(p []byte) bool {
	return len(p) > offUpdateBlocks && p[0] == marker && p[1] == payloadVersion && p[2] == UpdateKind
}

// EncodeUpdate makes the plaintext of a passport update carrying blocks,
// padded with zeros to the smallest mail bucket that holds it.
func EncodeUpdate(blocks []byte) ([]byte, error) {
	if len(blocks) == 0 || len(blocks) > MaxUpdateBlocks {
		return nil, fmt.Errorf("encode passport update: %w: %d-byte passport, 1 to %d", ErrMalformed, len(blocks), MaxUpdateBlocks)
	}
	size := mail.MaxPayloadSize
	for _, b := range mail.BucketSizes() {
		if n := b - mail.SealOverhead; offUpdateBlocks+len(blocks) <= n {
			size = n
			break
		}
	}
	p := make([]byte, size)
	p[0], p[1], p[2] = marker, payloadVersion, UpdateKind
	binary.BigEndian.PutUint32(p[offUpdateLen:], uint32(len(blocks)))
	copy(p[offUpdateBlocks:], blocks)
	return p, nil
}

// DecodeUpdate returns the passport blocks of an update plaintext. It
// checks the layout only: the caller verifies that the blocks extend the
// passport it holds (passport.Passport.Merge) and that the update was
// sealed by that passport's current shared key.
func DecodeUpdate(p []byte) ([]byte, error) {
	if !IsUpdate(p) {
		return nil, fmt.Errorf("decode passport update: %w", ErrNotCard)
	}
	if !isBucketPayload(len(p)) || p[3] != 0 {
		return nil, fmt.Errorf("decode passport update: %w: %d-byte plaintext", ErrMalformed, len(p))
	}
	n := binary.BigEndian.Uint32(p[offUpdateLen:])
	if n == 0 || uint64(n) > uint64(len(p)-offUpdateBlocks) {
		return nil, fmt.Errorf("decode passport update: %w: %d-byte passport in a %d-byte plaintext", ErrMalformed, n, len(p))
	}
	end := offUpdateBlocks + int(n)
	for _, b := range p[end:] {
		if b != 0 {
			return nil, fmt.Errorf("decode passport update: %w: padding not zero", ErrMalformed)
		}
	}
	return p[offUpdateBlocks:end:end], nil
}

// isBucketPayload reports whether n is the plaintext size of a mail bucket.
func isBucketPayload(n int) bool {
	for _, b := range mail.BucketSizes() {
		if n == b-mail.SealOverhead {
			return true
		}
	}
	return false
}

// SealUpdate seals a passport update carrying blocks from the sender's
// passport key (its new one, after a rotation) to the recipient's current
// shared key.
func SealUpdate(rand io.Reader, sender noise.XKey, recipient keys.SharedKey, blocks []byte) ([]byte, error) {
	p, err := EncodeUpdate(blocks)
	if err != nil {
		return nil, err
	}
	sealed, err := sender.Seal(rand, recipient, p)
	if err != nil {
		return nil, fmt.Errorf("seal passport update: %w", err)
	}
	return sealed, nil
}
