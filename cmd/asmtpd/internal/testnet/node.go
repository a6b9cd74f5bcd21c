package testnet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/asmtp/asmtp/internal/procmem"
)

// Node is one asmtpd process, its directory and its place on the fabric.
type Node struct {
	Index int
	Name  string
	Dir   string
	ID    string // node id, as generate-new-key printed it

	addr, imapAddr, smtpAddr string // listen addresses
	password                 string
	net                      *Network

	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error         // how it exited, once done is closed
	paused  bool
}

// Addr is where the node takes links.
func (n *Node) Addr() string { return n.addr }

func (n *Node) config() string { return filepath.Join(n.Dir, "config.yaml") }

// cli runs asmtpd-cli with the node's key password in its environment.
func (n *Node) cli(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(n.net.cfg.Bin, "asmtpd-cli"), args...)
	cmd.Env = append(os.Environ(), "ASMTPD_KEY_PASSWORD="+n.password)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("node %s: asmtpd-cli %s: %w: %s", n.Name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return string(out), nil
}

// generateKey makes the node's key and learns its id.
func (n *Node) generateKey(ctx context.Context) error {
	out, err := n.cli(ctx, "generate-new-key", "--entropy-output", filepath.Join(n.Dir, "entropy.txt"), "--password", n.password)
	if err != nil {
		return err
	}
	id, ok := strings.CutPrefix(strings.TrimSpace(out), "Public Identity: ")
	if !ok {
		return fmt.Errorf("node %s: generate-new-key printed %q", n.Name, out)
	}
	n.ID = id
	return nil
}

// writeConfig writes the default-config template edited for the
// addresses, the peers, fast gossip and the retry window.
func (n *Node) writeConfig(ctx context.Context, peers []*Node) error {
	cfg, err := n.cli(ctx, "default-config")
	if err != nil {
		return err
	}
	var peerList []string
	for _, p := range peers {
		peerList = append(peerList, fmt.Sprintf("%q", p.ID+"@"+p.addr))
	}
	edits := [][2]string{
		{`listen_address: "127.0.0.1:9800"`, fmt.Sprintf("listen_address: %q", n.addr)},
		{"known_peers: []", "known_peers: [" + strings.Join(peerList, ", ") + "]"},
		{`imap_listen_address: "127.0.0.1:1143"`, fmt.Sprintf("imap_listen_address: %q", n.imapAddr)},
		{`smtp_listen_address: "127.0.0.1:1587"`, fmt.Sprintf("smtp_listen_address: %q", n.smtpAddr)},
		// CardDAV is not driven here; off, so that nodes sharing loopback
		// (the fallback) do not compete for its port.
		{`carddav_listen_address: "127.0.0.1:1808"`, `carddav_listen_address: ""`},
		{`minimum_time_elapsed: "10s"`, `minimum_time_elapsed: "1s"`},
		{`gossip_refresh_rate: "30s"`, `gossip_refresh_rate: "2s"`},
		{`retry_window: "96h"`, fmt.Sprintf("retry_window: %q", n.net.cfg.RetryWindow.String())},
	}
	for _, e := range edits {
		if !strings.Contains(cfg, e[0]) {
			return fmt.Errorf("node %s: default-config has no %q to edit", n.Name, e[0])
		}
		cfg = strings.Replace(cfg, e[0], e[1], 1)
	}
	return os.WriteFile(n.config(), []byte(cfg), 0o600)
}

