package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
	"github.com/asmtp/asmtp/internal/wait"
)

// The node-abuse issue's Must-show, against real asmtpd processes, with
// attackers built on the wire package alone (hostile_peer_test.go).

// ★ A stranger links to bob's node, learns its topics from its gossip and
// floods them with 60 KiB of junk for 5 s; then another does the same
// claiming, in its own gossip, to subscribe to those topics. Each time the
// node's files grow by at most 32 MiB, the stranger is quarantined (its
// re-links are refused), and mail from alice to bob arrives during the
// flood about as fast as before it.
func TestStrangerFloodIsBounded(t *testing.T) {
	n := startMailNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	before, err := n.latency(t, 20*time.Second)
	if err != nil {
		t.Fatalf("mail before the flood: %v", err)
	}
	for _, c := range []struct {
		name  string
		claim bool
	}{{"silent stranger", false}, {"stranger claiming the topics", true}} {
		attacker := newHostilePeer(t)
		topics := attacker.learnTopics(ctx, t, n.c)
		sizeBefore := dbSize(t, n.c)
		var during time.Duration
		var duringErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			// Mail sent one second into the flood, once the junk is flowing.
			time.Sleep(time.Second)
			during, duringErr = n.latency(t, 30*time.Second)
		})
		r := attacker.flood(ctx, t, n.c, topics, 60<<10, 5*time.Second, c.claim)
		wg.Wait()
		grown := dbSize(t, n.c) - sizeBefore
		t.Logf("%s: %d messages (%.1f MiB) on %d topics written in 5 s; link closed after %v; %d re-links refused, %d accepted",
			c.name, r.sent, float64(r.bytes)/(1<<20), len(topics), r.firstDrop.Round(time.Millisecond), r.refusals, r.relinked)
		t.Logf("%s: bob's node files grew by %.1f MiB; alice → bob %v before the floods, %v during this one",
			c.name, float64(grown)/(1<<20), before.Round(time.Millisecond), during.Round(time.Millisecond))
		if grown > 32<<20 {
			t.Errorf("%s: node files grew by %.1f MiB, want at most 32 MiB", c.name, float64(grown)/(1<<20))
		}
		if !strings.Contains(logOf(t, n.c), "peer="+keys.Public(attacker.key).String()+" why=\"storage quota\"") || r.refusals == 0 {
			t.Errorf("%s: not quarantined for its quota (%d re-links refused)", c.name, r.refusals)
		}
		// Bob's bridge reports the junk it cannot open (bridge/inbound).
		if !strings.Contains(logOf(t, n.c), `msg="message reported as not opening" node=`) ||
			!strings.Contains(logOf(t, n.c), "peer="+keys.Public(attacker.key).String()+" bytes=") {
			t.Errorf("%s: bob's bridge reported none of the junk to the node", c.name)
		}
		if duringErr != nil {
			t.Errorf("%s: mail during the flood: %v", c.name, duringErr)
		} else if limit := 2*before + 2*time.Second; during > limit {
			t.Errorf("%s: mail during the flood took %v, want at most %v (2 × %v before + 2 s)", c.name, during, limit, before)
		}
	}
}

