// Package mail is the ASMTP mail payload format: what travels, sealed with
// Noise X, inside the content of a Topic message. A mail (RFC 5322 bytes) is
// given a random 128-bit message id, split into chunks that each fit one
// Topic message, and every chunk is padded so that its sealed size is one of
// a few buckets (BucketSizes). The receiver opens each chunk, checks that the
// Noise X sender is the contact the topic belongs to, and reassembles: the
// chunks wait in mailstore/reassembly (durably, for the bridge and the
// terminal client alike) until Join makes the message.
//
// The format is specified in asmtp/PROTOCOL.md ("Mail payload"). Payloads
// that do not start with Marker are upstream v0.1.0 raw text (UTF-8 typed in
// an editor, no header); they are read as one-chunk messages of
// KindLegacyText and can be presented as a text/plain mail (FormatLegacy).
//
// The package is shared by the bridge and the terminal client. It does no I/O
// and keeps no global state: randomness and time are passed in.
package mail

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/asmtp/asmtp/asmtp/keys"
)

// Payload layout (version 1). All integers are big-endian.
const (
	// Marker is the first byte of every payload in this format. 0xF8 never
	// occurs in valid UTF-8 and does not start a UTF-16 byte-order mark, so
	// upstream v0.1.0 raw text never starts with it.
	Marker byte = 0xF8
	// Version is the payload format version this package writes and reads.
	Version byte = 0x01

	// IDSize is the length of a message id.
	IDSize = 16

	offMarker   = 0
	offVersion  = 1
	offKind     = 2
	offID       = 3
	offIndex    = offID + IDSize // 19
	offCount    = offIndex + 2   // 21
	offTotal    = offCount + 2   // 23
	offDataLen  = offTotal + 4   // 27
	offData     = offDataLen + 2 // 29
	versionSize = offKind        // marker + version: enough to tell versions apart

	// HeaderSize is the length of the version 1 header before the data.
	HeaderSize = offData
)

// Capacity (PROTOCOL.md §7 and §12.3).
const (
	// MaxContentSize is the largest Topic content a frame can carry.
	MaxContentSize = 65484
	// SealOverhead is what Noise X adds to a payload: e (32), enc(s) (48),
	// tag (16).
	SealOverhead = 96
	// MaxPayloadSize is the largest payload (plaintext) one Topic message
	// can carry.
	MaxPayloadSize = MaxContentSize - SealOverhead // 65388
	// ChunkDataSize is the data carried by every chunk but the last.
	ChunkDataSize = MaxPayloadSize - HeaderSize // 65359

	// MaxMessageSize is the largest message (25 MiB).
	MaxMessageSize = 25 << 20
	// MaxChunks is the chunk count of a MaxMessageSize message.
	MaxChunks = (MaxMessageSize + ChunkDataSize - 1) / ChunkDataSize // 402
)

// Padding buckets: the only sizes of sealed Topic content this format
// produces. They grow by a factor of four, so padding costs at most 4x (on
// average about 2x) and a relay learns about two bits of a single-chunk
// message's size. 2 KiB holds short notes and receipts, 8 KiB a typical
// plain-text mail with its headers, 32 KiB most HTML mails; anything larger,
// and every chunk of a multi-chunk message, is BucketMax.
const (
	BucketSmall  = 2 << 10
	BucketMedium = 8 << 10
	BucketLarge  = 32 << 10
	BucketMax    = MaxContentSize
	// NumBuckets is the number of buckets.
	NumBuckets = 4
)

// BucketSizes returns the bucket sizes, smallest first.
func BucketSizes() [NumBuckets]int {
	return [NumBuckets]int{BucketSmall, BucketMedium, BucketLarge, BucketMax}
}

// Kind says what a message's data is.
type Kind uint8

const (
	// KindLegacyText is never on the wire: it marks an upstream v0.1.0
	// payload, raw text with no header. A version 1 header with kind 0 is
	// rejected.
	KindLegacyText Kind = 0x00
	// KindMail is an RFC 5322 message.
	KindMail Kind = 0x01
	// Kinds 0x02 to 0xFF are reserved (0x02 is meant for read receipts);
	// receivers reject them until a version of this format defines them.
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindLegacyText:
		return "legacy-text"
	case KindMail:
		return "mail"
	}
	return fmt.Sprintf("kind-0x%02x", uint8(k))
}

