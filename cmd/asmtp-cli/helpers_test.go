package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node"
)

// runMainEnv makes the test binary run main instead of the tests, so that
// the pseudo-terminal test can start asmtp-cli as a process.
const runMainEnv = "ASMTP_CLI_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const testPassphrase = "correct horse battery staple"

// device is one asmtp-cli state directory.
type device struct {
	t   *testing.T
	dir string
	env map[string]string
}

func newDevice(t *testing.T, name string) *device {
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return &device{t: t, dir: dir, env: map[string]string{envPassphrase: testPassphrase}}
}

// useNode points the device at n (through the environment, as a user would).
func (d *device) useNode(n *testNode) {
	d.env[envRemoteAddress] = n.Addr().String()
	d.env[envRemoteID] = n.ID().String()
}

// run runs asmtp-cli in-process with the device's directory and environment.
func (d *device) run(stdin string, args ...string) (stdout, stderr string, err error) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := newRootCmd(func(k string) string { return d.env[k] })
	var out, errOut bytes.Buffer
	cmd.SetArgs(append([]string{"--dir", d.dir, "--timeout", "3s"}, args...))
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// must runs asmtp-cli and fails the test on an error.
func (d *device) must(args ...string) string {
	d.t.Helper()
	out, errOut, err := d.run("", args...)
	if err != nil {
		d.t.Fatalf("asmtp-cli %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// identity runs info (the first run creates the keys) and returns the
// device key and the passport id.
func (d *device) identity() (keys.PublicKey, string) {
	d.t.Helper()
	out := d.must("info")
	m := regexp.MustCompile(`device key: ([0-9a-f]{64})`).FindStringSubmatch(out)
	p := regexp.MustCompile(`passport:\s+([0-9a-f]{32})`).FindStringSubmatch(out)
	if m == nil || p == nil {
		d.t.Fatalf("info printed no device key or passport:\n%s", out)
	}
	k, err := keys.ParsePublicKey(m[1])
	if err != nil {
		d.t.Fatal(err)
	}
	return k, p[1]
}

// introduce makes a and b contacts of each other, under the given petnames.
func introduce(t *testing.T, a *device, aName string, b *device, bName string) {
	t.Helper()
	aFile, bFile := filepath.Join(t.TempDir(), "a.passport"), filepath.Join(t.TempDir(), "b.passport")
	a.must("--export-passport", aFile)
	b.must("--export-passport", bFile)
	a.must("--import-passport", bFile, "--name", bName)
	b.must("--import-passport", aFile, "--name", aName)
}

// testNode is an asmtp node running in the test process on loopback.
type testNode struct {
	*node.Node
	cfg    node.Config
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned, with its error in err
	err    error
}

// stop stops the node and waits for it.
func (tn *testNode) stop(t *testing.T) {
	t.Helper()
	tn.cancel()
	select {
	case <-tn.done:
		if tn.err != nil {
			t.Logf("node %s: %v", tn.ID(), tn.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("node %s: still shutting down after 10 s", tn.ID())
	}
}

// restart runs a stopped node again: same key, storage and address.
func (tn *testNode) restart(t *testing.T) *testNode {
	t.Helper()
	cfg := tn.cfg
	cfg.ListenAddress = tn.Addr().String()
	return runNode(t, cfg)
}

func newNodeKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startNode runs a node with the given users and bootstrap peers.
func startNode(t *testing.T, users []keys.PublicKey, peers ...*testNode) *testNode {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.Key = newNodeKey(t)
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.StoragePath = filepath.Join(t.TempDir(), "node.db")
	cfg.Users = users
	cfg.GossipInterval = 100 * time.Millisecond
	cfg.PersistInterval = 500 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("ASMTP_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for _, p := range peers {
		cfg.KnownPeers = append(cfg.KnownPeers, node.Peer{ID: p.ID(), Address: p.Addr().String()})
	}
	return runNode(t, cfg)
}

// runNode runs a node until the test's cleanup (or stop).
func runNode(t *testing.T, cfg node.Config) *testNode {
	t.Helper()
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNode{Node: n, cfg: cfg, cancel: cancel, done: make(chan struct{})}
	go func() {
		tn.err = n.Run(ctx)
		close(tn.done)
	}()
	t.Cleanup(func() {
		tn.cancel()
		select {
		case <-tn.done:
		case <-time.After(10 * time.Second):
			t.Logf("node %s: still shutting down after 10 s", tn.ID())
		}
	})
	return tn
}
