package poldercast

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Subscription is one topic of a profile with the subscriber's interest
// level. Nodes built on this package advertise the ring priority of the
// topic as the level (see Topology.Self); any listed topic counts as
// subscribed, whatever its level.
type Subscription struct {
	Topic    Topic
	Interest uint8
}

// Profile is what a node tells the others about itself: the content of one
// signed Gossip. The node converts between Profile and the Gossip bytes
// (package asmtp/gossip); this package never sees bytes or signatures.
//
// Profiles are values shared between views and between Topologies: the
// Subscriptions slice must be treated as immutable once handed to or
// returned by a Topology.
type Profile struct {
	ID   ID
	Addr netip.AddrPort
	// Time is when the node last re-signed its profile. A newer Time
	// replaces an older profile; it is also the age of the descriptor.
	Time time.Time
	// Subscriptions are sorted by topic without duplicates. Topology.Add and
	// Receive sort a copy when a peer sent them in another order.
	Subscriptions []Subscription
}

var (
	// ErrFuture reports a profile dated further ahead than Config.MaxClockSkew.
	ErrFuture = errors.New("profile time too far in the future")
	// ErrInvalidProfile reports a malformed profile.
	ErrInvalidProfile = errors.New("invalid profile")
	// ErrTooManySubscriptions reports more than MaxSubscriptions topics.
	ErrTooManySubscriptions = errors.New("too many subscriptions")
)

// Subscribes reports whether p lists topic tp.
func (p *Profile) Subscribes(tp Topic) bool {
	_, ok := p.index(tp)
	return ok
}

// Interest returns p's interest level for tp and whether p subscribes to it.
func (p *Profile) Interest(tp Topic) (uint8, bool) {
	i, ok := p.index(tp)
	if !ok {
		return 0, false
	}
	return p.Subscriptions[i].Interest, true
}

func (p *Profile) index(tp Topic) (int, bool) {
	return slices.BinarySearchFunc(p.Subscriptions, tp, func(s Subscription, tp Topic) int {
		return compareTopics(s.Topic, tp)
	})
}

// normalizeSubscriptions returns subs sorted by topic, copying only when they
// are not sorted already, and rejects duplicate topics and oversized lists.
func normalizeSubscriptions(subs []Subscription) ([]Subscription, error) {
	if len(subs) > MaxSubscriptions {
		return nil, fmt.Errorf("%w: %d > %d", ErrTooManySubscriptions, len(subs), MaxSubscriptions)
	}
	sorted := true
	for i := 1; i < len(subs); i++ {
		c := compareTopics(subs[i-1].Topic, subs[i].Topic)
		if c == 0 {
			return nil, fmt.Errorf("%w: duplicate topic %s", ErrInvalidProfile, subs[i].Topic)
		}
		if c > 0 {
			sorted = false
		}
	}
	if sorted {
		return subs, nil
	}
	subs = slices.Clone(subs)
	slices.SortFunc(subs, func(a, b Subscription) int { return compareTopics(a.Topic, b.Topic) })
	for i := 1; i < len(subs); i++ {
		if subs[i-1].Topic == subs[i].Topic {
			return nil, fmt.Errorf("%w: duplicate topic %s", ErrInvalidProfile, subs[i].Topic)
		}
	}
	return subs, nil
}
