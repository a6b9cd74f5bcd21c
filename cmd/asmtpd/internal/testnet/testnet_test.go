package testnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/internal/wait"
)

// needRoot skips a test of the namespaces where they cannot be made: the
// harness then falls back to loopback (TestLoopbackFallback). As root,
// failing to make them is an error.
func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (CAP_SYS_ADMIN)")
	}
}

func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/asmtp/asmtp/cmd/asmtpd", "github.com/asmtp/asmtp/cmd/asmtpd-cli").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

func startNetwork(t *testing.T, cfg Config) *Network {
	t.Helper()
	if testing.Short() {
		t.Skip("runs asmtpd processes")
	}
	cfg.Bin, cfg.Dir = buildBinaries(t), t.TempDir()
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	ctx := context.Background()
	n, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, node := range n.Nodes {
				t.Logf("--- node %s ---\n%s", node.Name, node.LogTail(20))
			}
		}
		if err := n.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPartitionCutsLinks: a partition stops TCP between the groups and
// not within them, Heal restores it, and Close leaves no namespace.
func TestPartitionCutsLinks(t *testing.T) {
	needRoot(t)
	n := startNetwork(t, Config{Nodes: 3, RetryWindow: time.Minute})
	if !n.Namespaced() {
		t.Fatalf("no network namespaces on this machine (root and ip are needed)")
	}
	ctx := context.Background()
	check := func(when string, want map[[2]int]bool) {
		t.Helper()
		for pair, ok := range want {
			if got := n.Reachable(ctx, pair[0], pair[1]); got != ok {
				t.Errorf("%s: node %d reaches node %d: %v, want %v", when, pair[0], pair[1], got, ok)
			}
		}
	}
	check("before", map[[2]int]bool{{0, 2}: true, {2, 0}: true, {0, 1}: true})
	if err := n.Partition(ctx, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	check("partitioned {0} | {1, 2}", map[[2]int]bool{{0, 2}: false, {2, 0}: false, {0, 1}: false, {1, 2}: true})
	if err := n.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	check("healed", map[[2]int]bool{{0, 2}: true, {2, 0}: true, {0, 1}: true, {1, 2}: true})

	names := append([]string{n.fabric.hub()}, n.fabric.nodes...)
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ns := range names {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s left after Close", ns)
		}
	}
}

// TestLoopbackFallback: without namespaces the nodes run on loopback,
// the log says so, partitions are refused, and mail still goes through.
func TestLoopbackFallback(t *testing.T) {
	var logged strings.Builder
	logf := func(f string, a ...any) {
		t.Logf(f, a...)
		fmt.Fprintf(&logged, f+"\n", a...)
	}
	n := startNetwork(t, Config{Nodes: 2, Accounts: 2, Contacts: [][2]int{{0, 1}}, RetryWindow: time.Minute, Loopback: true, Logf: logf})
	ctx := context.Background()
	if n.Namespaced() || !strings.Contains(logged.String(), "loopback addresses") {
		t.Fatalf("namespaced %v despite Loopback; log:\n%s", n.Namespaced(), logged.String())
	}
	for _, node := range n.Nodes {
		if !strings.HasPrefix(node.Addr(), "127.0.0.1:") {
			t.Errorf("node %s listens on %s", node.Name, node.Addr())
		}
	}
	if err := n.Partition(ctx, []int{1}); err != ErrNoPartition {
		t.Errorf("Partition on loopback: %v, want ErrNoPartition", err)
	}
	from, to := n.Accounts[0], n.Accounts[1]
	i := 0
	wait.Until(t, 90*time.Second, "a mail at "+to.Name, func() bool {
		i++
		id := fmt.Sprintf("fallback-%d", i)
		if acks, err := n.Send(ctx, from, []Outgoing{{ID: id, To: to, Size: 100}}, 10*time.Second); err != nil || len(acks) != 1 || acks[0].Err != "" {
			t.Fatalf("submission: %v %v", acks, err)
		}
		return waitSubject(ctx, t, n, to, "fallback-", 5*time.Second)
	})
}

// waitSubject polls a's INBOX until a Subject starts with prefix.
func waitSubject(ctx context.Context, t *testing.T, n *Network, a *Account, prefix string, timeout time.Duration) bool {
	return wait.Poll(timeout, func() bool {
		msgs, err := n.Inbox(ctx, a, prefix)
		if err != nil {
			t.Logf("inbox: %v", err)
		}
		return slices.ContainsFunc(msgs, func(m Received) bool { return strings.HasPrefix(m.Subject, prefix) })
	})
}

// TestRemoveStale: namespaces of a harness process that no longer runs
// are removed, those of a running one are kept.
func TestRemoveStale(t *testing.T) {
	needRoot(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	staleNS := fmt.Sprintf("%s%d-test-hub", nsPrefix, dead.Process.Pid)
	liveNS := fmt.Sprintf("%s%d-test-hub", nsPrefix, os.Getpid())
	for _, ns := range []string{staleNS, liveNS} {
		if err := ip(ctx, "netns", "add", ns); err != nil {
			t.Fatalf("no network namespaces on this machine (root and ip are needed): %v", err)
		}
		t.Cleanup(func() { deleteNamespace(context.Background(), ns) })
	}
	removed, err := removeStale(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(removed, " "), staleNS) {
		t.Errorf("removed %v, not %s", removed, staleNS)
	}
	if _, err := os.Stat("/run/netns/" + staleNS); err == nil {
		t.Errorf("%s still there", staleNS)
	}
	if _, err := os.Stat("/run/netns/" + liveNS); err != nil {
		t.Errorf("%s (of this running process) removed: %v", liveNS, err)
	}
}