// MessageID identifies a message between one sender and one recipient.
type MessageID [IDSize]byte

// String is the lowercase hex form.
func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// Errors of the payload codec. Callers test them with errors.Is; the
// returned errors carry more context.
var (
	// ErrLegacy means the payload is not in this format: it is upstream
	// v0.1.0 raw text (see Open, which turns it into a KindLegacyText chunk).
	ErrLegacy = errors.New("mail: legacy raw-text payload")
	// ErrVersion means the payload has Marker but a version this package
	// does not know.
	ErrVersion = errors.New("mail: unsupported payload version")
	// ErrKind means the kind is 0 or reserved.
	ErrKind = errors.New("mail: unknown message kind")
	// ErrMalformed means the payload or chunk is inconsistent: wrong size,
	// count, index, lengths or padding.
	ErrMalformed = errors.New("mail: malformed payload")
)

// Chunk is one decoded payload: a piece of a message. The bridge can
// persist these fields as they are and rebuild the message with Join.
type Chunk struct {
	// Sender is the Noise X static key the chunk was sealed with; Open sets
	// it (after checking it). It is not part of the payload.
	Sender keys.SharedKey
	// ID is the message id, the same in every chunk of a message.
	ID MessageID
	// Kind is the message kind, the same in every chunk of a message.
	Kind Kind
	// Index is the position of the chunk, 0 ≤ Index < Count.
	Index uint16
	// Count is the number of chunks of the message, 1 ≤ Count ≤ MaxChunks.
	Count uint16
	// Total is the length of the whole message, ≤ MaxMessageSize.
	Total uint32
	// Data is the piece of the message at offset Index × ChunkDataSize.
	Data []byte
}

// ChunkCount is the number of chunks a message of n bytes is split into
// (at least one, also for an empty message).
func ChunkCount(n int) int {
	if n <= ChunkDataSize {
		return 1
	}
	return (n + ChunkDataSize - 1) / ChunkDataSize
}

// chunkDataLen is the data length chunk index of a total-byte message
// carries; index < count = ChunkCount(total) is assumed.
func chunkDataLen(index, count int, total int) int {
	if index < count-1 {
		return ChunkDataSize
	}
	return total - (count-1)*ChunkDataSize
}

// Validate checks that the chunk's fields are consistent with each other
// and with the limits of the format.
func (c Chunk) Validate() error {
	if c.Kind != KindMail && c.Kind != KindLegacyText {
		return fmt.Errorf("chunk %s: %w: %s", c.ID, ErrKind, c.Kind)
	}
	if c.Total > MaxMessageSize {
		return fmt.Errorf("chunk %s: %w: total length %d exceeds %d", c.ID, ErrMalformed, c.Total, MaxMessageSize)
	}
	if c.Kind == KindLegacyText {
		return c.validateLegacy()
	}
	if c.Count == 0 || c.Count > MaxChunks {
		return fmt.Errorf("chunk %s: %w: count %d not in [1, %d]", c.ID, ErrMalformed, c.Count, MaxChunks)
	}
	if c.Index >= c.Count {
		return fmt.Errorf("chunk %s: %w: index %d not below count %d", c.ID, ErrMalformed, c.Index, c.Count)
	}
	if want := ChunkCount(int(c.Total)); int(c.Count) != want {
		return fmt.Errorf("chunk %s: %w: count %d, but a %d-byte message has %d chunks", c.ID, ErrMalformed, c.Count, c.Total, want)
	}
	if want := chunkDataLen(int(c.Index), int(c.Count), int(c.Total)); len(c.Data) != want {
		return fmt.Errorf("chunk %s: %w: chunk %d/%d has %d data bytes, want %d", c.ID, ErrMalformed, c.Index, c.Count, len(c.Data), want)
	}
	return nil
}

// validateLegacy checks a KindLegacyText chunk: one chunk, the whole text,
// at most what one Topic message can carry.
func (c Chunk) validateLegacy() error {
	if c.Index != 0 || c.Count != 1 {
		return fmt.Errorf("legacy chunk %s: %w: index %d count %d, want 0 and 1", c.ID, ErrMalformed, c.Index, c.Count)
	}
	if len(c.Data) != int(c.Total) || len(c.Data) > MaxPayloadSize {
		return fmt.Errorf("legacy chunk %s: %w: %d data bytes, total %d", c.ID, ErrMalformed, len(c.Data), c.Total)
	}
	return nil
}

