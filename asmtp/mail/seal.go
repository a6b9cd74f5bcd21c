package mail

import (
	"errors"
	"fmt"
	"io"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/noise"
	"golang.org/x/crypto/blake2b"
)

// ErrWrongSender means a payload opened but was sealed by another key than
// the contact the topic belongs to (PROTOCOL.md §12.8). Callers
// drop the content and log it.
var ErrWrongSender = errors.New("mail: sender is not the topic's contact")

// NewMessageID draws a random message id from rand (crypto/rand.Reader in
// production). A sender keeps the id of a message it retries, so that the
// recipient ignores the copies.
func NewMessageID(rand io.Reader) (MessageID, error) {
	var id MessageID
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return id, fmt.Errorf("new message id: %w", err)
	}
	return id, nil
}

// Split cuts msg into the chunks of message id. The chunks' Data alias msg.
func Split(id MessageID, kind Kind, msg []byte) ([]Chunk, error) {
	if kind != KindMail {
		return nil, fmt.Errorf("split %s: %w: %s", id, ErrKind, kind)
	}
	if len(msg) > MaxMessageSize {
		return nil, fmt.Errorf("split %s: %w: %d-byte message exceeds %d", id, ErrMalformed, len(msg), MaxMessageSize)
	}
	count := ChunkCount(len(msg))
	chunks := make([]Chunk, count)
	for i := range chunks {
		start := i * ChunkDataSize
		end := start + chunkDataLen(i, count, len(msg))
		chunks[i] = Chunk{
			ID:    id,
			Kind:  kind,
			Index: uint16(i),
			Count: uint16(count),
			Total: uint32(len(msg)),
			Data:  msg[start:end],
		}
	}
	return chunks, nil
}

// SealChunk encodes and pads c and seals it from sender to recipient. The
// result is a Topic content of one of the BucketSizes.
func SealChunk(rand io.Reader, sender keys.SharedSecret, recipient keys.SharedKey, c Chunk) ([]byte, error) {
	p, err := EncodePayload(c)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	sealed, err := noise.Seal(rand, sender, recipient, p)
	if err != nil {
		return nil, fmt.Errorf("seal chunk %d/%d of %s: %w", c.Index, c.Count, c.ID, err)
	}
	return sealed, nil
}

// Seal splits the RFC 5322 message msg into chunks of message id and seals
// each from sender to recipient. The results are Topic contents, in chunk
// order, each at most MaxContentSize bytes and of one of the BucketSizes.
func Seal(rand io.Reader, sender keys.SharedSecret, recipient keys.SharedKey, id MessageID, msg []byte) ([][]byte, error) {
	chunks, err := Split(id, KindMail, msg)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	contents := make([][]byte, len(chunks))
	for i, c := range chunks {
		if contents[i], err = SealChunk(rand, sender, recipient, c); err != nil {
			return nil, err
		}
	}
	return contents, nil
}

// Open opens one Topic content with the recipient's shared secret, checks
// that it was sealed by expectedSender (else ErrWrongSender) and decodes the
// payload. An upstream v0.1.0 raw-text payload becomes a one-chunk
// KindLegacyText chunk whose id is LegacyID(content). The chunk's Sender is
// set; its Data is freshly allocated.
func Open(recipientSecret keys.SharedSecret, expectedSender keys.SharedKey, content []byte) (Chunk, error) {
	if len(content) > MaxContentSize {
		return Chunk{}, fmt.Errorf("open: %w: %d-byte content exceeds %d", ErrMalformed, len(content), MaxContentSize)
	}
	sender, p, err := noise.Open(recipientSecret, content)
	if err != nil {
		return Chunk{}, fmt.Errorf("open: %w", err)
	}
	if sender != expectedSender {
		return Chunk{}, fmt.Errorf("open: %w: sealed by %s, topic belongs to %s", ErrWrongSender, sender, expectedSender)
	}
	if IsLegacy(p) {
		return Chunk{
			Sender: sender,
			ID:     LegacyID(content),
			Kind:   KindLegacyText,
			Index:  0,
			Count:  1,
			Total:  uint32(len(p)), // ≤ MaxPayloadSize, checked above
			Data:   p,
		}, nil
	}
	c, err := DecodePayload(p)
	if err != nil {
		return Chunk{}, fmt.Errorf("open: %w", err)
	}
	c.Sender = sender
	return c, nil
}

// LegacyID is the message id given to an upstream v0.1.0 payload, which has
// none: BLAKE2b-128 of the sealed content (as upstream's local MessageId
// hashes it). A replayed content gets the same id; the same text sent twice
// does not, since every seal uses a fresh ephemeral key.
func LegacyID(content []byte) MessageID {
	var id MessageID
	h, err := blake2b.New(IDSize, nil)
	if err != nil {
		panic("mail: blake2b rejected a 16-byte digest size: " + err.Error()) // sizes are constants
	}
	h.Write(content)
	copy(id[:], h.Sum(nil))
	return id
}
