package main

import (
	"crypto/sha256"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/poldercast"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// scheme is a topic naming scheme: what each node subscribes to.
type scheme string

const (
	schemeV1 scheme = "v1" // passport topics and pair topics (upstream)
	schemeV2 scheme = "v2" // secret inbox topics and intro buckets (PROTOCOL.md §16)
)

// identities are the public passport ids and the secret inbox seeds of the
// accounts, one per node.
type identities struct {
	passports []passport.Hash
	seeds     []topic.InboxSeed
}

// naming is a scheme applied to a contact graph: the topic catalogue and
// each node's subscriptions as catalogue indexes.
type naming struct {
	scheme     scheme
	topics     []poldercast.Topic
	nodeTopics [][]int32
	pair       []int32 // v1: catalogue index of each edge's pair topic
	bucket     []int32 // v2: catalogue index of each account's intro bucket
	members    map[int32][]int32
}

// v1PairTopic stands for the v1 conversation topic (PROTOCOL.md P.6.1) of
// two passports. The real one is PBKDF2 over the two passport shared keys,
// a few milliseconds each, too slow for a hundred thousand pairs; what the
// adversary needs is the same: it is a public function of the two public
// passports.
func v1PairTopic(a, b passport.Hash) poldercast.Topic {
	if string(a[:]) > string(b[:]) {
		a, b = b, a
	}
	buf := append([]byte("v1 pair "), a[:]...)
	return sha256.Sum256(append(buf, b[:]...))
}

// newNaming applies s to the graph. v1: each node subscribes to its own
// passport topic and, per contact, to the contact's passport topic and
// their pair topic. v2: each node subscribes to its account's inbox topic
// of day 0 and to its own intro bucket, sized for the network.
func newNaming(s scheme, g *contactGraph, ids identities) *naming {
	n := len(ids.passports)
	nm := &naming{scheme: s, nodeTopics: make([][]int32, n), members: map[int32][]int32{}}
	if s == schemeV1 {
		for i := range n {
			nm.topics = append(nm.topics, poldercast.Topic(topic.ForPassport(ids.passports[i])))
			nm.nodeTopics[i] = append(nm.nodeTopics[i], int32(i))
		}
		for _, ab := range g.edges {
			k := int32(len(nm.topics))
			nm.topics = append(nm.topics, v1PairTopic(ids.passports[ab[0]], ids.passports[ab[1]]))
			nm.pair = append(nm.pair, k)
			for side, x := range ab {
				other := ab[1-side]
				nm.nodeTopics[x] = append(nm.nodeTopics[x], other, k)
			}
		}
		return nm
	}
	bits := topic.BucketBits(n)
	byTopic := map[poldercast.Topic]int32{}
	for i := range n {
		nm.topics = append(nm.topics, poldercast.Topic(topic.Inbox(ids.seeds[i], 0)))
	}
	for i := range n {
		tp := poldercast.Topic(topic.IntroBucket(ids.passports[i], bits))
		k, ok := byTopic[tp]
		if !ok {
			k = int32(len(nm.topics))
			nm.topics = append(nm.topics, tp)
			byTopic[tp] = k
		}
		nm.bucket = append(nm.bucket, k)
		nm.members[k] = append(nm.members[k], int32(i))
		nm.nodeTopics[i] = []int32{int32(i), k}
	}
	return nm
}
