package poldercast

import (
	"encoding/binary"
	"encoding/hex"
	"math/bits"
)

// ID identifies a node: its Ed25519 public key. On the ring of a topic, ids
// are 256-bit big-endian numbers on a circle: the successor of the largest id
// is the smallest.
type ID [32]byte

// Topic is an opaque 32-byte topic.
type Topic [32]byte

func (id ID) String() string    { return hex.EncodeToString(id[:]) }
func (tp Topic) String() string { return hex.EncodeToString(tp[:]) }

// short is the id prefix used in error messages.
func (id ID) short() string { return hex.EncodeToString(id[:4]) }

// distance is a clockwise distance on the id circle, a 256-bit number stored
// as four 64-bit limbs, most significant first.
type distance [4]uint64

// clockwise returns how far to lies after from, going clockwise:
// (to − from) mod 2²⁵⁶. clockwise(a, b) is b's distance as a successor of a,
// clockwise(b, a) its distance as a predecessor.
func clockwise(from, to ID) distance {
	var d distance
	var borrow uint64
	for i := 3; i >= 0; i-- {
		x := binary.BigEndian.Uint64(to[i*8:])
		y := binary.BigEndian.Uint64(from[i*8:])
		d[i], borrow = bits.Sub64(x, y, borrow)
	}
	return d
}

func (d distance) less(e distance) bool {
	for i := range d {
		if d[i] != e[i] {
			return d[i] < e[i]
		}
	}
	return false
}

// compareTopics orders topics as big-endian numbers, eight bytes at a
// time. It is the hot path of every merge of two subscription lists. Most
// topics are hashes, decided by the first word; but v1 passport topics
// start with 16 zero bytes (PROTOCOL.md P.6.2), and a profile lists one
// per contact: comparing them with bytes.Compare took a fifth of the CPU of
// a 10,000-node simulation of v1 naming.
func compareTopics(a, b Topic) int {
	for i := 0; i < len(a); i += 8 {
		x, y := binary.BigEndian.Uint64(a[i:]), binary.BigEndian.Uint64(b[i:])
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
	}
	return 0
}

// topicKey is the first eight bytes of a topic as a number: it orders topics
// like compareTopics whenever it differs.
func topicKey(tp Topic) uint64 { return binary.BigEndian.Uint64(tp[:8]) }
