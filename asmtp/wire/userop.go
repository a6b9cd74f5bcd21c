package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// UserOpTopic is the reserved topic of user operations: BLAKE2b-256 of
// "asmtp user op v2". A device linked to its own node (a local user) asks
// for the naming-v2 operations the seven message types have no room for
// with Topic messages on it, and the node answers the same way
// (PROTOCOL.md §16.11). A node that does not know them takes them for a
// publication on a topic nobody subscribes to, and drops it.
var UserOpTopic = topic.Topic{
	0xab, 0x96, 0xba, 0xb6, 0x23, 0x5d, 0x7f, 0x17, 0x66, 0x55, 0xc1, 0xa3, 0x38, 0xd2, 0x3d, 0x23,
	0x39, 0xef, 0xed, 0xf3, 0x66, 0xc7, 0x6f, 0x59, 0xc7, 0xd9, 0x68, 0x76, 0x6b, 0x55, 0xbe, 0xba,
}

// UserOpCode is the first content byte of a user operation.
type UserOpCode uint8

// The user operations; a node's answer has the request's code | 0x80.
const (
	// OpRegisterInbox: topic. Session.RegisterInbox.
	OpRegisterInbox UserOpCode = 1
	// OpPublishTo: topic ‖ node id ‖ address. The device's next Topic
	// messages on topic, on this link, are published with
	// Session.PublishTo for that node (a zero id: no node named), until
	// the next OpPublishTo for the topic.
	OpPublishTo UserOpCode = 2
	// OpCatchUp: topic ‖ since ‖ node id ‖ address. Session.CatchUp.
	OpCatchUp UserOpCode = 3
	// OpKeepPassport: passport id. The device's next PutPassport of that
	// id, on this link, is kept without a topic (Session.KeepPassport).
	OpKeepPassport UserOpCode = 4
	// OpPeerNaming: node id; answered with status 0 unknown, 1 v1, 2 v2.
	OpPeerNaming UserOpCode = 5
	// OpHolders: topic ‖ limit (u8); answered with the count (u8).
	OpHolders UserOpCode = 6
	// OpBucketBits: nothing; answered with the intro-bucket width (u8).
	OpBucketBits UserOpCode = 7

	// OpAnswer is or-ed into the code of an answer.
	OpAnswer UserOpCode = 0x80
)

// MaxUserOpAddr bounds the address of a user operation.
const MaxUserOpAddr = 255

// UserOp is one user operation or answer. The fields an operation does not
// carry are zero.
type UserOp struct {
	Code     UserOpCode
	Topic    topic.Topic
	Node     keys.PublicKey
	Addr     string // "host:port"
	Since    uint32 // CatchUp
	Passport passport.Hash
	Value    uint8 // Holders limit; the answers' status or count
}

// Layout, after the code byte:
//
//	RegisterInbox  topic
//	PublishTo      topic ‖ node ‖ addr (0 … 255 bytes)
//	CatchUp        topic ‖ since u32 ‖ node ‖ addr
//	KeepPassport   passport id
//	PeerNaming     node                answer: node ‖ status
//	Holders        topic ‖ limit       answer: topic ‖ count
//	BucketBits     (nothing)           answer: width

// Message returns the Topic message that carries op.
func (op UserOp) Message() (Topic, error) {
	if len(op.Addr) > MaxUserOpAddr {
		return Topic{}, fmt.Errorf("user op %d: address of %d bytes, maximum %d", op.Code, len(op.Addr), MaxUserOpAddr)
	}
	c := []byte{byte(op.Code)}
	switch op.Code &^ OpAnswer {
	case OpRegisterInbox:
		c = append(c, op.Topic[:]...)
	case OpPublishTo:
		c = append(append(append(c, op.Topic[:]...), op.Node[:]...), op.Addr...)
	case OpCatchUp:
		c = binary.BigEndian.AppendUint32(append(c, op.Topic[:]...), op.Since)
		c = append(append(c, op.Node[:]...), op.Addr...)
	case OpKeepPassport:
		c = append(c, op.Passport[:]...)
	case OpPeerNaming:
		c = append(c, op.Node[:]...)
		if op.Code&OpAnswer != 0 {
			c = append(c, op.Value)
		}
	case OpHolders:
		c = append(append(c, op.Topic[:]...), op.Value)
	case OpBucketBits:
		if op.Code&OpAnswer != 0 {
			c = append(c, op.Value)
		}
	default:
		return Topic{}, fmt.Errorf("user op: unknown code %d", op.Code)
	}
	return Topic{Topic: UserOpTopic, Content: c}, nil
}

