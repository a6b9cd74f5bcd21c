package poldercast

import (
	"cmp"
	"fmt"
	"time"
)

// Caps that do not depend on the configuration.
const (
	// MaxSubscriptions is the most topics a profile may list: the Gossip
	// info field counts them in 10 bits. It also caps our own subscriptions.
	MaxSubscriptions = 1023
	// MaxBatch is the most profiles merged from one Receive call; the rest
	// are dropped. A paper-style exchange sends at most 2·GossipSize, an
	// upstream asmtpd at most 2·|topics|+21.
	MaxBatch = 256
	// MaxExchanges is the most gossip exchanges tracked at once (opened by
	// Tick or by a peer's request). The oldest is forgotten first.
	MaxExchanges = 64
	// MaxRemoved is the most removed peers remembered so that their stale
	// profiles, still circulating, are not taken back. Oldest forgotten first.
	MaxRemoved = 1024
	// maxRingSize keeps the interest level encoding (see interestLevel)
	// meaningful: 255/RingSize must be at least 1.
	maxRingSize = 64
)

// Config holds the PolderCast parameters. The zero value of a field means
// its default (DefaultConfig).
type Config struct {
	// RingSize is the ring view per topic: RingSize/2 closest successors
	// plus RingSize/2 closest predecessors. The protocol needs 1+1; 2+2
	// absorbs churn. Even, 2..64. Default 4.
	RingSize int
	// VicinitySize is the Vicinity view: the peers with the highest
	// proximity to us. Paper default 20.
	VicinitySize int
	// CyclonSize is the Cyclon view: a random sample of the network.
	// Paper default 20.
	CyclonSize int
	// GossipSize is the paper's gossip length g. One exchange sends our own
	// profile, GossipSize−1 Cyclon entries and up to GossipSize profiles
	// chosen for the peer (ring and Vicinity candidates). Default 10.
	GossipSize int
	// Fanout is F of the dissemination rule: each subscriber sends each
	// event to at most F peers. At least 2 (2 = rings only). Default 3.
	Fanout int
	// HandoffSize is how many known subscribers Handoff returns for a topic
	// we are not subscribed to. Default 2: one spare if the other is gone.
	HandoffSize int
	// Introductions is how many extra exchanges a Tick may start with
	// closest ring neighbours never contacted: they do not know us yet and
	// do not forward to us until they do. Default 2; -1 for none.
	Introductions int
	// JoinWindow is how long after subscribing a topic an empty ring keeps
	// Settled false (the node ticks fast to find the other subscribers).
	// Default 3 minutes.
	JoinWindow time.Duration
	// MaxClockSkew bounds how far in the future a profile time may be.
	// Default 2 minutes.
	MaxClockSkew time.Duration
	// ProfileTTL expires profiles that were not refreshed: a live node
	// re-signs its profile on every Tick, so a profile this old belongs to
	// a node that stopped. Default 1 hour.
	ProfileTTL time.Duration
	// ExchangeTimeout is how long an exchange stays open for the peer's
	// reply, and how long after answering a peer we do not answer it again.
	// Default 5 seconds; keep it well below the gossip period.
	ExchangeTimeout time.Duration
}

// DefaultConfig returns the paper's parameters.
func DefaultConfig() Config {
	return Config{
		RingSize:        4,
		VicinitySize:    20,
		CyclonSize:      20,
		GossipSize:      10,
		Fanout:          3,
		HandoffSize:     2,
		Introductions:   2,
		JoinWindow:      3 * time.Minute,
		MaxClockSkew:    2 * time.Minute,
		ProfileTTL:      time.Hour,
		ExchangeTimeout: 5 * time.Second,
	}
}

// withDefaults fills every zero field from DefaultConfig. Only zero means
// "unset": a negative value is the caller's and validate judges it.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.RingSize = cmp.Or(c.RingSize, d.RingSize)
	c.VicinitySize = cmp.Or(c.VicinitySize, d.VicinitySize)
	c.CyclonSize = cmp.Or(c.CyclonSize, d.CyclonSize)
	c.GossipSize = cmp.Or(c.GossipSize, d.GossipSize)
	c.Fanout = cmp.Or(c.Fanout, d.Fanout)
	c.HandoffSize = cmp.Or(c.HandoffSize, d.HandoffSize)
	c.Introductions = cmp.Or(c.Introductions, d.Introductions)
	c.JoinWindow = cmp.Or(c.JoinWindow, d.JoinWindow)
	c.MaxClockSkew = cmp.Or(c.MaxClockSkew, d.MaxClockSkew)
	c.ProfileTTL = cmp.Or(c.ProfileTTL, d.ProfileTTL)
	c.ExchangeTimeout = cmp.Or(c.ExchangeTimeout, d.ExchangeTimeout)
	return c
}

func (c Config) validate() error {
	switch {
	case c.RingSize < 2 || c.RingSize > maxRingSize || c.RingSize%2 != 0:
		return fmt.Errorf("poldercast: ring size %d: want an even number in 2..%d", c.RingSize, maxRingSize)
	case c.VicinitySize < 1 || c.CyclonSize < 1:
		return fmt.Errorf("poldercast: view sizes %d/%d: want at least 1", c.VicinitySize, c.CyclonSize)
	case c.GossipSize < 2 || 2*c.GossipSize > MaxBatch:
		return fmt.Errorf("poldercast: gossip size %d: want 2..%d", c.GossipSize, MaxBatch/2)
	case c.Fanout < 2:
		return fmt.Errorf("poldercast: fanout %d: want at least 2", c.Fanout)
	case c.Introductions < -1:
		return fmt.Errorf("poldercast: introductions %d: want -1 (none) or more", c.Introductions)
	case c.HandoffSize < 1:
		return fmt.Errorf("poldercast: handoff size %d: want at least 1", c.HandoffSize)
	case c.MaxClockSkew < 0 || c.ProfileTTL <= 0 || c.ExchangeTimeout <= 0 || c.JoinWindow < 0:
		return fmt.Errorf("poldercast: durations skew=%v ttl=%v exchange=%v join=%v: want positive", c.MaxClockSkew, c.ProfileTTL, c.ExchangeTimeout, c.JoinWindow)
	}
	return nil
}

// maxPeers caps the profiles a Topology holds: every view full plus one
// batch being merged. Profiles that fall out of all views are dropped after
// each merge, so this bound is never the one that decides in practice.
func (c Config) maxPeers() int {
	return c.CyclonSize + c.VicinitySize + c.RingSize*MaxSubscriptions + MaxBatch
}
