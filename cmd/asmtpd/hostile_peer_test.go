package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// hostilePeer is an attacker built on the wire package only: a node
// identity of its own, none of the node's code.
type hostilePeer struct {
	key ed25519.PrivateKey
}

func newHostilePeer(t *testing.T) *hostilePeer { return &hostilePeer{key: newUserKey(t)} }

// link dials target and completes the Noise handshake.
func (h *hostilePeer) link(ctx context.Context, target *proc) (*wire.Conn, error) {
	raw, err := net.DialTimeout("tcp", target.addr(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return wire.Dial(hctx, raw, h.key, target.id)
}

// gossip is a signed gossip of h subscribing to topics, at an address
// nobody listens on.
func (h *hostilePeer) gossip(t *testing.T, topics ...topic.Topic) wire.Gossip {
	t.Helper()
	subs := make([]gossip.Subscription, len(topics))
	for i, tp := range topics {
		subs[i] = gossip.Subscription{Topic: tp, Interest: 1}
	}
	g, err := gossip.New(h.key, gossip.FromTime(time.Now()), netip.MustParseAddrPort("127.0.0.1:1"), subs)
	if err != nil {
		t.Fatal(err)
	}
	return wire.Gossip{Gossip: g}
}

// learnTopics links to target, gossips, and returns the topics target's
// own gossip says it subscribes to: what any stranger can learn.
func (h *hostilePeer) learnTopics(ctx context.Context, t *testing.T, target *proc) []topic.Topic {
	t.Helper()
	wc, err := h.link(ctx, target)
	if err != nil {
		t.Fatalf("hostile link to %s: %v", target.name, err)
	}
	defer wc.Close()
	if err := wc.WriteMessage(ctx, h.gossip(t)); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		m, err := wc.ReadMessage(rctx)
		if err != nil {
			t.Fatalf("no gossip of %s within 15 s: %v", target.name, err)
		}
		g, ok := m.(wire.Gossip)
		if !ok || g.Gossip.ID != target.id || len(g.Gossip.Subscriptions) == 0 {
			continue
		}
		var ts []topic.Topic
		for _, s := range g.Gossip.Subscriptions {
			ts = append(ts, s.Topic)
		}
		return ts
	}
}

// floodResult is what a flood achieved.
type floodResult struct {
	sent      int   // messages written
	bytes     int64 // their content
	refusals  int   // re-links refused once the link had closed
	relinked  int   // re-links the target accepted
	firstDrop time.Duration
}

// flood sends size-byte random Topic messages on topics, round robin, as
// fast as target reads them, for d. When target closes the link, it links
// again with the same identity (a quarantined one is refused). With
// claim, each link starts with a gossip subscribing to the topics, so
// that the target may take h for one of its ring neighbours on them.
func (h *hostilePeer) flood(ctx context.Context, t *testing.T, target *proc, topics []topic.Topic, size int, d time.Duration, claim bool) floodResult {
	t.Helper()
	var r floodResult
	began := time.Now()
	end := began.Add(d)
	content := make([]byte, size)
	for time.Now().Before(end) {
		wc, err := h.link(ctx, target)
		if err != nil {
			r.refusals++
			time.Sleep(50 * time.Millisecond) // the attacker's pace, not a wait for a condition
			continue
		}
		r.relinked++
		if claim && wc.WriteMessage(ctx, h.gossip(t, topics...)) != nil {
			continue
		}
		go drain(wc)
		wctx, cancel := context.WithDeadline(ctx, end)
		for i := 0; ; i++ {
			rand.Read(content)
			err := wc.WriteMessage(wctx, wire.Topic{Topic: topics[i%len(topics)], Content: content})
			if err != nil {
				break
			}
			r.sent++
			r.bytes += int64(size)
		}
		cancel()
		wc.Close()
		if r.firstDrop == 0 && time.Now().Before(end) {
			r.firstDrop = time.Since(began)
		}
	}
	r.relinked-- // the first link
	return r
}

// drain reads and discards what the node sends, so that the link does
// not stall on our side.
func drain(wc *wire.Conn) {
	for {
		if _, err := wc.ReadMessage(context.Background()); err != nil {
			return
		}
	}
}

// dbSize is the size of a node's database files (database, WAL, shared
// memory index).
func dbSize(t *testing.T, p *proc) int64 {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(p.dir, "asmtpd.db*"))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil {
			total += fi.Size()
		}
	}
	return total
}

// logOf reads a node's log so far.
func logOf(t *testing.T, p *proc) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, "asmtpd.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// linkDowns returns the log lines of p saying its link to peer closed.
func linkDowns(t *testing.T, p, peer *proc) []string {
	t.Helper()
	var out []string
	for line := range strings.Lines(logOf(t, p)) {
		if strings.Contains(line, "link down") && strings.Contains(line, peer.id.String()) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// latency sends a mail from alice to bob and returns how long it took to
// show in bob's INBOX.
func (n *mailNet) latency(t *testing.T, limit time.Duration) (time.Duration, error) {
	t.Helper()
	out, err := n.py("sendwait", n.alice.json(), n.bob.json(), "latency-"+randHex(4), fmt.Sprint(limit.Seconds()))
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	var secs float64
	if _, err := fmt.Sscanf(strings.TrimSpace(out), "%g", &secs); err != nil {
		return 0, fmt.Errorf("sendwait printed %q", out)
	}
	return time.Duration(secs * float64(time.Second)), nil
}