// ★ 140 throw-away identities link to the relay B (each gossips, then
// idles), then 70 TCP connections sit idle on its port. B's links to the
// honest nodes A and C never close, and mail from alice on A to bob on C
// arrives within 5 s during the attack.
func TestIdentityFloodKeepsHonestLinks(t *testing.T) {
	n := startMailNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	downsBefore := len(linkDowns(t, n.b, n.a)) + len(linkDowns(t, n.b, n.c))

	var mu sync.Mutex
	var held []*wire.Conn
	linked, refused := 0, 0
	var wg sync.WaitGroup
	for i := range 140 {
		if i%20 == 0 {
			wg.Wait() // twenty at a time, as fast as B answers
		}
		wg.Go(func() {
			h := newHostilePeer(t)
			wc, err := h.link(ctx, n.b)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused++
				return
			}
			if wc.WriteMessage(ctx, h.gossip(t)) != nil {
				refused++
				wc.Close()
				return
			}
			linked++
			held = append(held, wc)
			go drain(wc)
		})
	}
	wg.Wait()
	defer func() {
		for _, wc := range held {
			wc.Close()
		}
	}()
	var idle []net.Conn
	for range 70 {
		c, err := net.DialTimeout("tcp", n.b.addr(), 5*time.Second)
		if err == nil {
			idle = append(idle, c)
		}
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	took, err := n.latency(t, 5*time.Second)
	downs := append(linkDowns(t, n.b, n.a), linkDowns(t, n.b, n.c)...)
	t.Logf("attack: %d of 140 identities handshook (%d refused), %d refused for room after it; %d idle connections opened; alice → bob %v; B's honest links closed %d times",
		linked, refused, strings.Count(logOf(t, n.b), "inbound connection refused"), len(idle), took.Round(time.Millisecond), len(downs)-downsBefore)
	if len(downs) > downsBefore {
		t.Errorf("B closed its links to the honest nodes during the attack:\n%s", strings.Join(downs[downsBefore:], "\n"))
	}
	if err != nil {
		t.Errorf("mail alice → bob during the attack: %v (want within 5 s)", err)
	}
}

// ★ A peer that stops reading (SIGSTOP) delays no other link. Node X has
// a local user (a wire client) and three subscribers of its thread: the
// asmtpd process S, and the raw peers Q and R. Once the overlay formed, S
// is stopped and X's user publishes 60 KiB messages as fast as X takes
// them, for 6 s, filling S's socket buffers and link queue, while Q sends
// a small timestamped probe every 20 ms that X relays to R. No probe
// takes more than 100 ms longer than the slowest one before the stall.
func TestStoppedPeerDelaysNoOtherLink(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two asmtpd processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := buildBinaries(t)
	x, s := newProc(t, bin, "x"), newProc(t, bin, "s")
	generateKeys(t, x, s)
	userX, userS := newUserKey(t), newUserKey(t)
	x.writeConfig(t, nil, keys.Public(userX))
	s.writeConfig(t, []*proc{x}, keys.Public(userS))
	for _, p := range []*proc{x, s} {
		editConfig(t, p, [][2]string{
			{`minimum_time_elapsed: "10s"`, `minimum_time_elapsed: "1s"`},
			{"enabled: true", "enabled: false"},
		})
	}
	// A short queue fills sooner; the behaviour is the same with 256.
	editConfig(t, x, [][2]string{{"message_queue_size: 256", "message_queue_size: 32"}})
	for _, p := range []*proc{x, s} {
		p.start(t)
		p.waitListening(t)
	}
	var thread topic.Topic
	rand.Read(thread[:])
	ux, us := connect(ctx, t, x, userX), connect(ctx, t, s, userS)
	defer ux.close()
	defer us.close()
	ux.send(ctx, t, wire.RegisterTopic{Topic: thread})
	us.send(ctx, t, wire.RegisterTopic{Topic: thread})

	probes := newProbeSink()
	q, r := newHostilePeer(t), newHostilePeer(t)
	qc := q.subscribe(ctx, t, x, thread, nil)
	r.subscribe(ctx, t, x, thread, probes.receive)
	// The overlay is up once S's user gets X's user's messages and R gets
	// Q's probes.
	i := 0
	wait.Until(t, 45*time.Second, "the overlay of X, S, Q and R", func() bool {
		i++
		ux.send(ctx, t, wire.Topic{Topic: thread, Content: fmt.Appendf(nil, "hello s %d", i)})
		sendProbe(ctx, t, qc, thread)
		_, ok := us.receive(thread, "hello s", 500*time.Millisecond)
		return ok && probes.count() > 0
	})
	baseline := probeFor(ctx, t, qc, thread, probes, 2*time.Second, nil)

	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer s.cmd.Process.Signal(syscall.SIGCONT)
	var published int64
	stall := probeFor(ctx, t, qc, thread, probes, 6*time.Second, func(stop <-chan struct{}) {
		content := make([]byte, 60<<10)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			binary.BigEndian.PutUint64(content, uint64(i))
			if ux.conn.WriteMessage(ctx, wire.Topic{Topic: thread, Content: content}) != nil {
				return
			}
			published += int64(len(content))
		}
	})
	t.Logf("probe Q → X → R: %d before the stall, max %v; %d during it, max %v, median %v; X's user published %.1f MiB meanwhile",
		len(baseline), maxOf(baseline), len(stall), maxOf(stall), median(stall), float64(published)/(1<<20))
	if published < 16<<20 {
		t.Errorf("only %.1f MiB published while S was stopped: its buffers may not have filled", float64(published)/(1<<20))
	}
	if limit := maxOf(baseline) + 100*time.Millisecond; maxOf(stall) > limit {
		t.Errorf("a probe took %v while S was stopped, want at most %v (slowest before + 100 ms)", maxOf(stall), limit)
	}
}

