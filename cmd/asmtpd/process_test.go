package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
	"github.com/asmtp/asmtp/internal/wait"
)

// TestThreeProcesses runs three asmtpd processes on loopback, configured
// the way an operator would: `asmtpd-cli default-config`, edited only for
// ports, known_peers and users, next to `asmtpd-cli generate-new-key`'s
// entropy. A knows B, C knows B, nothing else. The test plays the users
// with wire clients: a user of A publishes on a topic a user of C
// registered; C's user must receive it within a second, and B (a relay
// with no users) must not store it. Then C is killed with SIGKILL, five
// messages are published, C restarts, and its user must get all five,
// each exactly once.
func TestThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs three nodes for up to a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bin := buildBinaries(t)
	start := time.Now()

	userA, userC := newUserKey(t), newUserKey(t)
	var thread topic.Topic
	rand.Read(thread[:])

	a, b, c := newProc(t, bin, "a"), newProc(t, bin, "b"), newProc(t, bin, "c")
	generateKeys(t, a, b, c)
	a.writeConfig(t, []*proc{b}, keys.Public(userA))
	b.writeConfig(t, nil)
	c.writeConfig(t, []*proc{b}, keys.Public(userC))
	for _, n := range []*proc{b, a, c} {
		n.start(t)
	}
	for _, n := range []*proc{b, a, c} {
		n.waitListening(t)
	}
	t.Logf("three nodes up after %v", time.Since(start).Round(time.Millisecond))

	alice := connect(ctx, t, a, userA)
	carol := connect(ctx, t, c, userC)
	carol.send(ctx, t, wire.RegisterTopic{Topic: thread})
	// The sender keeps the conversation too (its client registers the
	// thread, as for any conversation): that is where C catches up from.
	alice.send(ctx, t, wire.RegisterTopic{Topic: thread})

	// The overlay forms by gossip through B: publish probes until C's
	// user sees one, then measure a fresh message.
	converged := time.Now()
	for i := 0; ; i++ {
		if time.Since(converged) > 45*time.Second {
			t.Fatalf("C's user got no probe within 45 s")
		}
		alice.send(ctx, t, wire.Topic{Topic: thread, Content: fmt.Appendf(nil, "probe %d", i)})
		if _, ok := carol.receive(thread, "probe ", time.Second); ok {
			break
		}
	}
	t.Logf("overlay formed %v after start", time.Since(converged).Round(time.Millisecond))

	sent := time.Now()
	alice.send(ctx, t, wire.Topic{Topic: thread, Content: []byte("hello carol")})
	if _, ok := carol.receive(thread, "hello carol", time.Second); !ok {
		t.Fatalf("C's user did not receive the message within 1 s")
	}
	t.Logf("A → C delivery: %v", time.Since(sent).Round(time.Microsecond))

	// C dies without a chance to flush anything.
	killed := time.Now()
	c.kill(t)
	carol.close()
	for i := range 5 {
		alice.send(ctx, t, wire.Topic{Topic: thread, Content: fmt.Appendf(nil, "offline %d", i)})
	}
	c.start(t)
	c.waitListening(t)
	restarted := time.Now()
	// Carol's device reconnects and asks for what it missed since it lost
	// the link; C's registration of the thread survived the crash. What C
	// fetches from A afterwards is pushed.
	carol = connect(ctx, t, c, userC)
	carol.send(ctx, t, wire.QueryTopicMessages{Topic: thread, Since: gossip.FromTime(killed)})
	got := carol.collect(thread, "offline ", 5, 40*time.Second)
	t.Logf("offline messages at C's user %v after C's restart", time.Since(restarted).Round(time.Millisecond))
	for i := range 5 {
		want := fmt.Sprintf("offline %d", i)
		if got[want] != 1 {
			t.Errorf("C's user received %q %d times, want once (all: %v)", want, got[want], got)
		}
	}
	if len(got) != 5 {
		t.Errorf("C's user received %d distinct offline messages, want 5: %v", len(got), got)
	}

	alice.close()
	carol.close()
	for _, n := range []*proc{a, b, c} {
		n.stop(t)
	}
	if msgs := storedMessages(t, b, thread); len(msgs) != 0 {
		t.Errorf("B (a relay without users) stored %d messages of the thread", len(msgs))
	}
	if msgs := storedMessages(t, c, thread); len(msgs) == 0 {
		t.Errorf("C stored no message of the thread: the storage check above proves nothing")
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "github.com/asmtp/asmtp/cmd/asmtpd", "github.com/asmtp/asmtp/cmd/asmtpd-cli")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

func newUserKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// proc is one asmtpd process and its directory.
type proc struct {
	name, bin, dir, password string
	id                       keys.PublicKey
	port                     int
	cmd                      *exec.Cmd
	exited                   chan error
}

func (p *proc) addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

func newProc(t *testing.T, bin, name string) *proc {
	t.Helper()
	p := &proc{name: name, bin: bin, dir: filepath.Join(t.TempDir(), name), password: "password of " + name, port: freePort(t)}
	if err := os.Mkdir(p.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd != nil && p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(p.dir, "asmtpd.log"))
			t.Logf("--- log of node %s ---\n%s", p.name, tail(b, 60))
		}
	})
	return p
}

// generateKeys runs generate-new-key for each node, in parallel (each
// costs a second of PBKDF2).
func generateKeys(t *testing.T, procs ...*proc) {
	t.Helper()
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			out, err := p.cli("generate-new-key", "--entropy-output", filepath.Join(p.dir, "entropy.txt"), "--password", p.password)
			if err != nil {
				errs[i] = err
				return
			}
			hexID, ok := strings.CutPrefix(strings.TrimSpace(out), "Public Identity: ")
			if !ok {
				errs[i] = fmt.Errorf("generate-new-key printed %q", out)
				return
			}
			p.id, errs[i] = keys.ParsePublicKey(hexID)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// writeConfig writes the node's config.yaml as an operator would: the
// default-config template edited only for the ports, known_peers and users.
func (p *proc) writeConfig(t *testing.T, peers []*proc, users ...keys.PublicKey) {
	t.Helper()
	cfg, err := p.cli("default-config")
	if err != nil {
		t.Fatal(err)
	}
	var peerList, userList []string
	for _, q := range peers {
		peerList = append(peerList, fmt.Sprintf("%s@%s", q.id, q.addr()))
	}
	for _, u := range users {
		userList = append(userList, u.String())
	}
	edits := []struct{ from, to string }{
		{`listen_address: "127.0.0.1:9800"`, fmt.Sprintf("listen_address: %q", p.addr())},
		{"known_peers: []", "known_peers: " + yamlList(peerList)},
		{"users: []", "users: " + yamlList(userList)},
		{`imap_listen_address: "127.0.0.1:1143"`, fmt.Sprintf(`imap_listen_address: "127.0.0.1:%d"`, freePort(t))},
		{`smtp_listen_address: "127.0.0.1:1587"`, fmt.Sprintf(`smtp_listen_address: "127.0.0.1:%d"`, freePort(t))},
		{`carddav_listen_address: "127.0.0.1:1808"`, fmt.Sprintf(`carddav_listen_address: "127.0.0.1:%d"`, freePort(t))},
	}
	for _, e := range edits {
		if !strings.Contains(cfg, e.from) {
			t.Fatalf("default-config has no %q to edit", e.from)
		}
		cfg = strings.Replace(cfg, e.from, e.to, 1)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "config.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

func yamlList(items []string) string {
	if len(items) == 0 {
		return "[]"
	}
	return `["` + strings.Join(items, `", "`) + `"]`
}

func (p *proc) cli(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(p.bin, "asmtpd-cli"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("asmtpd-cli %s: %w\n%s", args[0], err, stderr.Bytes())
	}
	return string(out), nil
}

// testPorts hands out the ports of the test processes. They are taken
// below the kernel's ephemeral range, where no listen(":0") of a test
// running beside this one (go test runs packages in parallel) can take a
// port between our check and the process's own bind; and one at a time,
// so that two processes of this binary never get the same one.
var testPorts = struct {
	sync.Mutex
	next int
}{}

// freePort returns a port nobody listens on, below the ephemeral range.
func freePort(t *testing.T) int {
	t.Helper()
	testPorts.Lock()
	defer testPorts.Unlock()
	lo, hi := portWindow()
	if testPorts.next < lo || testPorts.next >= hi {
		testPorts.next = lo + mrand.IntN((hi-lo)/2)
	}
	for range hi - lo {
		port := testPorts.next
		if testPorts.next++; testPorts.next >= hi {
			testPorts.next = lo
		}
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			l.Close()
			return port
		}
	}
	t.Fatalf("no free port in %d-%d", lo, hi)
	return 0
}

// portWindow is the 8000 ports below the start of the kernel's ephemeral
// range (/proc/sys/net/ipv4/ip_local_port_range; 32768 by default).
func portWindow() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 9024 {
				hi = n
			}
		}
	}
	return hi - 8000, hi
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	p.cmd = exec.Command(filepath.Join(p.bin, "asmtpd"), "--config", filepath.Join(p.dir, "config.yaml"), "--log-level", "debug")
	p.cmd.Env = append(os.Environ(), "ASMTPD_KEY_PASSWORD="+p.password)
	logFile, err := os.OpenFile(filepath.Join(p.dir, "asmtpd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan error, 1)
	go func() {
		p.exited <- p.cmd.Wait()
		logFile.Close()
	}()
}

func tail(b []byte, lines int) []byte {
	for i := len(b) - 2; i >= 0; i-- {
		if b[i] == '\n' {
			if lines--; lines == 0 {
				return b[i+1:]
			}
		}
	}
	return b
}

func (p *proc) waitListening(t *testing.T) {
	t.Helper()
	wait.Until(t, 15*time.Second, "node "+p.name+" listening on "+p.addr(), func() bool {
		select {
		case err := <-p.exited:
			t.Fatalf("node %s exited: %v", p.name, err)
		default:
		}
		c, err := net.DialTimeout("tcp", p.addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// stop sends SIGTERM and requires a clean exit within the 5 s budget.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("node %s exited with %v after SIGTERM", p.name, err)
		}
		t.Logf("node %s stopped in %v", p.name, time.Since(began).Round(time.Millisecond))
	case <-time.After(6 * time.Second):
		t.Errorf("node %s still running 6 s after SIGTERM", p.name)
	}
}

func storedMessages(t *testing.T, p *proc, thread topic.Topic) []store.Message {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(p.dir, "asmtpd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs, err := s.MessagesSince(ctx, thread, time.Time{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// client is a user's device linked to its node over the wire protocol.
type client struct {
	conn   *wire.Conn
	topics chan wire.Topic
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

func connect(ctx context.Context, t *testing.T, p *proc, key ed25519.PrivateKey) *client {
	t.Helper()
	raw, err := net.DialTimeout("tcp", p.addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := wire.Dial(ctx, raw, key, p.id)
	if err != nil {
		t.Fatalf("user link to %s: %v", p.name, err)
	}
	c := &client{conn: conn, topics: make(chan wire.Topic, 1024), done: make(chan struct{})}
	go c.read()
	return c
}

func (c *client) read() {
	defer close(c.done)
	for {
		m, err := c.conn.ReadMessage(context.Background())
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		if m, ok := m.(wire.Topic); ok {
			c.topics <- m
		}
	}
}

func (c *client) send(ctx context.Context, t *testing.T, m wire.Message) {
	t.Helper()
	if err := c.conn.WriteMessage(ctx, m); err != nil {
		t.Fatalf("send %T: %v", m, err)
	}
}

// receive waits for a Topic message on thread whose content starts with
// prefix, discarding others.
func (c *client) receive(thread topic.Topic, prefix string, timeout time.Duration) (wire.Topic, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case m := <-c.topics:
			if m.Topic == thread && strings.HasPrefix(string(m.Content), prefix) {
				return m, true
			}
		case <-timer.C:
			return wire.Topic{}, false
		}
	}
}

// collect counts, by content, the Topic messages on thread starting with
// prefix until want distinct ones arrived (and a second more passed, to
// catch duplicates) or timeout.
func (c *client) collect(thread topic.Topic, prefix string, want int, timeout time.Duration) map[string]int {
	got := make(map[string]int)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var grace <-chan time.Time
	for {
		select {
		case m := <-c.topics:
			if m.Topic == thread && strings.HasPrefix(string(m.Content), prefix) {
				got[string(m.Content)]++
				if len(got) == want && grace == nil {
					grace = time.After(time.Second)
				}
			}
		case <-grace:
			return got
		case <-deadline.C:
			return got
		}
	}
}

func (c *client) close() {
	c.conn.Close()
	<-c.done
}
