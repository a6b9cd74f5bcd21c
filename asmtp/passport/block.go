package passport

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/asmtp/asmtp/asmtp/keys"
)

// Block layout constants.
const (
	// HeaderSize: version 2 ‖ content_size 2 ‖ time 4 ‖ content_hash 16 ‖
	// previous 16 ‖ author 32 ‖ signature 64.
	HeaderSize = 2 + 2 + 4 + HashSize + HashSize + keys.PublicKeySize + ed25519.SignatureSize
	// headerSignedSize is the prefix of the header the author signs.
	headerSignedSize = HeaderSize - ed25519.SignatureSize
	// MaxContentSize is the largest content (content_size is a u16).
	MaxContentSize = math.MaxUint16
	// MaxBlockSize is HeaderSize + MaxContentSize.
	MaxBlockSize = HeaderSize + MaxContentSize
	// CurrentVersion is the only block version keynesis writes (and the only
	// one we accept).
	CurrentVersion = 0
)

// Header is a parsed block header.
type Header struct {
	Version     uint16
	ContentSize uint16
	Time        Time
	ContentHash Hash
	// Previous is the parent block id; zero for the genesis block.
	Previous  Hash
	Author    keys.PublicKey
	Signature [ed25519.SignatureSize]byte
}

// Block is a parsed, fully checked passport block. It is immutable: do not
// modify what its accessors return.
type Block struct {
	raw     []byte
	id      Hash
	header  Header
	entries []Entry
}

// ID is the block id: BLAKE2b-128 of the 136 header bytes.
func (b *Block) ID() Hash { return b.id }

// Header returns the parsed header.
func (b *Block) Header() Header { return b.header }

// Entries returns the parsed entries, in order.
func (b *Block) Entries() []Entry { return b.entries }

// Bytes returns a copy of the block's wire bytes.
func (b *Block) Bytes() []byte { return bytes.Clone(b.raw) }

// Len is the length of the block's wire bytes.
func (b *Block) Len() int { return len(b.raw) }

// ParseBlock parses and checks one block: exact length, version
// (CurrentVersion only; upstream accepts any non-forbidden version, and none
// is forbidden), content_size, content_hash, the author's signature over
// header bytes [0..72), and every entry (see parseEntries: SetSharedKey with
// no recipient, unknown types and RegisterMasterKey with a bad signature,
// a bad timeout or a non-canonical alias are rejected). It never panics.
// Ledger rules are checked by Genesis and (*Ledger).Apply.
func ParseBlock(b []byte) (*Block, error) {
	if len(b) < HeaderSize || len(b) > MaxBlockSize {
		return nil, fmt.Errorf("block: %d bytes, want %d to %d: %w", len(b), HeaderSize, MaxBlockSize, ErrMalformed)
	}
	h := parseHeader(b[:HeaderSize])
	if h.Version != CurrentVersion {
		return nil, fmt.Errorf("block: version %d, want %d: %w", h.Version, CurrentVersion, ErrMalformed)
	}
	content := b[HeaderSize:]
	if int(h.ContentSize) != len(content) {
		return nil, fmt.Errorf("block: content_size %d but %d content bytes: %w", h.ContentSize, len(content), ErrMalformed)
	}
	if HashOf(content) != h.ContentHash {
		return nil, fmt.Errorf("block: %w", ErrContentHash)
	}
	if !ed25519.Verify(h.Author[:], b[:headerSignedSize], h.Signature[:]) {
		return nil, fmt.Errorf("block by %s: %w", h.Author, ErrBadSignature)
	}
	entries, err := parseEntries(content)
	if err != nil {
		return nil, fmt.Errorf("block: %w", err)
	}
	raw := bytes.Clone(b)
	return &Block{raw: raw, id: HashOf(raw[:HeaderSize]), header: h, entries: entries}, nil
}

func parseHeader(b []byte) Header {
	var h Header
	h.Version = binary.BigEndian.Uint16(b[0:])
	h.ContentSize = binary.BigEndian.Uint16(b[2:])
	h.Time = Time(binary.BigEndian.Uint32(b[4:]))
	off := 8
	copy(h.ContentHash[:], b[off:])
	off += HashSize
	copy(h.Previous[:], b[off:])
	off += HashSize
	copy(h.Author[:], b[off:])
	off += keys.PublicKeySize
	copy(h.Signature[:], b[off:])
	return h
}

// signBlock encodes entries, builds and signs the header, and returns the
// block as ParseBlock sees it.
func signBlock(t Time, previous Hash, entries []Entry, author ed25519.PrivateKey) (*Block, error) {
	if len(author) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign block: private key is %d bytes, want %d", len(author), ed25519.PrivateKeySize)
	}
	raw := make([]byte, HeaderSize, HeaderSize+256)
	for _, e := range entries {
		if s, ok := e.(SetSharedKey); ok && (len(s.Recipients) == 0 || len(s.Recipients) > MaxRecipients) {
			return nil, fmt.Errorf("sign block: set shared key with %d recipients, want 1 to %d", len(s.Recipients), MaxRecipients)
		}
		raw = appendEntry(raw, e)
	}
	content := raw[HeaderSize:]
	if len(content) > MaxContentSize {
		return nil, fmt.Errorf("sign block: content is %d bytes, at most %d", len(content), MaxContentSize)
	}
	binary.BigEndian.PutUint16(raw[0:], CurrentVersion)
	binary.BigEndian.PutUint16(raw[2:], uint16(len(content)))
	binary.BigEndian.PutUint32(raw[4:], uint32(t))
	ch := HashOf(content)
	off := 8
	off += copy(raw[off:], ch[:])
	off += copy(raw[off:], previous[:])
	pub := keys.Public(author)
	off += copy(raw[off:], pub[:])
	copy(raw[off:], ed25519.Sign(author, raw[:headerSignedSize]))
	b, err := ParseBlock(raw)
	if err != nil {
		return nil, fmt.Errorf("sign block: %w", err)
	}
	return b, nil
}