// Start starts the process (inside its namespace) and returns once it
// takes links and its bridge takes IMAP logins' connections.
func (n *Node) Start(ctx context.Context) error {
	if n.Running() {
		return fmt.Errorf("node %s already runs", n.Name)
	}
	log, err := os.OpenFile(filepath.Join(n.Dir, "asmtpd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	// Not CommandContext: the process outlives the call.
	n.cmd = n.net.fabric.command(context.Background(), n.Index, filepath.Join(n.net.cfg.Bin, "asmtpd"), "--config", n.config(), "--log-level", "debug")
	n.cmd.Env = append(os.Environ(), "ASMTPD_KEY_PASSWORD="+n.password)
	n.cmd.Stderr = log
	if err := n.cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	n.paused = false
	done := make(chan struct{})
	n.done = done
	go func(cmd *exec.Cmd) {
		n.waitErr = cmd.Wait()
		log.Close()
		close(done)
	}(n.cmd)
	return n.waitListening(ctx, startTimeout)
}

// startTimeout bounds a start: the key derivation and the store's
// recovery after a SIGKILL take seconds, and much longer on a loaded
// machine (CI runners, parallel tests).
const startTimeout = 2 * time.Minute

// waitListening waits until the process listens on the node port and on
// the bridge's IMAP port. It reads the listening sockets of the process's
// own network namespace (/proc/PID/net/tcp), so it needs no route there.
func (n *Node) waitListening(ctx context.Context, timeout time.Duration) error {
	ports := []int{portOf(n.addr), portOf(n.imapAddr)}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if listensOn(n.cmd.Process.Pid, ports) {
			return nil
		}
		select {
		case <-n.done:
			return fmt.Errorf("node %s exited: %v", n.Name, n.waitErr)
		case <-deadline.C:
			return fmt.Errorf("node %s does not listen on %v after %v", n.Name, ports, timeout)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func portOf(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	p, _ := strconv.Atoi(addr[i+1:])
	return p
}

// listensOn reports whether every port has a listening TCP socket in the
// network namespace of pid.
func listensOn(pid int, ports []int) bool {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return false
	}
	defer f.Close()
	listening := map[int]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "0A" { // 0A: TCP_LISTEN
			continue
		}
		_, hexPort, _ := strings.Cut(fields[1], ":")
		if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil {
			listening[int(p)] = true
		}
	}
	for _, p := range ports {
		if !listening[p] {
			return false
		}
	}
	return true
}

// Running reports whether the process runs (paused or not).
func (n *Node) Running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Kill ends the process with SIGKILL: nothing is flushed.
func (n *Node) Kill() error {
	if !n.Running() {
		return fmt.Errorf("node %s does not run", n.Name)
	}
	if err := n.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill node %s: %w", n.Name, err)
	}
	<-n.done
	return nil
}

// Pause stops the process with SIGSTOP: a hung peer, whose links stay
// open and whose sockets take data nobody reads.
func (n *Node) Pause() error {
	if err := n.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	n.paused = true
	return nil
}

// Resume continues a paused process.
func (n *Node) Resume() error {
	if err := n.signal(syscall.SIGCONT); err != nil {
		return err
	}
	n.paused = false
	return nil
}

func (n *Node) signal(sig syscall.Signal) error {
	if !n.Running() {
		return fmt.Errorf("node %s does not run", n.Name)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to node %s: %w", sig, n.Name, err)
	}
	return nil
}

// Stop ends the process with SIGTERM and waits up to timeout for it.
func (n *Node) Stop(timeout time.Duration) error {
	if !n.Running() {
		return nil
	}
	if n.paused {
		n.Resume()
	}
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-n.done:
		return n.waitErr
	case <-time.After(timeout):
		n.cmd.Process.Kill()
		<-n.done
		return fmt.Errorf("node %s still ran %v after SIGTERM", n.Name, timeout)
	}
}

// PeakRSS is the process's peak resident memory in bytes (VmHWM), while
// it runs.
func (n *Node) PeakRSS() (int64, error) {
	if !n.Running() {
		return 0, errors.New("not running")
	}
	return procmem.Status(n.cmd.Process.Pid, "VmHWM")
}

// Traffic is what the node sent and received on the fabric, in bytes;
// false on loopback.
func (n *Node) Traffic(ctx context.Context) (rx, tx uint64, ok bool) {
	return n.net.fabric.traffic(ctx, n.Index)
}

// DiskBytes is the size of the node's directory (store, bridge, logs).
func (n *Node) DiskBytes() int64 {
	var total int64
	filepath.WalkDir(n.Dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

// LogTail is the last lines of the node's log.
func (n *Node) LogTail(lines int) string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "asmtpd.log"))
	s := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(s) > lines {
		s = s[len(s)-lines:]
	}
	return strings.Join(s, "\n")
}
