package node

import (
	"testing"
	"time"

	"github.com/asmtp/asmtp/internal/wait"
)

// TestBootstrapPeerDownAtStartJoinsLater: A's only known peer B is down
// when A starts; three nodes join through A, so A always has someone to
// gossip with. B then starts knowing nobody. Without a periodic gossip
// with a bootstrap peer the two sides stay islands for ever: nobody dials
// B (a 30-node test network started in a bad order split this way).
func TestBootstrapPeerDownAtStartJoinsLater(t *testing.T) {
	cfgB, userB := testConfig(t, t.TempDir())
	b := start(t, cfgB, userB)
	bPeer := b.peer()
	b.stop(t)

	cfgA, userA := testConfig(t, t.TempDir())
	cfgA.KnownPeers = []Peer{bPeer}
	a := start(t, cfgA, userA)
	for range 3 {
		cfg, user := testConfig(t, t.TempDir())
		cfg.KnownPeers = []Peer{a.peer()}
		start(t, cfg, user)
	}
	wait.Until(t, 10*time.Second, "A linked to the three", func() bool { return a.Stats().Links >= 3 })

	cfgB.ListenAddress = bPeer.Address
	b = start(t, cfgB, userB)
	wait.Until(t, 20*time.Second, "B linked to the network", func() bool { return b.Stats().Links > 0 })
}