// ParseUserOp returns the operation m carries; false if m is not on
// UserOpTopic, an error if it is but does not parse.
func ParseUserOp(m Topic) (UserOp, bool, error) {
	if m.Topic != UserOpTopic {
		return UserOp{}, false, nil
	}
	if len(m.Content) == 0 {
		return UserOp{}, true, fmt.Errorf("user op: empty")
	}
	op := UserOp{Code: UserOpCode(m.Content[0])}
	b := m.Content[1:]
	answer := op.Code&OpAnswer != 0
	var fixed int
	switch op.Code &^ OpAnswer {
	case OpRegisterInbox:
		fixed = copy(op.Topic[:], b)
	case OpPublishTo:
		fixed = copy(op.Topic[:], b)
		fixed += copy(op.Node[:], b[min(fixed, len(b)):])
	case OpCatchUp:
		fixed = copy(op.Topic[:], b)
		if len(b) >= fixed+TimeSize {
			op.Since = binary.BigEndian.Uint32(b[fixed:])
			fixed += TimeSize
		}
		fixed += copy(op.Node[:], b[min(fixed, len(b)):])
	case OpKeepPassport:
		fixed = copy(op.Passport[:], b)
	case OpPeerNaming:
		fixed = copy(op.Node[:], b)
	case OpHolders:
		fixed = copy(op.Topic[:], b)
		answer = true // its limit or count follows either way
	case OpBucketBits:
	default:
		return op, true, fmt.Errorf("user op: unknown code %d", op.Code)
	}
	return finishUserOp(op, b, fixed, answer)
}

// finishUserOp checks the length of an operation whose fixed fields took
// fixed bytes of b, and reads the value byte or address after them.
func finishUserOp(op UserOp, b []byte, fixed int, value bool) (UserOp, bool, error) {
	want := userOpFixed(op.Code)
	if fixed < want {
		return op, true, fmt.Errorf("user op %d: %d bytes, want at least %d", op.Code, len(b), want)
	}
	rest := b[fixed:]
	switch code := op.Code &^ OpAnswer; {
	case code == OpPublishTo || code == OpCatchUp:
		if len(rest) > MaxUserOpAddr {
			return op, true, fmt.Errorf("user op %d: address of %d bytes, maximum %d", op.Code, len(rest), MaxUserOpAddr)
		}
		op.Addr = string(rest)
		return op, true, nil
	case value:
		if len(rest) != 1 {
			return op, true, fmt.Errorf("user op %d: %d bytes, want %d", op.Code, len(b), fixed+1)
		}
		op.Value = rest[0]
		return op, true, nil
	}
	if len(rest) != 0 {
		return op, true, fmt.Errorf("user op %d: %d bytes, want %d", op.Code, len(b), fixed)
	}
	return op, true, nil
}

// userOpFixed is the size of an operation's fixed fields, code excluded.
func userOpFixed(code UserOpCode) int {
	switch code &^ OpAnswer {
	case OpRegisterInbox, OpHolders:
		return topic.Size
	case OpPublishTo:
		return topic.Size + keys.PublicKeySize
	case OpCatchUp:
		return topic.Size + TimeSize + keys.PublicKeySize
	case OpKeepPassport:
		return passport.HashSize
	case OpPeerNaming:
		return keys.PublicKeySize
	}
	return 0
}
