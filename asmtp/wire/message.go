package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// Type is the first byte of a message.
type Type uint8

// The message types (§8). 0 and 8–255 are invalid.
const (
	TypeGossip             Type = 1
	TypeTopic              Type = 2
	TypePutPassport        Type = 3
	TypeGetPassport        Type = 4
	TypeRegisterTopic      Type = 5
	TypeDeregisterTopic    Type = 6
	TypeQueryTopicMessages Type = 7
)

func (t Type) String() string {
	switch t {
	case TypeGossip:
		return "Gossip"
	case TypeTopic:
		return "Topic"
	case TypePutPassport:
		return "PutPassport"
	case TypeGetPassport:
		return "GetPassport"
	case TypeRegisterTopic:
		return "RegisterTopic"
	case TypeDeregisterTopic:
		return "DeregisterTopic"
	case TypeQueryTopicMessages:
		return "QueryTopicMessages"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

const (
	// TypeSize is the size of the type byte that starts every message.
	TypeSize = 1
	// TimeSize is the size of a time: u32 seconds since 2020-01-01 UTC.
	TimeSize = 4
	// LengthSize is the size of the u32 length before each passport block.
	LengthSize = 4
	// BlockHeaderSize is the size of a passport block header, the least a
	// block can be (§10.1).
	BlockHeaderSize = 136

	// MinMessageSize is the smallest valid message, a GetPassport (§8).
	MinMessageSize = TypeSize + passport.HashSize // 17
	// MaxMessageSize is the largest message a frame carries.
	MaxMessageSize = MaxFramePlaintext // 65517
	// MaxTopicContent is the most content a Topic message carries.
	MaxTopicContent = MaxMessageSize - TypeSize - topic.Size // 65484
	// MaxPassportBlocks is the most PassportBlocks bytes a PutPassport carries.
	MaxPassportBlocks = MaxMessageSize - TypeSize - passport.HashSize // 65500

	getPassportSize        = TypeSize + passport.HashSize         // 17
	registerTopicSize      = TypeSize + topic.Size                // 33
	queryTopicMessagesSize = TypeSize + topic.Size + TimeSize     // 37
	minTopicSize           = TypeSize + topic.Size                // 33
	minGossipSize          = TypeSize + gossip.MinSizeIPv4        // 109
	maxGossipSize          = TypeSize + gossip.MaxSize            // 33880
	_                      = uint(MaxMessageSize - maxGossipSize) // a gossip always fits
)

// Message is one of Gossip, Topic, PutPassport, GetPassport, RegisterTopic,
// DeregisterTopic and QueryTopicMessages. Decode returns these value types;
// Encode also accepts pointers to them.
type Message interface{ Type() Type }

// Gossip carries a node's signed profile (§9).
type Gossip struct{ Gossip gossip.Gossip }

// Topic publishes content on a topic; the content is opaque to nodes (a
// Noise X sealed message for thread topics, a passport block for passport
// topics).
type Topic struct {
	Topic   topic.Topic
	Content []byte
}

// PutPassport uploads, or answers a GetPassport with, a passport's blocks.
// Blocks is PassportBlocks: (u32 BE length ‖ block)*. The codec checks that
// framing and that each block is at least BlockHeaderSize bytes; validating
// the blocks themselves is the passport package's job.
type PutPassport struct {
	ID     passport.Hash
	Blocks []byte
}

// GetPassport asks for a passport's blocks.
type GetPassport struct{ ID passport.Hash }

// RegisterTopic asks the node to keep and forward a topic's messages.
type RegisterTopic struct{ Topic topic.Topic }

// DeregisterTopic undoes RegisterTopic.
type DeregisterTopic struct{ Topic topic.Topic }

// QueryTopicMessages asks for the stored messages of a topic received at or
// after Since.
type QueryTopicMessages struct {
	Topic topic.Topic
	Since uint32 // seconds since 2020-01-01 UTC (gossip.Epoch)
}

func (Gossip) Type() Type             { return TypeGossip }
func (Topic) Type() Type              { return TypeTopic }
func (PutPassport) Type() Type        { return TypePutPassport }
func (GetPassport) Type() Type        { return TypeGetPassport }
func (RegisterTopic) Type() Type      { return TypeRegisterTopic }
func (DeregisterTopic) Type() Type    { return TypeDeregisterTopic }
func (QueryTopicMessages) Type() Type { return TypeQueryTopicMessages }

// Encode returns the bytes of m: type byte ‖ body. It refuses what Decode
// would refuse: a gossip that does not verify, content or blocks that do
// not fit a frame, blocks whose framing is wrong.
func Encode(m Message) ([]byte, error) {
	return AppendMessage(nil, m)
}

// AppendMessage appends the bytes of m to dst; see Encode. It checks sizes
// before appending, so dst with MaxMessageSize free capacity never grows.
func AppendMessage(dst []byte, m Message) ([]byte, error) {
	switch m := deref(m).(type) {
	case Gossip:
		if err := m.Gossip.Verify(); err != nil {
			return nil, fmt.Errorf("encode Gossip: %w", err)
		}
		return m.Gossip.Append(append(dst, byte(TypeGossip))), nil
	case Topic:
		if len(m.Content) > MaxTopicContent {
			return nil, fmt.Errorf("encode Topic: %d bytes of content, maximum %d", len(m.Content), MaxTopicContent)
		}
		dst = append(dst, byte(TypeTopic))
		dst = append(dst, m.Topic[:]...)
		return append(dst, m.Content...), nil
	case PutPassport:
		if len(m.Blocks) > MaxPassportBlocks {
			return nil, fmt.Errorf("encode PutPassport: %d bytes of blocks, maximum %d", len(m.Blocks), MaxPassportBlocks)
		}
		if err := checkBlocks(m.Blocks); err != nil {
			return nil, fmt.Errorf("encode PutPassport: %w", err)
		}
		dst = append(dst, byte(TypePutPassport))
		dst = append(dst, m.ID[:]...)
		return append(dst, m.Blocks...), nil
	case GetPassport:
		dst = append(dst, byte(TypeGetPassport))
		return append(dst, m.ID[:]...), nil
	case RegisterTopic:
		dst = append(dst, byte(TypeRegisterTopic))
		return append(dst, m.Topic[:]...), nil
	case DeregisterTopic:
		dst = append(dst, byte(TypeDeregisterTopic))
		return append(dst, m.Topic[:]...), nil
	case QueryTopicMessages:
		dst = append(dst, byte(TypeQueryTopicMessages))
		dst = append(dst, m.Topic[:]...)
		return binary.BigEndian.AppendUint32(dst, m.Since), nil
	case nil:
		return nil, errors.New("encode: nil message")
	default:
		return nil, fmt.Errorf("encode: unknown message type %T", m)
	}
}

// deref turns a pointer to a message into the message; a nil pointer into nil.
func deref(m Message) Message {
	switch p := m.(type) {
	case *Gossip:
		if p != nil {
			return *p
		}
	case *Topic:
		if p != nil {
			return *p
		}
	case *PutPassport:
		if p != nil {
			return *p
		}
	case *GetPassport:
		if p != nil {
			return *p
		}
	case *RegisterTopic:
		if p != nil {
			return *p
		}
	case *DeregisterTopic:
		if p != nil {
			return *p
		}
	case *QueryTopicMessages:
		if p != nil {
			return *p
		}
	default:
		return m
	}
	return nil
}

// Decode parses one message (a frame's plaintext). Every message must be
// at least MinMessageSize and at most MaxMessageSize bytes, and have the
// exact size its type implies (§8); a Gossip must verify. The result does
// not alias b.
func Decode(b []byte) (Message, error) {
	if len(b) < MinMessageSize {
		return nil, fmt.Errorf("decode message: %d bytes, minimum %d", len(b), MinMessageSize)
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("decode message: %d bytes, maximum %d", len(b), MaxMessageSize)
	}
	t, body := Type(b[0]), b[TypeSize:]
	switch t {
	case TypeGossip:
		if err := checkSize(t, b, minGossipSize, maxGossipSize); err != nil {
			return nil, err
		}
		g, err := gossip.Decode(body)
		if err != nil {
			return nil, fmt.Errorf("decode Gossip: %w", err)
		}
		return Gossip{Gossip: g}, nil
	case TypeTopic:
		if err := checkSize(t, b, minTopicSize, MaxMessageSize); err != nil {
			return nil, err
		}
		return Topic{Topic: topic.Topic(body), Content: bytes.Clone(body[topic.Size:])}, nil
	case TypePutPassport:
		blocks := body[passport.HashSize:]
		if err := checkBlocks(blocks); err != nil {
			return nil, fmt.Errorf("decode PutPassport: %w", err)
		}
		return PutPassport{ID: passport.Hash(body), Blocks: bytes.Clone(blocks)}, nil
	case TypeGetPassport:
		if err := checkSize(t, b, getPassportSize, getPassportSize); err != nil {
			return nil, err
		}
		return GetPassport{ID: passport.Hash(body)}, nil
	case TypeRegisterTopic:
		if err := checkSize(t, b, registerTopicSize, registerTopicSize); err != nil {
			return nil, err
		}
		return RegisterTopic{Topic: topic.Topic(body)}, nil
	case TypeDeregisterTopic:
		if err := checkSize(t, b, registerTopicSize, registerTopicSize); err != nil {
			return nil, err
		}
		return DeregisterTopic{Topic: topic.Topic(body)}, nil
	case TypeQueryTopicMessages:
		if err := checkSize(t, b, queryTopicMessagesSize, queryTopicMessagesSize); err != nil {
			return nil, err
		}
		return QueryTopicMessages{Topic: topic.Topic(body), Since: binary.BigEndian.Uint32(body[topic.Size:])}, nil
	}
	return nil, fmt.Errorf("decode message: invalid type %d", uint8(t))
}

// checkSize checks a whole message's size against its type's bounds.
func checkSize(t Type, b []byte, min, max int) error {
	switch {
	case min == max && len(b) != min:
		return fmt.Errorf("decode %v: %d bytes, want exactly %d", t, len(b), min)
	case len(b) < min:
		return fmt.Errorf("decode %v: %d bytes, minimum %d", t, len(b), min)
	case len(b) > max:
		return fmt.Errorf("decode %v: %d bytes, maximum %d", t, len(b), max)
	}
	return nil
}

// checkBlocks checks the PassportBlocks framing: at least one
// (u32 BE length ‖ block), each block at least BlockHeaderSize bytes, the
// last one ending exactly at the end of b.
func checkBlocks(b []byte) error {
	if len(b) == 0 {
		return errors.New("no passport blocks")
	}
	for i, off := 0, 0; off < len(b); i++ {
		if len(b)-off < LengthSize {
			return fmt.Errorf("block %d: %d bytes left, too few for its length", i, len(b)-off)
		}
		n := uint64(binary.BigEndian.Uint32(b[off:]))
		off += LengthSize
		if n < BlockHeaderSize {
			return fmt.Errorf("block %d: %d bytes, shorter than a %d-byte header", i, n, BlockHeaderSize)
		}
		if n > uint64(len(b)-off) {
			return fmt.Errorf("block %d: %d bytes, but only %d left", i, n, len(b)-off)
		}
		off += int(n)
	}
	return nil
}

// AnswerTopic is the reserved topic of answer markers: BLAKE2b-256 of
// "asmtp answer marker v1". No user topic is derived this way (a thread
// topic is a hash of two keys, a passport topic starts with 16 zero
// bytes), so no node subscribes to it.
var AnswerTopic = topic.Topic{
	0x2d, 0x6c, 0x90, 0x11, 0x62, 0x28, 0x7d, 0xfe, 0x39, 0x7f, 0xc5, 0x66, 0x5c, 0x94, 0xcf, 0x56,
	0xce, 0x44, 0x99, 0x43, 0xed, 0xac, 0x3e, 0x59, 0xe1, 0x79, 0xe1, 0x38, 0xe9, 0xa4, 0x76, 0x17,
}

// AnswerStatus says where an answer to a node's QueryTopicMessages is.
type AnswerStatus uint8

const (
	// AnswerBegins: the query was accepted; its messages follow.
	AnswerBegins AnswerStatus = 1
	// AnswerComplete: every message of the window was sent before it.
	AnswerComplete AnswerStatus = 2
	// AnswerRefused: the query was not answered (not allowed, or the
	// node is too busy); ask again later, or someone else.
	AnswerRefused AnswerStatus = 3
)

// answerMarkerSize is the content of a marker: topic ‖ since ‖ status.
const answerMarkerSize = topic.Size + TimeSize + 1

// AnswerMarker is sent by a node answering another node's
// QueryTopicMessages, on the same link, to say where the answer is. It
// travels as a Topic message on AnswerTopic, so a node that does not know
// markers drops it as a message on a topic it does not subscribe to
// (PROTOCOL.md §15.4).
type AnswerMarker struct {
	Query  QueryTopicMessages // the query answered, as it was received
	Status AnswerStatus
}

// Topic returns the Topic message that carries the marker.
func (a AnswerMarker) Topic() Topic {
	c := make([]byte, 0, answerMarkerSize)
	c = append(c, a.Query.Topic[:]...)
	c = binary.BigEndian.AppendUint32(c, a.Query.Since)
	return Topic{Topic: AnswerTopic, Content: append(c, byte(a.Status))}
}

// ParseAnswerMarker returns the marker m carries, if m is one.
func ParseAnswerMarker(m Topic) (AnswerMarker, bool) {
	if m.Topic != AnswerTopic || len(m.Content) != answerMarkerSize {
		return AnswerMarker{}, false
	}
	a := AnswerMarker{
		Query:  QueryTopicMessages{Topic: topic.Topic(m.Content), Since: binary.BigEndian.Uint32(m.Content[topic.Size:])},
		Status: AnswerStatus(m.Content[topic.Size+TimeSize]),
	}
	switch a.Status {
	case AnswerBegins, AnswerComplete, AnswerRefused:
		return a, true
	}
	return AnswerMarker{}, false
}
