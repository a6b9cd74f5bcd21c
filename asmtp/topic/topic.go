// Package topic names the ASMTP pub/sub topics.
//
// Scheme v1 (upstream, what the node speaks today): the topic of a
// conversation, derived from the two parties' passport shared keys, and the
// topic of a passport, on which its updates travel. Both are computable from
// public passports, so gossip shows who talks to whom (PROTOCOL.md §16.1).
//
// Scheme v2 (v2.go, PROTOCOL.md §16): secret daily inbox topics and intro
// buckets; derivations only, not yet used by the node.
package topic

import (
	"encoding/hex"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
)

// Size is the length of a topic.
const Size = 32

// Topic is a PolderCast topic id.
type Topic [Size]byte

// ForPassport is the topic a passport's updates travel on: 16 zero bytes ‖ id.
func ForPassport(id passport.Hash) Topic {
	var t Topic
	copy(t[passport.HashSize:], id[:])
	return t
}

// Passport reports whether t is a passport topic, and whose.
func (t Topic) Passport() (passport.Hash, bool) {
	var id passport.Hash
	for _, b := range t[:Size-passport.HashSize] {
		if b != 0 {
			return id, false
		}
	}
	copy(id[:], t[Size-passport.HashSize:])
	return id, true
}

// String is the lowercase hex form.
func (t Topic) String() string { return hex.EncodeToString(t[:]) }

// Parse parses 64 hex characters.
func Parse(s string) (Topic, error) {
	var t Topic
	return t, keys.DecodeHex(t[:], s, "topic")
}
