package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// Issue 12's Must-show with real processes: alice on A, bob on C, dave (no
// contacts) on B; alice and bob add each other. With naming v2 (the
// default) mail flows both ways, the first mail included (it waits for
// bob's card), and to bob while his node is down. Then an outsider that
// links to every node as a node of its own collects their gossip, and
// learns no passport topic, no passport id, no pair topic of the two
// public passports, and no topic that only the two correspondents' nodes
// subscribe to.
func TestOutsiderLearnsNoPair(t *testing.T) {
	var dave mailAccount
	n := startMailNet(t, func(n *mailNet) {
		editConfig(t, n.b, [][2]string{{"enabled: false", "enabled: true"}}) // B serves dave
		dave = n.accountAdd(t, n.b, "dave")
	})
	n.mailBothWays(t)
	n.mailWhileOffline(t)

	ids := map[string]passport.Hash{"alice": addressID(t, n.alice), "bob": addressID(t, n.bob), "dave": addressID(t, dave)}
	alicePP, bobPP := passportFile(t, n.alicePassport), passportFile(t, filepath.Join(n.dir, "bob.passport"))
	aliceKey, _ := alicePP.SharedKey()
	bobKey, _ := bobPP.SharedKey()
	pair := topic.Derive(aliceKey, bobKey)

	subscribers := crawl(t, n.a, n.b, n.c)
	for tp, nodes := range subscribers {
		if _, ok := tp.Passport(); ok {
			t.Errorf("gossip of %v shows passport topic %s", nodes, tp)
		}
		for name, id := range ids {
			if bytes.Contains(tp[:], id[:]) {
				t.Errorf("gossip of %v shows %s's passport id in topic %s", nodes, name, tp)
			}
		}
		if tp == pair {
			t.Errorf("gossip of %v shows alice and bob's pair topic", nodes)
		}
		if len(nodes) == 2 && nodes[n.a.id] && nodes[n.c.id] {
			t.Errorf("topic %s is subscribed by alice's and bob's nodes only", tp)
		}
	}
	if !t.Failed() {
		t.Logf("outsider saw %d topics over 3 nodes; none names a passport or the pair", len(subscribers))
	}
}

// TestV1RelayBetweenV2Nodes: the only node alice's A and bob's C both know
// is B, a naming-v1 node (network.naming_v1, the project's v1 path, as an
// upstream or earlier node gossips). It still links and relays: the first
// mail (which waits for bob's card) and mail both ways arrive, and the
// outsider still finds no passport topic in A's and C's gossip.
func TestV1RelayBetweenV2Nodes(t *testing.T) {
	n := startMailNet(t, func(n *mailNet) {
		editConfig(t, n.b, [][2]string{{"naming_v1: false", "naming_v1: true"}})
	})
	n.mailBothWays(t)
	for tp, nodes := range crawl(t, n.a, n.c) { // B has no accounts: nothing to gossip
		if _, ok := tp.Passport(); ok && (nodes[n.a.id] || nodes[n.c.id]) {
			t.Errorf("v2 node gossips passport topic %s (%v)", tp, nodes)
		}
	}
}

// mailBothWays checks that mail flows from bob to alice too (startMailNet
// waited for alice's first mail to bob).
func (n *mailNet) mailBothWays(t *testing.T) {
	t.Helper()
	tok := "back" + randHex(3)
	if out, err := n.sendRaw(t, n.bob, n.alice.Address, plainMail(n.bob.Address, n.alice.Address, tok, "answer\r\n")); err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	if out, err := n.py("wait", n.alice.json(), tok, "1", "60"); err != nil {
		t.Fatalf("bob's mail not at alice within 60 s: %s", out)
	}
}

// mailWhileOffline sends alice's mail while bob's node C is down, waits
// until it waits on A, restarts C and waits for it at bob.
func (n *mailNet) mailWhileOffline(t *testing.T) {
	t.Helper()
	tok := "off" + randHex(3)
	n.c.stop(t)
	var raws [][]byte
	for i := range 3 {
		raws = append(raws, plainMail(n.alice.Address, n.bob.Address, fmt.Sprintf("%s-%d", tok, i), "while you were away\r\n"))
	}
	if out, err := n.sendRaw(t, n.alice, n.bob.Address, raws...); err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	n.waitStatus(t, n.a, "outbox: 0 pending", 1) // each tried while C is down
	n.c.start(t)
	n.c.waitListening(t)
	if out, err := n.py("wait", n.bob.json(), tok, "3", "60"); err != nil {
		t.Fatalf("mail sent while C was down not at bob 60 s after its restart: %s", out)
	}
}

// waitStatus polls `asmtpd-cli status` of p until want occurs count times.
func (n *mailNet) waitStatus(t *testing.T, p *proc, want string, count int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := n.cliEnv(t, p, "status", "--config", p.config())
		if strings.Count(out, want) >= count {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of %s: %q not %d times within 30 s:\n%s", p.name, want, count, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// crawl links to each node as an outsider and returns, for each topic
// their gossip shows, the nodes that subscribe to it.
func crawl(t *testing.T, procs ...*proc) map[topic.Topic]map[keys.PublicKey]bool {
	t.Helper()
	ctx := context.Background()
	h := newHostilePeer(t)
	out := make(map[topic.Topic]map[keys.PublicKey]bool)
	for _, p := range procs {
		for _, tp := range h.learnTopics(ctx, t, p) {
			if out[tp] == nil {
				out[tp] = make(map[keys.PublicKey]bool)
			}
			out[tp][p.id] = true
		}
	}
	return out
}

// addressID is the passport id of a pseudo-address.
func addressID(t *testing.T, a mailAccount) passport.Hash {
	t.Helper()
	local, _, _ := strings.Cut(a.Address, "@")
	id, err := passport.ParseHash(local)
	if err != nil {
		t.Fatalf("address %s: %v", a.Address, err)
	}
	return id
}

func passportFile(t *testing.T, path string) *passport.Passport {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := passport.Import(b, time.Now())
	if err != nil {
		t.Fatalf("passport %s: %v", path, err)
	}
	return p
}
