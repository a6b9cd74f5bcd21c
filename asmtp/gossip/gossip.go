// Package gossip is the codec of a PolderCast 1.x gossip (PROTOCOL.md
// §8): a node's self-signed profile of id, time, public address and topic
// subscriptions, as carried by the ASMTP Gossip message. The topology that
// uses gossips lives elsewhere; this package only builds, signs, encodes,
// decodes and verifies them.
//
// Info bits 10–14 are flags a node signs with its gossip (PROTOCOL.md
// §16.2): bit 10 says the node speaks naming v2 (FlagNamingV2); bits 11–14
// are unassigned. Decode keeps every flag as received, known or not, so
// that a gossip passed on re-encodes to the bytes its signature covers.
//
// Layout (integers big-endian):
//
//	offset  size    field
//	0       2       info: bit 15 = IPv4, bits 10–14 flags, bits 0–9 = n
//	2       32      node id (Ed25519 public key)
//	34      4       time, seconds since 2020-01-01T00:00:00Z
//	38      4|16    IPv4 or IPv6 address
//	42|54   2       port
//	44|56   33·n    n × (topic 32 ‖ interest level 1)
//	…       64      Ed25519 signature by the node id over all preceding bytes
package gossip

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// Field sizes, in bytes.
const (
	InfoSize         = 2
	TimeSize         = 4
	IPv4Size         = 4
	IPv6Size         = 16
	PortSize         = 2
	SubscriptionSize = topic.Size + 1 // topic ‖ interest level
	SignatureSize    = ed25519.SignatureSize
)

const (
	// MaxSubscriptions is the largest count the 10-bit info field holds.
	MaxSubscriptions = 1023

	// MinSizeIPv4 and MinSizeIPv6 are the sizes of a gossip with no
	// subscription; each subscription adds SubscriptionSize.
	MinSizeIPv4 = InfoSize + keys.PublicKeySize + TimeSize + IPv4Size + PortSize + SignatureSize // 108
	MinSizeIPv6 = InfoSize + keys.PublicKeySize + TimeSize + IPv6Size + PortSize + SignatureSize // 120
	// MaxSize is an IPv6 gossip with MaxSubscriptions subscriptions.
	MaxSize = MinSizeIPv6 + MaxSubscriptions*SubscriptionSize // 33879

	infoIPv4  = 1 << 15
	infoFlags = 0x7c00 // bits 10–14
	infoCount = 0x03ff // bits 0–9

	// EpochUnix is keynesis' time origin, 2020-01-01T00:00:00Z, in Unix seconds.
	EpochUnix = 1577836800
)

// Epoch is the origin of ASMTP times (keynesis' COVID_EPOCH).
func Epoch() time.Time { return time.Unix(EpochUnix, 0).UTC() }

// Subscription is a topic a node subscribes to, with its interest level
// (0 = none).
type Subscription struct {
	Topic    topic.Topic
	Interest uint8
}

// FlagNamingV2 is info bit 10: the node speaks naming scheme v2 (inbox
// topics and intro buckets, PROTOCOL.md §16). A gossip without it comes
// from a v1 node (upstream or an earlier release).
const FlagNamingV2 uint16 = 1 << 10

// Gossip is a decoded or freshly signed gossip.
type Gossip struct {
	// Flags are info bits 10–14 as signed (FlagNamingV2; the others are
	// unassigned and kept as received).
	Flags         uint16
	ID            keys.PublicKey
	Time          uint32 // seconds since Epoch
	Addr          netip.AddrPort
	Subscriptions []Subscription
	Signature     [SignatureSize]byte
}

// New builds the gossip of the node whose key is priv and signs it, with
// no flag set (a v1 node's gossip). An IPv4 address (not an IPv4-mapped
// IPv6 one) is encoded in 4 bytes.
func New(priv ed25519.PrivateKey, now uint32, addr netip.AddrPort, subs []Subscription) (Gossip, error) {
	return NewFlagged(priv, 0, now, addr, subs)
}

// NewFlagged is New with info flags (FlagNamingV2); flags outside bits
// 10–14 are an error.
func NewFlagged(priv ed25519.PrivateKey, flags uint16, now uint32, addr netip.AddrPort, subs []Subscription) (Gossip, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return Gossip{}, fmt.Errorf("new gossip: key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	g := Gossip{
		Flags:         flags,
		ID:            keys.Public(priv),
		Time:          now,
		Addr:          addr,
		Subscriptions: append([]Subscription(nil), subs...),
	}
	if err := g.check(); err != nil {
		return Gossip{}, fmt.Errorf("new gossip: %w", err)
	}
	b := g.appendSigned(nil)
	copy(g.Signature[:], ed25519.Sign(priv, b))
	return g, nil
}

// NamingV2 reports whether the node that signed g speaks naming v2.
func (g Gossip) NamingV2() bool { return g.Flags&FlagNamingV2 != 0 }

// Size is the encoded length of g.
func (g Gossip) Size() int {
	n := MinSizeIPv6
	if g.Addr.Addr().Is4() {
		n = MinSizeIPv4
	}
	return n + len(g.Subscriptions)*SubscriptionSize
}

