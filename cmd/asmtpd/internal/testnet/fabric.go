package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoPartition: the network runs on loopback, where groups of nodes
// cannot be separated.
var ErrNoPartition = errors.New("testnet: partitions need network namespaces; this network runs on loopback")

// nsPrefix starts the name of every namespace the harness makes; the pid
// of the making process follows, so stale ones can be recognised.
const nsPrefix = "asmtptn-"

// Bridge devices in the hub namespace: every node's veth is on mainBridge,
// except those of a partitioned group, moved to splitBridge.
const (
	mainBridge  = "br0"
	splitBridge = "br1"
)

// fabric is the network the nodes live on: namespaces, veths and bridge
// devices, or nothing at all on loopback.
type fabric struct {
	prefix string   // asmtptn-<pid>-<run>-; "" on loopback
	nodes  []string // namespace of each node
}

func (f *fabric) namespaced() bool { return f.prefix != "" }
func (f *fabric) hub() string      { return f.prefix + "hub" }

// nodeAddr is node i's address on the fabric.
func nodeAddr(i int) string { return fmt.Sprintf("10.77.%d.%d", (i+1)/250, (i+1)%250+1) }

// hubVeth is the hub-side name of node i's veth.
func hubVeth(i int) string { return fmt.Sprintf("v%d", i) }

// newFabric makes the hub namespace with its bridge devices and one
// namespace per node. It returns a loopback fabric, and why, when
// namespaces cannot be made.
func newFabric(ctx context.Context, run string, n int) (*fabric, error) {
	f := &fabric{prefix: fmt.Sprintf("%s%d-%s-", nsPrefix, os.Getpid(), run)}
	if err := f.build(ctx, n); err != nil {
		f.close(context.WithoutCancel(ctx))
		return &fabric{}, err
	}
	return f, nil
}

func (f *fabric) build(ctx context.Context, n int) error {
	hub := f.hub()
	steps := [][]string{
		{"netns", "add", hub},
		{"-n", hub, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", mainBridge, "type", "bridge"},
		{"-n", hub, "link", "add", splitBridge, "type", "bridge"},
		{"-n", hub, "link", "set", mainBridge, "up"},
		{"-n", hub, "link", "set", splitBridge, "up"},
	}
	if err := ipAll(ctx, steps); err != nil {
		return err
	}
	for i := range n {
		ns := fmt.Sprintf("%sn%d", f.prefix, i)
		f.nodes = append(f.nodes, ns)
		if err := ipAll(ctx, nodeSteps(hub, ns, i)); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
	}
	// ip netns exec also remounts /sys, which some containers refuse even
	// where namespaces can be made.
	if out, err := f.command(ctx, 0, "true").CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns exec: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nodeSteps makes node i's namespace and plugs it into the hub.
func nodeSteps(hub, ns string, i int) [][]string {
	v := hubVeth(i)
	return [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", hub, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", ns, "addr", "add", nodeAddr(i) + "/16", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", hub, "link", "set", v, "master", mainBridge},
		{"-n", hub, "link", "set", v, "up"},
	}
}

func ipAll(ctx context.Context, steps [][]string) error {
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}

func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// command runs name inside node i's namespace.
func (f *fabric) command(ctx context.Context, i int, name string, args ...string) *exec.Cmd {
	if !f.namespaced() {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", f.nodes[i], name}, args...)...)
}

// partition moves the hub ends of the group's veths to splitBridge.
func (f *fabric) partition(ctx context.Context, group []int) error {
	return f.attach(ctx, group, splitBridge)
}

// heal puts every node back on mainBridge.
func (f *fabric) heal(ctx context.Context) error {
	all := make([]int, len(f.nodes))
	for i := range all {
		all[i] = i
	}
	return f.attach(ctx, all, mainBridge)
}

func (f *fabric) attach(ctx context.Context, nodes []int, bridge string) error {
	if !f.namespaced() {
		return ErrNoPartition
	}
	for _, i := range nodes {
		if err := ip(ctx, "-n", f.hub(), "link", "set", hubVeth(i), "master", bridge); err != nil {
			return err
		}
	}
	return nil
}

// traffic is the bytes node i sent and received on the fabric; false on
// loopback, where they cannot be told apart from other traffic.
func (f *fabric) traffic(ctx context.Context, i int) (rx, tx uint64, ok bool) {
	if !f.namespaced() {
		return 0, 0, false
	}
	out, err := exec.CommandContext(ctx, "ip", "-n", f.nodes[i], "-j", "-s", "link", "show", "eth0").Output()
	if err != nil {
		return 0, 0, false
	}
	var links []struct {
		Stats struct {
			RX struct{ Bytes uint64 } `json:"rx"`
			TX struct{ Bytes uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if json.Unmarshal(out, &links) != nil || len(links) != 1 {
		return 0, 0, false
	}
	return links[0].Stats.RX.Bytes, links[0].Stats.TX.Bytes, true
}

// close kills what still runs in the namespaces and deletes them.
func (f *fabric) close(ctx context.Context) error {
	if !f.namespaced() {
		return nil
	}
	var errs []error
	for _, ns := range append(append([]string(nil), f.nodes...), f.hub()) {
		errs = append(errs, deleteNamespace(ctx, ns))
	}
	return errors.Join(errs...)
}

func deleteNamespace(ctx context.Context, ns string) error {
	if _, err := os.Stat("/run/netns/" + ns); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	// Deleting a namespace whose processes have not yet died only unlinks
	// its name; the veths go when the last process is gone.
	return ip(ctx, "netns", "del", ns)
}

// removeStale deletes the namespaces of harness processes that no longer
// run, and returns their names.
func removeStale(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		pid, ok := namespaceOwner(e.Name())
		if !ok || processAlive(pid) {
			continue
		}
		if err := deleteNamespace(ctx, e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// namespaceOwner is the pid in a name made by newFabric.
func namespaceOwner(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, nsPrefix)
	if !ok {
		return 0, false
	}
	pidText, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidText)
	return pid, err == nil && pid > 0
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
