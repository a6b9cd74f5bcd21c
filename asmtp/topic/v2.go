package topic

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"time"

	"github.com/asmtp/asmtp/asmtp/passport"
)

// Naming scheme v2 (PROTOCOL.md §16): no topic in gossip names a passport
// or a pair. Each account receives on an inbox topic derived from a secret
// seed that reaches its contacts only inside the sealed contact exchange,
// and first contact goes to an intro bucket shared by at least
// MinBucketNodes nodes. Nothing here is wired into the node yet.

// InboxSeedSize is the length of an inbox seed.
const InboxSeedSize = 32

// InboxSeed is an account's secret from which its daily inbox topics are
// derived. It is drawn at random, travels only sealed to contacts, and is
// replaced (and resent to the remaining contacts) when a contact is removed.
type InboxSeed [InboxSeedSize]byte

// InboxPeriod is how long one inbox topic is in use: a node advertises the
// topic of the current UTC day.
const InboxPeriod = 24 * time.Hour

// Domain-separation labels of the v2 derivations.
const (
	inboxSalt  = "asmtp/v2 inbox"
	introSalt  = "asmtp/v2 intro bucket"
	introLabel = "asmtp/v2 intro id"
)

// InboxDay is the day number of t for Inbox: whole days since the Unix
// epoch, UTC.
func InboxDay(t time.Time) uint32 {
	return uint32(t.Unix() / int64(InboxPeriod/time.Second))
}

// Inbox is the inbox topic of seed on day: HKDF-SHA256 with the seed as
// input key material, salt "asmtp/v2 inbox" and info "inbox" ‖ u32 day
// (big endian), 32 bytes of output. Whoever lacks the seed cannot tell the
// topics of two days apart from random, nor link them to the account.
func Inbox(seed InboxSeed, day uint32) Topic {
	info := make([]byte, 0, 9)
	info = append(info, "inbox"...)
	info = binary.BigEndian.AppendUint32(info, day)
	key, err := hkdf.Key(sha256.New, seed[:], []byte(inboxSalt), string(info), Size)
	if err != nil {
		// Only an output longer than 255 hash blocks fails.
		panic(fmt.Sprintf("topic: inbox derivation: %v", err))
	}
	var t Topic
	copy(t[:], key)
	return t
}

// MinBucketNodes is the fewest nodes an intro bucket should hold.
const MinBucketNodes = 32

// MaxBucketBits bounds the bucket width: 2^24 buckets of 32 nodes is half
// a billion nodes.
const MaxBucketBits = 24

// BucketBits is the width b of intro buckets for a network of about n
// nodes: the largest b with n / 2^b ≥ MinBucketNodes, so a bucket holds
// between 32 and 63 nodes when the estimate is right; 0 (one bucket for
// everyone) below 64 nodes.
func BucketBits(n int) int {
	if n < 2*MinBucketNodes {
		return 0
	}
	b := bits.Len(uint(n/MinBucketNodes)) - 1
	return min(b, MaxBucketBits)
}

// IntroBucket is the intro-bucket topic of passport id for bucket width b
// (clamped to 0…MaxBucketBits): h = SHA-256("asmtp/v2 intro id" ‖ id); the
// bucket is the first b bits of h; the topic is SHA-256("asmtp/v2 intro
// bucket" ‖ u8 b ‖ the first ⌈b/8⌉ bytes of h with the bits after the b-th
// cleared). Every passport whose h starts with the same b bits shares it.
func IntroBucket(id passport.Hash, b int) Topic {
	b = max(0, min(b, MaxBucketBits))
	h := sha256.Sum256(append([]byte(introLabel), id[:]...))
	prefix := h[:(b+7)/8]
	if r := b % 8; r != 0 {
		prefix[len(prefix)-1] &= byte(0xff) << (8 - r)
	}
	buf := make([]byte, 0, len(introSalt)+1+len(prefix))
	buf = append(buf, introSalt...)
	buf = append(buf, byte(b))
	buf = append(buf, prefix...)
	return Topic(sha256.Sum256(buf))
}

// InboxOverlap is how long before and after midnight UTC an account's node
// also subscribes to the neighbouring day's inbox topic (§16.3), so that a
// sender whose clock is a little off (§15 allows two minutes) still
// publishes on a topic the owner reads.
const InboxOverlap = time.Hour

// InboxDays are the days whose inbox topics an account's node subscribes
// to at t: today, and the neighbouring day within InboxOverlap of
// midnight. Today comes first.
func InboxDays(t time.Time) []uint32 {
	today := InboxDay(t)
	days := []uint32{today}
	switch {
	case InboxDay(t.Add(InboxOverlap)) != today:
		days = append(days, today+1)
	case today > 0 && InboxDay(t.Add(-InboxOverlap)) != today:
		days = append(days, today-1)
	}
	return days
}
