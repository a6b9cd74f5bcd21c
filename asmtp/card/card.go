// Package card is the naming-v2 contact card (asmtp/PROTOCOL.md §16.5): what
// an account sends a new contact so that the contact can reach it without
// any topic in gossip naming either of them. A card carries the sender's
// passport id, its secret inbox seed, the id and address of its node and the
// naming scheme it speaks. It travels sealed with the v1 mail seal (Noise X,
// P.7) to the recipient's passport key, first to the recipient's intro
// bucket and then, as the answer, straight to the sender's inbox.
//
// Every sealed card is exactly SealedSize bytes, so that a bucket member
// tries to open only contents of that size, and the plaintext is a mail
// payload of its own kind (PROTOCOL.md §12.6, kind 0x03): a receiver that
// reads an inbox tells a card from a mail chunk by its first three bytes.
//
// The package does no I/O and keeps no state; randomness and time are passed
// in.
package card

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/noise"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// Sizes (PROTOCOL.md §16.5).
const (
	// SealedSize is the size of every sealed card: the Topic content a
	// relay sees. It is below the smallest mail bucket (2 KiB), so a card
	// costs a bucket half what the smallest mail would.
	SealedSize = 1024
	// PayloadSize is the plaintext inside: SealedSize less the Noise X
	// overhead.
	PayloadSize = SealedSize - noise.SealOverhead // 928
	// MaxAddrLen bounds the node address, in bytes.
	MaxAddrLen = 255
)

// Header bytes shared with the mail payload format (§12.4): marker, payload
// version, kind.
const (
	marker         byte = 0xF8
	payloadVersion byte = 0x01
	// Kind is the mail payload kind of a contact card (§12.6).
	Kind byte = 0x03
)

// SchemeV2 is the naming scheme this package's cards announce: inbox topics
// and intro buckets (§16). A node or contact that sends no card speaks v1.
const SchemeV2 = 2

// Flag bits.
const (
	// flagAnswer marks a card sent in answer to another one; its receiver
	// must not answer it again, or two accounts would answer each other
	// forever.
	flagAnswer byte = 1 << 0
	knownFlags      = flagAnswer
)

// Field offsets of the plaintext.
const (
	offScheme   = 3
	offFlags    = 4
	offIssued   = 5
	offPassport = offIssued + 8                   // 13
	offSeed     = offPassport + passport.HashSize // 29
	offNode     = offSeed + topic.InboxSeedSize   // 61
	offAddrLen  = offNode + keys.PublicKeySize    // 93
	offAddr     = offAddrLen + 1                  // 94
	maxEnd      = offAddr + MaxAddrLen            // 349, well within PayloadSize
	_           = uint(PayloadSize - maxEnd)      // compile-time: the largest card fits
)

// Errors. Decode and Open wrap one of them.
var (
	// ErrNotCard means the plaintext is not a contact card (another payload
	// kind, or not this payload format).
	ErrNotCard = errors.New("card: not a contact card")
	// ErrScheme means the card announces a naming scheme this package does
	// not speak.
	ErrScheme = errors.New("card: unknown naming scheme")
	// ErrMalformed means the card breaks the layout's rules.
	ErrMalformed = errors.New("card: malformed")
	// ErrWrongSender means the card opened but was not sealed by the
	// current shared key of the passport it names.
	ErrWrongSender = errors.New("card: not sealed by the passport it names")
)

// Card is what one account tells a contact about itself.
type Card struct {
	Scheme   uint8           // naming scheme spoken, SchemeV2
	Answer   bool            // sent in answer to the recipient's card
	Issued   time.Time       // when the card was made; a receiver keeps the newest
	Passport passport.Hash   // the sender's passport id
	Seed     topic.InboxSeed // the sender's inbox seed
	Node     keys.PublicKey  // the id of the sender's node
	Addr     string          // where the sender's node listens, "host:port"
}

// IsCard reports whether the plaintext p of an opened content is a contact
// card rather than a mail chunk.
func IsCard(p []byte) bool {
	return len(p) > offScheme && p[0] == marker && p[1] == payloadVersion && p[2] == Kind
}

// checkAddr accepts "host:port" of printable ASCII, at most MaxAddrLen
// bytes.
func checkAddr(addr string) error {
	if len(addr) > MaxAddrLen {
		return fmt.Errorf("%w: %d-byte node address, maximum %d", ErrMalformed, len(addr), MaxAddrLen)
	}
	for _, c := range []byte(addr) {
		if c <= 0x20 || c > 0x7e {
			return fmt.Errorf("%w: node address %q has a control, space or non-ASCII byte", ErrMalformed, addr)
		}
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%w: node address %q: %v", ErrMalformed, addr, err)
	}
	return nil
}

