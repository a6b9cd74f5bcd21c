package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// testNode is a node running in the test process on 127.0.0.1.
type testNode struct {
	*Node
	cfg     Config
	user    ed25519.PrivateKey
	cancel  context.CancelFunc
	done    chan error
	stopped time.Time
}

// testLogger logs at debug level when ASMTP_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("ASMTP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testConfig is a node config with short intervals, a fresh key, one user
// and a database in dir.
func testConfig(t testing.TB, dir string) (Config, ed25519.PrivateKey) {
	t.Helper()
	user := newKey(t)
	cfg := DefaultConfig()
	cfg.Key = newKey(t)
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.StoragePath = filepath.Join(dir, "node.db")
	cfg.Users = []keys.PublicKey{keys.Public(user)}
	cfg.GossipInterval = 100 * time.Millisecond
	cfg.PersistInterval = 500 * time.Millisecond
	cfg.PassportTimeout = 3 * time.Second
	cfg.Logger = testLogger()
	return cfg, user
}

// start creates and runs a node; the test's cleanup stops it.
func start(t testing.TB, cfg Config, user ed25519.PrivateKey) *testNode {
	t.Helper()
	return startWith(t, cfg, user, nil)
}

// startWith creates a node, calls beforeRun (to attach sessions before
// anything can arrive), then runs it.
func startWith(t testing.TB, cfg Config, user ed25519.PrivateKey, beforeRun func(*testNode)) *testNode {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, cfg: cfg, user: user, cancel: cancel, done: make(chan error, 1)}
	if beforeRun != nil {
		beforeRun(tn)
	}
	go func() { tn.done <- n.Run(ctx) }()
	t.Cleanup(func() { tn.stop(t) })
	return tn
}

// stop shuts the node down and checks it did so cleanly within 5 s.
func (tn *testNode) stop(t testing.TB) {
	t.Helper()
	tn.halt()
	tn.wait(t)
}

// halt asks the node to stop.
func (tn *testNode) halt() {
	if tn.cancel != nil {
		tn.cancel()
		tn.cancel = nil
		tn.stopped = time.Now()
	}
}

// wait waits for a halted node's Run to return, at most 5 s after halt.
func (tn *testNode) wait(t testing.TB) {
	t.Helper()
	if tn.done == nil {
		return
	}
	select {
	case err := <-tn.done:
		if err != nil {
			t.Errorf("node %s: %v", tn.ID(), err)
		}
	case <-time.After(time.Until(tn.stopped.Add(5 * time.Second))):
		t.Errorf("node %s: no clean shutdown within 5 s", tn.ID())
		if f, err := os.Create(filepath.Join(os.TempDir(), "asmtp-node-goroutines.txt")); err == nil {
			pprof.Lookup("goroutine").WriteTo(f, 1)
			f.Close()
		}
	}
	tn.done = nil
}

// peer returns how other nodes find tn.
func (tn *testNode) peer() Peer { return Peer{ID: tn.ID(), Address: tn.Addr().String()} }

func (tn *testNode) session(t testing.TB) *Session {
	t.Helper()
	s, err := tn.Attach(keys.Public(tn.user))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// startNetwork starts size nodes that all bootstrap from the first one.
func startNetwork(t testing.TB, size int, tweak func(*Config)) []*testNode {
	t.Helper()
	nodes := make([]*testNode, size)
	for i := range nodes {
		cfg, user := testConfig(t, t.TempDir())
		if i > 0 {
			cfg.KnownPeers = []Peer{nodes[0].peer()}
		}
		if tweak != nil {
			tweak(&cfg)
		}
		nodes[i] = start(t, cfg, user)
	}
	// Stop them all at once (this runs before each node's own cleanup),
	// so that no node's shutdown competes with the others' gossip.
	t.Cleanup(func() {
		for _, n := range nodes {
			n.halt()
		}
		for _, n := range nodes {
			n.wait(t)
		}
	})
	return nodes
}

// ringsConverged reports whether every subscriber of tp knows its true
// closest successor and predecessor among the subscribers, and every
// other node knows at least one subscriber.
func ringsConverged(nodes []*testNode, subscribers []*testNode, tp topic.Topic) error {
	ids := make([]keys.PublicKey, len(subscribers))
	for i, s := range subscribers {
		ids[i] = s.ID()
	}
	slices.SortFunc(ids, func(a, b keys.PublicKey) int { return bytes.Compare(a[:], b[:]) })
	for _, s := range subscribers {
		i := slices.Index(ids, s.ID())
		wantSucc, wantPred := ids[(i+1)%len(ids)], ids[(i+len(ids)-1)%len(ids)]
		succ, pred := s.overlay.ring(tp)
		if len(succ) == 0 || len(pred) == 0 || succ[0] != wantSucc || pred[0] != wantPred {
			return fmt.Errorf("node %s: ring not converged", s.ID())
		}
	}
	for _, n := range nodes {
		if !slices.Contains(subscribers, n) && len(n.overlay.handoff(tp)) == 0 {
			return fmt.Errorf("node %s knows no subscriber", n.ID())
		}
	}
	return nil
}

// receive reads n deliveries from s, failing after timeout.
func receive(t testing.TB, s *Session, n int, timeout time.Duration) []Delivery {
	t.Helper()
	var out []Delivery
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case d, ok := <-s.Deliveries():
			if !ok {
				t.Fatalf("session closed after %d of %d deliveries", len(out), n)
			}
			out = append(out, d)
		case <-deadline:
			t.Fatalf("got %d of %d deliveries within %v", len(out), n, timeout)
		}
	}
	return out
}

// noMore checks that s gets nothing more within d.
func noMore(t testing.TB, s *Session, d time.Duration) {
	t.Helper()
	select {
	case got, ok := <-s.Deliveries():
		if ok {
			t.Fatalf("unexpected extra delivery on %s (cursor %d)", got.Topic, got.Cursor)
		}
	case <-time.After(d):
	}
}
