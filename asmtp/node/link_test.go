package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/wire"
	"github.com/asmtp/asmtp/internal/wait"
)

// connTo returns n's connection to peer, nil if there is none yet.
func connTo(n *Node, peer keys.PublicKey) *wire.Conn {
	n.mu.Lock()
	l := n.links[peer]
	n.mu.Unlock()
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn
}

// Two nodes that dial each other at the same moment end up with one link
// each, over the same TCP connection (the one dialled by the smaller id).
func TestSimultaneousDialKeepsOneConnection(t *testing.T) {
	for i := range 5 {
		cfgA, _ := testConfig(t, t.TempDir())
		cfgB, _ := testConfig(t, t.TempDir())
		a, err := New(cfgA)
		if err != nil {
			t.Fatal(err)
		}
		cfgB.KnownPeers = []Peer{{ID: a.ID(), Address: a.Addr().String()}}
		b, err := New(cfgB)
		if err != nil {
			t.Fatal(err)
		}
		a.bootstrap = append(a.bootstrap, Peer{ID: b.ID(), Address: b.Addr().String()})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 2)
		go func() { done <- a.Run(ctx) }()
		go func() { done <- b.Run(ctx) }()

		wait.Until(t, 5*time.Second, "one settled link each way", func() bool {
			ca, cb := connTo(a, b.ID()), connTo(b, a.ID())
			return ca != nil && cb != nil &&
				ca.LocalAddr().String() == cb.RemoteAddr().String() &&
				ca.RemoteAddr().String() == cb.LocalAddr().String()
		})
		// The exchange keeps going over it, and over it alone.
		var la, lb int
		wait.Never(t, 3*cfgA.GossipInterval, fmt.Sprintf("round %d: other than one link each", i), func() bool {
			la, lb = a.Stats().Links, b.Stats().Links
			return la != 1 || lb != 1
		}, func() string { return fmt.Sprintf("%d and %d links", la, lb) })
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
}
