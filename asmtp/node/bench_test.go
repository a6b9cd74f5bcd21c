package node

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// rawPeer is a bare wire link posing as a node subscribed to some topics:
// enough to load a real node without running another one.
type rawPeer struct {
	key ed25519.PrivateKey
	wc  *wire.Conn
}

// dialRawPeer connects to the node at addr, announces a gossip subscribing
// to topics and drains what the node sends, handing Topic messages to
// onTopic (if set).
func dialRawPeer(t testing.TB, addr string, node keys.PublicKey, topics []topic.Topic, onTopic func(wire.Topic)) *rawPeer {
	t.Helper()
	p := &rawPeer{key: newKey(t)}
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if p.wc, err = wire.Dial(ctx, raw, p.key, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.wc.Close() })
	subs := make([]gossip.Subscription, len(topics))
	for i, tp := range topics {
		subs[i] = gossip.Subscription{Topic: tp, Interest: 1}
	}
	// The address is never dialled: the node reuses this link.
	g, err := gossip.New(p.key, gossip.FromTime(time.Now()), netip.MustParseAddrPort("127.0.0.1:1"), subs)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.wc.WriteMessage(ctx, wire.Gossip{Gossip: g}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			m, err := p.wc.ReadMessage(context.Background())
			if err != nil {
				return
			}
			if tm, ok := m.(wire.Topic); ok && onTopic != nil {
				onTopic(tm)
			}
		}
	}()
	return p
}

// ★ Relay throughput through one node over loopback: a raw peer sends
// Topic messages to the node, which forwards each (its ring rule: from one
// ring neighbour to the other) to a second raw peer. "stored": a local
// user registered the topic, so every message is also written to SQLite
// (synchronous=NORMAL); "relay-only": the node subscribes without storing.
func BenchmarkRelay(b *testing.B) {
	for _, size := range []int{1 << 10, 60 << 10} {
		for _, stored := range []bool{true, false} {
			mode := map[bool]string{true: "stored", false: "relay-only"}[stored]
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, mode), func(b *testing.B) { benchmarkRelay(b, size, stored) })
		}
	}
}

func benchmarkRelay(b *testing.B, size int, stored bool) {
	cfg, user := testConfig(b, b.TempDir())
	cfg.GossipInterval = time.Hour // keep gossip out of the measurement
	n := start(b, cfg, user)
	tp := topic.Topic{0xbe, 1}
	if stored {
		if err := n.session(b).Register(context.Background(), tp); err != nil {
			b.Fatal(err)
		}
	} else {
		n.subscribe(tp)
	}
	got := make(chan struct{}, 1024)
	src := dialRawPeer(b, n.Addr().String(), n.ID(), []topic.Topic{tp}, nil)
	dialRawPeer(b, n.Addr().String(), n.ID(), []topic.Topic{tp}, func(wire.Topic) { got <- struct{}{} })
	waitFor(b, 5*time.Second, "ring of two raw peers", func() bool {
		succ, pred := n.overlay.ring(tp)
		return len(succ) == 2 && len(pred) == 2
	})

	content := make([]byte, size)
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	go func() {
		for i := range b.N {
			binary.BigEndian.PutUint64(content, uint64(i)) // distinct messages
			if err := src.wc.WriteMessage(ctx, wire.Topic{Topic: tp, Content: content}); err != nil {
				return
			}
		}
	}()
	timeout := time.After(time.Minute)
	for i := range b.N {
		select {
		case <-got:
		case <-timeout:
			b.Fatalf("relayed %d of %d messages within a minute", i, b.N)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

const rssChildEnv = "ASMTP_NODE_RSS_CHILD"

// ★ The resident memory of one node with 100 peer links. The node runs in
// a child process (this test binary re-executed) so that its RSS is its
// own; the 100 peers are raw links from this process, each subscribed to
// one of the node's ten topics.
func TestRSSWith100Peers(t *testing.T) {
	if os.Getenv(rssChildEnv) != "" {
		runRSSChild(t)
		return
	}
	if testing.Short() {
		t.Skip("spawns a node process")
	}
	const peers, maxRSS = 100, 256 << 20
	cmd := exec.Command(os.Args[0], "-test.run=^TestRSSWith100Peers$")
	cmd.Env = append(os.Environ(), rssChildEnv+"="+t.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close() // the child stops when its stdin closes
		cmd.Wait()
	}()
	var addr string
	var id keys.PublicKey
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if f := strings.Fields(lines.Text()); len(f) == 3 && f[0] == "NODE" {
			addr = f[1]
			if id, err = keys.ParsePublicKey(f[2]); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if addr == "" {
		t.Fatal("child did not report its address")
	}
	baseline := rssOf(t, cmd.Process.Pid)
	for i := range peers {
		dialRawPeer(t, addr, id, []topic.Topic{{0x55, byte(i % 10)}}, nil)
	}
	time.Sleep(3 * time.Second) // a few gossip rounds over all links
	rss := rssOf(t, cmd.Process.Pid)
	if _, err := stdin.Write([]byte("links?\n")); err != nil {
		t.Fatal(err)
	}
	if !lines.Scan() {
		t.Fatal("child did not report its links")
	}
	if got := lines.Text(); got != fmt.Sprintf("LINKS %d", peers) {
		t.Fatalf("child reports %q, want %d links", got, peers)
	}
	t.Logf("node RSS: %.1f MiB idle, %.1f MiB with %d peer links (%.0f KiB per link)",
		float64(baseline)/(1<<20), float64(rss)/(1<<20), peers, float64(rss-baseline)/peers/1024)
	if rss > maxRSS {
		t.Fatalf("RSS %d MiB over %d MiB", rss>>20, maxRSS>>20)
	}
}

// runRSSChild runs the measured node until stdin closes.
func runRSSChild(t *testing.T) {
	cfg, user := testConfig(t, os.Getenv(rssChildEnv))
	cfg.GossipInterval = 500 * time.Millisecond
	// The raw peers arrive as strangers, who may take only three quarters
	// of the pool (makeRoomLocked).
	cfg.MaxConnections = 200
	n := start(t, cfg, user)
	s := n.session(t)
	for i := range 10 {
		if err := s.Register(context.Background(), topic.Topic{0x55, byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("NODE %s %s\n", n.Addr(), n.ID())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Printf("LINKS %d\n", n.Stats().Links)
	}
}

// rssOf reads a process's resident set size from /proc.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}