// payloadSize is the plaintext size of a bucket.
func payloadSize(bucket int) int { return bucket - SealOverhead }

// isPayloadSize reports whether n is the plaintext size of a bucket.
func isPayloadSize(n int) bool {
	for _, b := range BucketSizes() {
		if n == payloadSize(b) {
			return true
		}
	}
	return false
}

// paddedSize is the payload size a chunk is padded to: the smallest bucket
// that fits a single-chunk message, the largest for every chunk of a
// multi-chunk message (so that the last chunk does not give its size away).
func paddedSize(c Chunk) int {
	if c.Count > 1 {
		return MaxPayloadSize
	}
	n := HeaderSize + len(c.Data)
	for _, b := range BucketSizes() {
		if n <= payloadSize(b) {
			return payloadSize(b)
		}
	}
	return MaxPayloadSize // unreachable for a valid chunk: HeaderSize+len(Data) ≤ MaxPayloadSize
}

// EncodePayload encodes a valid KindMail chunk as a padded version 1
// payload, ready to be sealed.
func EncodePayload(c Chunk) ([]byte, error) {
	if c.Kind == KindLegacyText {
		return nil, fmt.Errorf("encode chunk %s: %w: legacy text is never written", c.ID, ErrKind)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	p := make([]byte, paddedSize(c)) // zero padding
	p[offMarker] = Marker
	p[offVersion] = Version
	p[offKind] = byte(c.Kind)
	copy(p[offID:offIndex], c.ID[:])
	binary.BigEndian.PutUint16(p[offIndex:], c.Index)
	binary.BigEndian.PutUint16(p[offCount:], c.Count)
	binary.BigEndian.PutUint32(p[offTotal:], c.Total)
	binary.BigEndian.PutUint16(p[offDataLen:], uint16(len(c.Data)))
	copy(p[offData:], c.Data)
	return p, nil
}

// IsLegacy reports whether a payload is upstream v0.1.0 raw text rather than
// this format: it is empty or does not start with Marker.
func IsLegacy(p []byte) bool { return len(p) == 0 || p[offMarker] != Marker }

// DecodePayload decodes and checks a version 1 payload. It returns ErrLegacy
// for raw text (see IsLegacy). Data aliases p. Sender is left zero.
func DecodePayload(p []byte) (Chunk, error) {
	var c Chunk
	if IsLegacy(p) {
		return c, ErrLegacy
	}
	if len(p) < versionSize {
		return c, fmt.Errorf("decode payload: %w: %d bytes", ErrMalformed, len(p))
	}
	if p[offVersion] != Version {
		return c, fmt.Errorf("decode payload: %w: %d", ErrVersion, p[offVersion])
	}
	if !isPayloadSize(len(p)) {
		return c, fmt.Errorf("decode payload: %w: %d bytes is not a bucket size", ErrMalformed, len(p))
	}
	c.Kind = Kind(p[offKind])
	if c.Kind != KindMail {
		return c, fmt.Errorf("decode payload: %w: %s", ErrKind, c.Kind)
	}
	copy(c.ID[:], p[offID:offIndex])
	c.Index = binary.BigEndian.Uint16(p[offIndex:])
	c.Count = binary.BigEndian.Uint16(p[offCount:])
	c.Total = binary.BigEndian.Uint32(p[offTotal:])
	dataLen := int(binary.BigEndian.Uint16(p[offDataLen:]))
	if dataLen > len(p)-HeaderSize {
		return c, fmt.Errorf("decode payload %s: %w: data length %d exceeds the %d-byte payload", c.ID, ErrMalformed, dataLen, len(p))
	}
	c.Data = p[offData : offData+dataLen]
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("decode payload: %w", err)
	}
	if c.Count > 1 && len(p) != MaxPayloadSize {
		return c, fmt.Errorf("decode payload %s: %w: chunk of a %d-chunk message is %d bytes, want %d", c.ID, ErrMalformed, c.Count, len(p), MaxPayloadSize)
	}
	for i, b := range p[offData+dataLen:] {
		if b != 0 {
			return c, fmt.Errorf("decode payload %s: %w: padding byte %d is 0x%02x", c.ID, ErrMalformed, offData+dataLen+i, b)
		}
	}
	return c, nil
}
