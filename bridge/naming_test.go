package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/mailtext"
	"github.com/asmtp/asmtp/internal/wait"
)

// sendAs sends one message per subject from login's account with smtplib.
func sendAs(t testing.TB, s *site, login, password, from, to string, subjects ...string) {
	t.Helper()
	var specs []map[string]any
	for _, subj := range subjects {
		specs = append(specs, map[string]any{"envelope": from, "from": from, "to": []string{to}, "subject": subj, "text": "hello"})
	}
	f := filepath.Join(t.TempDir(), "spec.json")
	data, _ := json.Marshal(specs)
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	host, port := hostPort(s.bridge.SMTPAddr())
	python(t, "send", host, port, login, password, f, t.TempDir())
}

// naming is how account reaches contact id on site s.
func (s *site) naming(account string, id passport.Hash) accounts.Naming {
	s.t.Helper()
	nm, err := s.Reg.ContactNaming(context.Background(), account, id)
	if err != nil {
		s.t.Fatal(err)
	}
	return nm
}

// subscribes reports whether the node's gossip lists t.
func subscribes(n *node.Node, t topic.Topic) bool {
	for _, sub := range n.Gossip().Subscriptions {
		if sub.Topic == t {
			return true
		}
	}
	return false
}

// TestNamingV2FirstContact: alice (node A) and bob (node C) add each
// other; their cards cross through the intro bucket, mail flows both ways
// on their inboxes, and neither node subscribes to the pair topic.
func TestNamingV2FirstContact(t *testing.T) {
	relay := startRelay(t)
	a, c := newSite(t, relay), newSite(t, relay)
	a.namingV2, c.namingV2 = true, true
	a.delivery.RetryWindow = time.Minute // the first mail waits for the card
	alice, alicePW := a.AddAccount(t, "alice")
	bob, bobPW := c.AddAccount(t, "bob")
	befriend(t, a, "alice", "Alice", c, "bob", "Bob")
	a.start()
	c.start()
	aliceAddr, bobAddr := alice.Address("asmtp").String(), bob.Address("asmtp").String()

	sendAs(t, a, "alice", alicePW, aliceAddr, bobAddr, "first contact")
	wait.Until(t, 30*time.Second, "alice's first mail at bob", func() bool { return c.inboxCount("bob") == 1 }, a.stats, c.stats)
	sendAs(t, c, "bob", bobPW, bobAddr, aliceAddr, "the answer")
	wait.Until(t, 30*time.Second, "bob's answer at alice", func() bool { return a.inboxCount("alice") == 1 }, a.stats, c.stats)

	for _, tc := range []struct {
		s       *site
		account string
		contact passport.Hash
	}{{a, "alice", bob.Passport}, {c, "bob", alice.Passport}} {
		nm := tc.s.naming(tc.account, tc.contact)
		if nm.Scheme != accounts.SchemeV2 || nm.Card == nil {
			t.Fatalf("%s reaches %s by %v (card %v), want v2", tc.account, tc.contact, nm.Scheme, nm.Card)
		}
	}
	if got := a.naming("alice", bob.Passport).Card.Node; got != c.node.ID() {
		t.Errorf("bob's card names node %s, want C %s", got, c.node.ID())
	}
	ab, err := a.Reg.Contact(context.Background(), "alice", bob.Passport)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*site{"A": a, "C": c} {
		if subscribes(s.node, ab.Topic) {
			t.Errorf("node %s subscribes to alice and bob's pair topic", name)
		}
	}
	if got := header(t, c.inbox("bob")[0], mailtext.Sender); got != alice.Passport.String() {
		t.Errorf("bob's mail: %s %q, want alice %s", mailtext.Sender, got, alice.Passport)
	}
	checkV2Gossip(t, map[string]*site{"A": a, "C": c}, c, "bob", bob.Passport)
}

// checkV2Gossip checks what the sites' gossip shows: no passport topic on
// any node, and the inbox of owner (on site at) only on at's node.
func checkV2Gossip(t *testing.T, sites map[string]*site, at *site, owner string, id passport.Hash) {
	t.Helper()
	seed, err := at.Reg.InboxSeed(context.Background(), at.NodeKey, owner)
	if err != nil {
		t.Fatal(err)
	}
	inbox := topic.Inbox(seed, topic.InboxDay(time.Now()))
	for name, s := range sites {
		for _, sub := range s.node.Gossip().Subscriptions {
			if pid, ok := sub.Topic.Passport(); ok {
				t.Errorf("node %s gossips passport topic %s", name, pid)
			}
		}
		if got := subscribes(s.node, inbox); got != (s == at) {
			t.Errorf("node %s subscribes to %s's inbox: %v", name, owner, got)
		}
	}
	// Started within the last hour, the node still subscribes to the past
	// days' inboxes it caught up (§16.6).
	yesterday := topic.Inbox(seed, topic.InboxDay(time.Now())-1)
	if !subscribes(at.node, yesterday) {
		t.Errorf("%s's node does not subscribe to yesterday's inbox while catching up", owner)
	}
	if subscribes(at.node, topic.IntroBucket(id, 0)) != true {
		t.Errorf("%s's node does not subscribe to its intro bucket", owner)
	}
}