// Encode returns the card's plaintext, PayloadSize bytes.
func (c Card) Encode() ([]byte, error) {
	if c.Scheme != SchemeV2 {
		return nil, fmt.Errorf("encode card: %w: %d", ErrScheme, c.Scheme)
	}
	if err := checkAddr(c.Addr); err != nil {
		return nil, fmt.Errorf("encode card: %w", err)
	}
	if c.Issued.Unix() < 0 {
		return nil, fmt.Errorf("encode card: %w: issued before 1970", ErrMalformed)
	}
	p := make([]byte, PayloadSize)
	p[0], p[1], p[2] = marker, payloadVersion, Kind
	p[offScheme] = c.Scheme
	if c.Answer {
		p[offFlags] = flagAnswer
	}
	binary.BigEndian.PutUint64(p[offIssued:], uint64(c.Issued.Unix()))
	copy(p[offPassport:], c.Passport[:])
	copy(p[offSeed:], c.Seed[:])
	copy(p[offNode:], c.Node[:])
	p[offAddrLen] = byte(len(c.Addr))
	copy(p[offAddr:], c.Addr)
	return p, nil
}

// Decode parses a card's plaintext. It accepts exactly what Encode makes:
// PayloadSize bytes, known flags, a valid address and zero padding.
func Decode(p []byte) (Card, error) {
	if !IsCard(p) {
		return Card{}, ErrNotCard
	}
	if len(p) != PayloadSize {
		return Card{}, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(p), PayloadSize)
	}
	if p[offScheme] != SchemeV2 {
		return Card{}, fmt.Errorf("%w: %d", ErrScheme, p[offScheme])
	}
	if p[offFlags]&^knownFlags != 0 {
		return Card{}, fmt.Errorf("%w: unknown flags %#02x", ErrMalformed, p[offFlags])
	}
	issued := binary.BigEndian.Uint64(p[offIssued:])
	if issued > 1<<62 {
		return Card{}, fmt.Errorf("%w: issued time %d out of range", ErrMalformed, issued)
	}
	end := offAddr + int(p[offAddrLen])
	for _, b := range p[end:] {
		if b != 0 {
			return Card{}, fmt.Errorf("%w: non-zero padding", ErrMalformed)
		}
	}
	c := Card{
		Scheme: p[offScheme],
		Answer: p[offFlags]&flagAnswer != 0,
		Issued: time.Unix(int64(issued), 0).UTC(),
		Addr:   string(p[offAddr:end]),
	}
	copy(c.Passport[:], p[offPassport:])
	copy(c.Seed[:], p[offSeed:])
	copy(c.Node[:], p[offNode:])
	if err := checkAddr(c.Addr); err != nil {
		return Card{}, err
	}
	return c, nil
}

// Seal encodes c and seals it from the sender's passport key to the
// recipient's current passport shared key. rand supplies the ephemeral key
// (nil means crypto/rand). The result is SealedSize bytes.
func Seal(rand io.Reader, sender noise.XKey, recipient keys.SharedKey, c Card) ([]byte, error) {
	p, err := c.Encode()
	if err != nil {
		return nil, err
	}
	sealed, err := sender.Seal(rand, recipient, p)
	if err != nil {
		return nil, fmt.Errorf("seal card: %w", err)
	}
	return sealed, nil
}

// Open opens a sealed card with the recipient's passport key and returns it
// with the Noise X key that sealed it. The caller must then Verify the
// sender against the passport the card names. A content of another size is
// refused before any X25519, so a bucket member trying every content of a
// busy bucket spends the 50 µs of an open only on card-sized ones.
func Open(recipient noise.XKey, sealed []byte) (Card, keys.SharedKey, error) {
	if len(sealed) != SealedSize {
		return Card{}, keys.SharedKey{}, fmt.Errorf("open card: %w: %d-byte content, cards are %d", ErrNotCard, len(sealed), SealedSize)
	}
	sender, p, err := recipient.Open(sealed)
	if err != nil {
		return Card{}, keys.SharedKey{}, fmt.Errorf("open card: %w", err)
	}
	c, err := Decode(p)
	if err != nil {
		return Card{}, keys.SharedKey{}, fmt.Errorf("open card: %w", err)
	}
	return c, sender, nil
}

// Verify checks that the card was sealed by the current shared key of the
// passport it names: the card's only authentication. p is that passport as
// looked up by the receiver (by c.Passport).
func Verify(c Card, sender keys.SharedKey, p *passport.Passport) error {
	if p == nil || p.ID() != c.Passport {
		return fmt.Errorf("verify card: %w: passport %s not the one named", ErrWrongSender, c.Passport)
	}
	key, ok := p.SharedKey()
	if !ok || key != sender {
		return fmt.Errorf("verify card from %s: %w", c.Passport, ErrWrongSender)
	}
	return nil
}