// Encode returns the bytes of g. It does not validate g: use a Gossip made
// by New or Decode, or call Verify first.
func (g Gossip) Encode() []byte {
	return g.Append(make([]byte, 0, g.Size()))
}

// Append appends the bytes of g to dst; see Encode.
func (g Gossip) Append(dst []byte) []byte {
	return append(g.appendSigned(dst), g.Signature[:]...)
}

// appendSigned appends everything but the signature.
func (g Gossip) appendSigned(dst []byte) []byte {
	info := uint16(len(g.Subscriptions))&infoCount | g.Flags&infoFlags
	ip := g.Addr.Addr()
	if ip.Is4() {
		info |= infoIPv4
	}
	dst = binary.BigEndian.AppendUint16(dst, info)
	dst = append(dst, g.ID[:]...)
	dst = binary.BigEndian.AppendUint32(dst, g.Time)
	if ip.Is4() {
		a := ip.As4()
		dst = append(dst, a[:]...)
	} else {
		a := ip.As16()
		dst = append(dst, a[:]...)
	}
	dst = binary.BigEndian.AppendUint16(dst, g.Addr.Port())
	for _, s := range g.Subscriptions {
		dst = append(dst, s.Topic[:]...)
		dst = append(dst, s.Interest)
	}
	return dst
}

// check validates what the encoding cannot represent.
func (g Gossip) check() error {
	if g.Flags&^infoFlags != 0 {
		return fmt.Errorf("flags %#04x outside info bits 10–14", g.Flags)
	}
	if len(g.Subscriptions) > MaxSubscriptions {
		return fmt.Errorf("%d subscriptions, maximum %d", len(g.Subscriptions), MaxSubscriptions)
	}
	if !g.Addr.IsValid() {
		return errors.New("no address")
	}
	if g.Addr.Addr().Zone() != "" {
		return fmt.Errorf("address %s has a zone, which a gossip cannot carry", g.Addr)
	}
	return nil
}

// Verify checks that g can be encoded and that its signature is valid.
func (g Gossip) Verify() error {
	if err := g.check(); err != nil {
		return fmt.Errorf("gossip %s: %w", g.ID, err)
	}
	if !ed25519.Verify(g.ID[:], g.appendSigned(make([]byte, 0, g.Size())), g.Signature[:]) {
		return fmt.Errorf("gossip %s: invalid signature", g.ID)
	}
	return nil
}

// Decode parses and verifies a gossip. It checks, in order: the length is
// exactly what the info field implies
// (108 + 33n for IPv4, 120 + 33n for IPv6), and the signature is valid
// under the embedded id. Info bits 10–14 are kept in Flags, unassigned
// ones included (a later release may sign them; an earlier one of this
// implementation rejected them). It does not judge freshness, the address
// or duplicate topics. The result does not alias b.
func Decode(b []byte) (Gossip, error) {
	var g Gossip
	if len(b) < InfoSize {
		return g, fmt.Errorf("decode gossip: %d bytes, too short for the info field", len(b))
	}
	info := binary.BigEndian.Uint16(b)
	g.Flags = info & infoFlags
	n := int(info & infoCount)
	ipSize, size := IPv6Size, MinSizeIPv6
	if info&infoIPv4 != 0 {
		ipSize, size = IPv4Size, MinSizeIPv4
	}
	size += n * SubscriptionSize
	if len(b) != size {
		return g, fmt.Errorf("decode gossip: %d bytes, but info %#04x (%d subscriptions) means %d", len(b), info, n, size)
	}

	rest := b[InfoSize:]
	copy(g.ID[:], rest)
	rest = rest[keys.PublicKeySize:]
	g.Time = binary.BigEndian.Uint32(rest)
	rest = rest[TimeSize:]
	var ip netip.Addr
	if ipSize == IPv4Size {
		ip = netip.AddrFrom4([IPv4Size]byte(rest))
	} else {
		ip = netip.AddrFrom16([IPv6Size]byte(rest))
	}
	rest = rest[ipSize:]
	g.Addr = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(rest))
	rest = rest[PortSize:]
	if n > 0 {
		g.Subscriptions = make([]Subscription, n)
		for i := range g.Subscriptions {
			copy(g.Subscriptions[i].Topic[:], rest)
			g.Subscriptions[i].Interest = rest[topic.Size]
			rest = rest[SubscriptionSize:]
		}
	}
	copy(g.Signature[:], rest)

	signed := b[:len(b)-SignatureSize]
	if !ed25519.Verify(g.ID[:], signed, g.Signature[:]) {
		return Gossip{}, fmt.Errorf("decode gossip: invalid signature for node %s", g.ID)
	}
	return g, nil
}

// ToTime converts an ASMTP time to a time.Time.
func ToTime(t uint32) time.Time {
	return time.Unix(EpochUnix+int64(t), 0).UTC()
}

// FromTime converts t to an ASMTP time, truncating to the second. Times
// before Epoch give 0; times after 2156-02-07 give the maximum.
func FromTime(t time.Time) uint32 {
	s := t.Unix() - EpochUnix
	switch {
	case s < 0:
		return 0
	case s > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(s)
}