// TestNamingV2RecipientOffline: mail to a v2 contact whose node is down
// waits on the sender's node and reaches the recipient when it is back,
// once each.
func TestNamingV2RecipientOffline(t *testing.T) {
	relay := startRelay(t)
	a, c := newSite(t, relay), newSite(t, relay)
	a.namingV2, c.namingV2 = true, true
	a.delivery.RetryWindow = time.Minute
	alice, pw := a.AddAccount(t, "alice")
	bob, _ := c.AddAccount(t, "bob")
	befriend(t, a, "alice", "Alice", c, "bob", "Bob")
	a.start()
	c.start()
	from, to := alice.Address("asmtp").String(), bob.Address("asmtp").String()
	sendAs(t, a, "alice", pw, from, to, "before")
	wait.Until(t, 30*time.Second, "the first mail", func() bool { return c.inboxCount("bob") == 1 }, a.stats, c.stats)

	c.stop()
	subjects := []string{"offline 1", "offline 2", "offline 3"}
	sendAs(t, a, "alice", pw, from, to, subjects...)
	wait.Until(t, 10*time.Second, "the mail on alice's node", func() bool {
		q, err := a.Mail.Outbox(context.Background(), "alice")
		if err != nil || len(q) != len(subjects) {
			return false
		}
		for _, it := range q {
			if it.HandedAt.IsZero() {
				return false
			}
		}
		return true
	})
	c.start()
	want := 1 + len(subjects)
	wait.Until(t, 30*time.Second, "the mail sent while bob was offline", func() bool { return c.inboxCount("bob") >= want },
		func() string { return subjects2(t, c) }, a.stats, c.stats)
	wait.Until(t, 10*time.Second, "alice's outbox empty", func() bool {
		q, err := a.Mail.Outbox(context.Background(), "alice")
		return err == nil && len(q) == 0
	})
	counts := countSubjects(t, c.inbox("bob"))
	for _, s := range subjects {
		if counts[s] != 1 {
			t.Errorf("%q arrived %d times, want once", s, counts[s])
		}
	}
}

// TestNamingV1Fallback: bob's bridge speaks only v1, so alice's card is
// never answered; after CardWait bob is a v1 contact of alice's, and mail
// flows on the pair topic.
func TestNamingV1Fallback(t *testing.T) {
	relay := startRelay(t)
	a, c := newSite(t, relay), newSite(t, relay)
	a.namingV2, a.cardWait = true, 2*time.Second
	alice, alicePW := a.AddAccount(t, "alice")
	bob, _ := c.AddAccount(t, "bob")
	befriend(t, a, "alice", "Alice", c, "bob", "Bob")
	a.start()
	c.start()
	sendAs(t, a, "alice", alicePW, alice.Address("asmtp").String(), bob.Address("asmtp").String(), "to a v1 contact")
	wait.Until(t, 30*time.Second, "alice's mail at bob", func() bool { return c.inboxCount("bob") == 1 }, a.stats, c.stats)
	if nm := a.naming("alice", bob.Passport); nm.Scheme != accounts.SchemeV1 {
		t.Fatalf("alice reaches bob by %v, want v1", nm.Scheme)
	}
	ab, err := a.Reg.Contact(context.Background(), "alice", bob.Passport)
	if err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "A gossips the pair topic of a v1 contact", func() bool { return subscribes(a.node, ab.Topic) })

	// Bob's bridge moves to v2: his card reaches alice, who drops the pair topic.
	c.stop()
	c.namingV2 = true
	c.start()
	wait.Until(t, 30*time.Second, "bob a v2 contact of alice's again", func() bool {
		return a.naming("alice", bob.Passport).Scheme == accounts.SchemeV2
	}, a.stats, c.stats)
	wait.Until(t, 10*time.Second, "A's gossip without the pair topic", func() bool { return !subscribes(a.node, ab.Topic) })
	if s := fmt.Sprint(accounts.SchemeV1); s != "v1" {
		t.Errorf("accounts.SchemeV1 prints %q", s)
	}
}

// TestNamingV2SameNode: two accounts of one node exchange cards and mail
// through the node itself.
func TestNamingV2SameNode(t *testing.T) {
	a := newSite(t, startRelay(t))
	a.namingV2 = true
	a.delivery.RetryWindow = time.Minute
	alice, alicePW := a.AddAccount(t, "alice")
	bob, bobPW := a.AddAccount(t, "bob")
	befriend(t, a, "alice", "Alice", a, "bob", "Bob")
	a.start()
	aliceAddr, bobAddr := alice.Address("asmtp").String(), bob.Address("asmtp").String()
	sendAs(t, a, "alice", alicePW, aliceAddr, bobAddr, "next door")
	wait.Until(t, 30*time.Second, "alice's mail at bob", func() bool { return a.inboxCount("bob") == 1 }, a.stats)
	sendAs(t, a, "bob", bobPW, bobAddr, aliceAddr, "hello neighbour")
	wait.Until(t, 30*time.Second, "bob's mail at alice", func() bool { return a.inboxCount("alice") == 1 }, a.stats)
	if nm := a.naming("alice", bob.Passport); nm.Scheme != accounts.SchemeV2 {
		t.Errorf("alice reaches bob by %v, want v2", nm.Scheme)
	}
}