// subscribe links h to target, announces a gossip subscribing to thread
// and reads what target sends, handing Topic messages to onTopic.
func (h *hostilePeer) subscribe(ctx context.Context, t *testing.T, target *proc, thread topic.Topic, onTopic func(wire.Topic)) *wire.Conn {
	t.Helper()
	wc, err := h.link(ctx, target)
	if err != nil {
		t.Fatalf("link to %s: %v", target.name, err)
	}
	t.Cleanup(func() { wc.Close() })
	if err := wc.WriteMessage(ctx, h.gossip(t, thread)); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			m, err := wc.ReadMessage(context.Background())
			if err != nil {
				return
			}
			if tm, ok := m.(wire.Topic); ok && onTopic != nil {
				onTopic(tm)
			}
		}
	}()
	return wc
}

// probeSink records when each probe (content "probe" ‖ unix nanoseconds
// of its sending) arrives.
type probeSink struct {
	mu    sync.Mutex
	delay map[int64]time.Duration
}

func newProbeSink() *probeSink { return &probeSink{delay: make(map[int64]time.Duration)} }

func (p *probeSink) receive(m wire.Topic) {
	sent, ok := bytes.CutPrefix(m.Content, []byte("probe"))
	if !ok || len(sent) != 8 {
		return
	}
	at := int64(binary.BigEndian.Uint64(sent))
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dup := p.delay[at]; !dup {
		p.delay[at] = time.Since(time.Unix(0, at))
	}
}

func (p *probeSink) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.delay)
}

func sendProbe(ctx context.Context, t *testing.T, qc *wire.Conn, thread topic.Topic) int64 {
	t.Helper()
	at := time.Now().UnixNano()
	content := binary.BigEndian.AppendUint64([]byte("probe"), uint64(at))
	if err := qc.WriteMessage(ctx, wire.Topic{Topic: thread, Content: content}); err != nil {
		t.Fatalf("probe: %v", err)
	}
	return at
}

// probeFor sends a probe every 20 ms for d, with load running beside
// (until it is told to stop), and returns the delays of those probes; a
// probe that did not arrive within a second after the last was sent
// counts as that late.
func probeFor(ctx context.Context, t *testing.T, qc *wire.Conn, thread topic.Topic, sink *probeSink, d time.Duration, load func(stop <-chan struct{})) []time.Duration {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if load != nil {
		wg.Go(func() { load(stop) })
	}
	var sent []int64
	tick := time.NewTicker(20 * time.Millisecond)
	end := time.Now().Add(d)
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		for time.Now().Before(end) {
			at := time.Now().UnixNano()
			content := binary.BigEndian.AppendUint64([]byte("probe"), uint64(at))
			if qc.WriteMessage(ctx, wire.Topic{Topic: thread, Content: content}) != nil {
				return
			}
			sent = append(sent, at)
			<-tick.C
		}
	}()
	<-sendDone
	tick.Stop()
	close(stop)
	wg.Wait()
	wait.Poll(time.Second, func() bool { return sink.has(sent) })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	out := make([]time.Duration, len(sent))
	for i, at := range sent {
		if dl, ok := sink.delay[at]; ok {
			out[i] = dl
		} else {
			out[i] = time.Since(time.Unix(0, at))
		}
	}
	return out
}

func (p *probeSink) has(sent []int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, at := range sent {
		if _, ok := p.delay[at]; !ok {
			return false
		}
	}
	return true
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m.Round(time.Millisecond)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}
