package testnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config describes a network to start.
type Config struct {
	Bin      string // directory holding the asmtpd and asmtpd-cli binaries
	Dir      string // where the nodes' directories are made
	Nodes    int
	Accounts int // bridge accounts, spread round-robin over the nodes

	// Contacts are the pairs of accounts (indices) that are each other's
	// contacts: only they can mail each other.
	Contacts [][2]int

	// KnownPeers lists the nodes node i of n has in known_peers. Default
	// RingPeers.
	KnownPeers func(i, n int) []int

	// RetryWindow is the bridges' retry_window.
	RetryWindow time.Duration

	// Logf reports what the harness does (t.Logf).
	Logf func(format string, args ...any)

	// Loopback runs the nodes on loopback addresses even where namespaces
	// could be made (to test the fallback).
	Loopback bool
}

// Network is a running set of nodes and their accounts.
type Network struct {
	cfg      Config
	fabric   *fabric
	Nodes    []*Node
	Accounts []*Account
	tool     string // the Python mail client script
	python3  string // its interpreter
}

// setupWorkers bounds the asmtpd-cli runs at once: key derivation costs a
// second of CPU each.
const setupWorkers = 4

// New makes the fabric and the nodes' keys, configurations, accounts and
// contacts. The nodes are not started (Start starts them). Close undoes
// everything, also after a failure half-way.
func New(ctx context.Context, cfg Config) (*Network, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	python3, err := pythonExecutable(ctx)
	if err != nil {
		return nil, err
	}
	n := &Network{cfg: cfg, tool: filepath.Join(cfg.Dir, "mailclient.py"), python3: python3}
	if removed, err := removeStale(ctx); err != nil {
		cfg.Logf("testnet: removing stale namespaces: %v", err)
	} else if len(removed) > 0 {
		cfg.Logf("testnet: removed %d stale namespaces of crashed runs", len(removed))
	}
	n.fabric = &fabric{}
	if cfg.Loopback {
		cfg.Logf("testnet: loopback asked for: the nodes run on loopback addresses, partitions are not possible")
	} else if n.fabric, err = newFabric(ctx, randomHex(3), cfg.Nodes); err != nil {
		cfg.Logf("testnet: NO NETWORK NAMESPACES (%v): the nodes run on loopback addresses, partitions are not possible", err)
	}
	if err := n.setup(ctx); err != nil {
		n.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return n, nil
}

// Namespaced reports whether the nodes run in network namespaces.
func (n *Network) Namespaced() bool { return n.fabric.namespaced() }

func (n *Network) setup(ctx context.Context) error {
	if err := os.WriteFile(n.tool, []byte(mailClient), 0o600); err != nil {
		return err
	}
	if err := n.makeNodes(); err != nil {
		return err
	}
	began := time.Now()
	err := parallel(len(n.Nodes), func(i int) error { return n.Nodes[i].generateKey(ctx) })
	if err != nil {
		return err
	}
	n.cfg.Logf("testnet: %d node keys made in %v", len(n.Nodes), time.Since(began).Round(time.Millisecond))
	knows := n.cfg.KnownPeers
	if knows == nil {
		knows = RingPeers
	}
	for i, node := range n.Nodes {
		var peers []*Node
		for _, j := range knows(i, len(n.Nodes)) {
			peers = append(peers, n.Nodes[j])
		}
		if err := node.writeConfig(ctx, peers); err != nil {
			return err
		}
	}
	return n.makeAccounts(ctx)
}

// RingPeers is the default KnownPeers: the next node and the one half-way
// round.
func RingPeers(i, n int) []int {
	peers := []int{(i + 1) % n}
	if far := (i + n/2) % n; n > 3 && far != i {
		peers = append(peers, far)
	}
	return peers
}

func (n *Network) makeNodes() error {
	for i := range n.cfg.Nodes {
		node := &Node{Index: i, Name: fmt.Sprintf("n%02d", i), password: "password of node " + randomHex(4), net: n}
		node.Dir = filepath.Join(n.cfg.Dir, node.Name)
		if err := os.MkdirAll(node.Dir, 0o700); err != nil {
			return err
		}
		if n.fabric.namespaced() {
			node.addr, node.imapAddr, node.smtpAddr = nodeAddr(i)+":9800", "127.0.0.1:1143", "127.0.0.1:1587"
		} else {
			ports, err := freePorts(3)
			if err != nil {
				return err
			}
			node.addr, node.imapAddr, node.smtpAddr = ports[0], ports[1], ports[2]
		}
		n.Nodes = append(n.Nodes, node)
	}
	return nil
}

// makeAccounts adds the accounts, exports their passports and adds the
// contacts, while the nodes are down.
func (n *Network) makeAccounts(ctx context.Context) error {
	began := time.Now()
	n.Accounts = make([]*Account, n.cfg.Accounts)
	err := parallel(len(n.Accounts), func(i int) error {
		a, err := n.addAccount(ctx, n.Nodes[i%len(n.Nodes)], fmt.Sprintf("u%02d", i))
		n.Accounts[i] = a
		return err
	})
	if err != nil {
		return err
	}
	n.cfg.Logf("testnet: %d accounts made in %v", len(n.Accounts), time.Since(began).Round(time.Millisecond))
	began = time.Now()
	defer func() {
		n.cfg.Logf("testnet: %d contacts added in %v", 2*len(n.cfg.Contacts), time.Since(began).Round(time.Millisecond))
	}()
	for _, pair := range n.cfg.Contacts {
		for _, d := range [][2]int{pair, {pair[1], pair[0]}} {
			a, b := n.Accounts[d[0]], n.Accounts[d[1]]
			if _, err := a.node.cli(ctx, "contact", "add", "--config", a.node.config(), "--account", a.Name, "--name", b.Name, "--passport", b.passport); err != nil {
				return err
			}
			a.Contacts = append(a.Contacts, b)
		}
	}
	return nil
}

// parallel runs f(0..n-1), setupWorkers at once, and joins the errors.
func parallel(n int, f func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, setupWorkers)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Start starts every node, one after the other from the last, so that
// each node's first RingPeers peer (the next one) is up when it starts.
// Started in parallel, a node whose known peers all come up a few seconds
// after it can end in an island of the overlay that never merges with the
// rest: a 30-node network started that way lost most of its mail.
func (n *Network) Start(ctx context.Context) error {
	for i := len(n.Nodes) - 1; i >= 0; i-- {
		if err := n.Nodes[i].Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Partition separates the nodes of group from the others until Heal.
func (n *Network) Partition(ctx context.Context, group []int) error {
	return n.fabric.partition(ctx, group)
}

// Heal ends a partition.
func (n *Network) Heal(ctx context.Context) error { return n.fabric.heal(ctx) }

// Reachable reports whether a TCP connection from node from's namespace
// to node to's address opens within a second.
func (n *Network) Reachable(ctx context.Context, from, to int) bool {
	host, port, _ := strings.Cut(n.Nodes[to].addr, ":")
	script := fmt.Sprintf("import socket; socket.create_connection((%q, %s), 1).close()", host, port)
	return n.fabric.command(ctx, from, n.python3, "-c", script).Run() == nil
}

// Close stops the nodes (SIGTERM, then SIGKILL) and removes the fabric.
func (n *Network) Close(ctx context.Context) error {
	var errs []error
	for _, node := range n.Nodes {
		if err := node.Stop(10 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", node.Name, err))
		}
	}
	errs = append(errs, n.fabric.close(ctx))
	return errors.Join(errs...)
}

// pythonExecutable is the interpreter python3 runs: a pyenv shim costs a
// few shell processes per run, which a loaded machine feels.
func pythonExecutable(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		return "", fmt.Errorf("testnet: the mail clients need python3: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freePorts returns loopback addresses with ports nobody listens on, taken
// at random below the kernel's ephemeral range, where no other test's
// listen(":0") can take them between this check and the node's bind.
func freePorts(k int) ([]string, error) {
	var addrs []string
	for tries := 0; len(addrs) < k && tries < 1000; tries++ {
		r, _ := rand.Int(rand.Reader, big.NewInt(8000))
		addr := fmt.Sprintf("127.0.0.1:%d", 24768+int(r.Int64()))
		if slices.Contains(addrs, addr) {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		addrs = append(addrs, addr)
	}
	if len(addrs) < k {
		return nil, errors.New("no free loopback ports")
	}
	return addrs, nil
}
