package main

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/wire"
)

// The node-abuse issue's Must-show, against real asmtpd processes, with
// attackers built on the wire package alone (hostile_peer_test.go).

// ★ A stranger links to bob's node, learns its topics from its gossip and
// floods them with 60 KiB of junk for 5 s. The node's files grow by at
// most 32 MiB, the stranger is quarantined (its re-links are refused),
// and mail from alice to bob arrives during the flood about as fast as
// before it.
func TestStrangerFloodIsBounded(t *testing.T) {
	n := startMailNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before, err := n.latency(t, 20*time.Second)
	if err != nil {
		t.Fatalf("mail before the flood: %v", err)
	}
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
	r := attacker.flood(ctx, t, n.c, topics, 60<<10, 5*time.Second)
	wg.Wait()
	grown := dbSize(t, n.c) - sizeBefore
	t.Logf("flood: %d messages (%.1f MiB) on %d topics written in 5 s; link closed after %v; %d re-links refused, %d accepted",
		r.sent, float64(r.bytes)/(1<<20), len(topics), r.firstDrop.Round(time.Millisecond), r.refusals, r.relinked)
	t.Logf("bob's node files grew by %.1f MiB; alice → bob %v before the flood, %v during it",
		float64(grown)/(1<<20), before.Round(time.Millisecond), during.Round(time.Millisecond))
	if grown > 32<<20 {
		t.Errorf("node files grew by %.1f MiB, want at most 32 MiB", float64(grown)/(1<<20))
	}
	if !strings.Contains(logOf(t, n.c), "peer quarantined") || r.refusals == 0 {
		t.Errorf("the flooding stranger was not quarantined (%d re-links refused)", r.refusals)
	}
	if duringErr != nil {
		for line := range strings.Lines(logOf(t, n.c)) {
			if strings.Contains(line, "quarantined") || strings.Contains(line, "strike") || strings.Contains(line, "bridge") || strings.Contains(line, "link down") {
				t.Log(strings.TrimSpace(line))
			}
		}
		t.Fatalf("mail during the flood: %v", duringErr)
	}
	if limit := 2*before + 2*time.Second; during > limit {
		t.Errorf("mail during the flood took %v, want at most %v (2 × %v before it + 2 s)", during, limit, before)
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
