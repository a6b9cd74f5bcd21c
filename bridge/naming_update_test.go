package bridge

import (
	"context"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/card"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/noise"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
	"github.com/asmtp/asmtp/internal/wait"
)

// v2Pair starts alice (site a) and bob (site c), v2 contacts of each
// other, and waits for a first mail each way.
func v2Pair(t *testing.T) (a, c *site, alice, bob accounts.Account, alicePW, bobPW string) {
	t.Helper()
	relay := startRelay(t)
	a, c = newSite(t, relay), newSite(t, relay)
	a.namingV2, c.namingV2 = true, true
	// No periodic passport lookup: what the contact learns of a rotation
	// comes from the passport update on its inbox.
	a.refresh, c.refresh = time.Hour, time.Hour
	a.delivery.RetryWindow, c.delivery.RetryWindow = time.Minute, time.Minute
	alice, alicePW = a.AddAccount(t, "alice")
	bob, bobPW = c.AddAccount(t, "bob")
	befriend(t, a, "alice", "Alice", c, "bob", "Bob")
	a.start()
	c.start()
	sendAs(t, a, "alice", alicePW, alice.Address("asmtp").String(), bob.Address("asmtp").String(), "first")
	wait.Until(t, 30*time.Second, "alice's first mail at bob", func() bool { return c.inboxCount("bob") == 1 }, a.stats, c.stats)
	sendAs(t, c, "bob", bobPW, bob.Address("asmtp").String(), alice.Address("asmtp").String(), "answer")
	wait.Until(t, 30*time.Second, "bob's answer at alice", func() bool { return a.inboxCount("alice") == 1 }, a.stats, c.stats)
	return a, c, alice, bob, alicePW, bobPW
}

// TestNamingV2PassportUpdate: alice rotates her shared key; her passport
// travels sealed to bob's inbox (no passport topic in v2), bob takes it,
// and mail flows both ways with the new key.
func TestNamingV2PassportUpdate(t *testing.T) {
	a, c, alice, bob, alicePW, bobPW := v2Pair(t)
	ctx := context.Background()
	rotated, err := a.Reg.RotateSharedKey(ctx, a.NodeKey, "alice")
	if err != nil {
		t.Fatal(err)
	}
	newKey := accountstest.OwnSharedKey(t, rotated)
	if newKey == accountstest.OwnSharedKey(t, alice) {
		t.Fatal("the rotation kept the shared key")
	}
	wait.Until(t, 30*time.Second, "bob holds alice's new passport", func() bool {
		ct, err := c.Reg.Contact(ctx, "bob", alice.Passport)
		return err == nil && ct.SharedKey == newKey
	}, a.stats, c.stats)

	aliceAddr, bobAddr := alice.Address("asmtp").String(), bob.Address("asmtp").String()
	sendAs(t, a, "alice", alicePW, aliceAddr, bobAddr, "after rotating")
	wait.Until(t, 30*time.Second, "alice's mail after her rotation at bob", func() bool { return c.inboxCount("bob") == 2 }, a.stats, c.stats)
	sendAs(t, c, "bob", bobPW, bobAddr, aliceAddr, "to the new key")
	wait.Until(t, 30*time.Second, "bob's mail to alice's new key", func() bool { return a.inboxCount("alice") == 2 }, a.stats, c.stats)
}

// TestNamingV2RemoveContactNewSeed: alice removes carol, with her daemon
// running or stopped; her node draws a new inbox seed, stops subscribing
// to the inbox carol computes from the old one, and sends the new seed to
// bob only, whose mail still arrives.
func TestNamingV2RemoveContactNewSeed(t *testing.T) {
	for _, stopped := range []bool{false, true} {
		name := "running"
		if stopped {
			name = "stopped"
		}
		t.Run(name, func(t *testing.T) { removeContactNewSeed(t, stopped) })
	}
}

func removeContactNewSeed(t *testing.T, stopped bool) {
	a, c, alice, bob, _, bobPW := v2Pair(t)
	d := newSite(t, a.peers...)
	d.namingV2, d.refresh = true, time.Hour
	carol, carolPW := d.AddAccount(t, "carol")
	befriend(t, a, "alice", "Alice", d, "carol", "Carol")
	d.start()
	sendAs(t, d, "carol", carolPW, carol.Address("asmtp").String(), alice.Address("asmtp").String(), "from carol")
	wait.Until(t, 30*time.Second, "carol's mail at alice", func() bool { return a.inboxCount("alice") == 2 }, a.stats, d.stats)

	ctx := context.Background()
	oldSeed, err := a.Reg.InboxSeed(ctx, a.NodeKey, "alice")
	if err != nil {
		t.Fatal(err)
	}
	carolsCard := d.naming("carol", alice.Passport).Card
	if carolsCard == nil || carolsCard.Seed != oldSeed {
		t.Fatalf("carol's card of alice: %v, want alice's seed", carolsCard)
	}
	carolsView := topic.Inbox(carolsCard.Seed, topic.InboxDay(time.Now()))
	if !subscribes(a.node, carolsView) {
		t.Fatal("alice's node does not subscribe to her inbox before the removal")
	}

	if stopped {
		a.stop()
	}
	if err := a.Reg.RemoveContact(ctx, "alice", "Carol"); err != nil {
		t.Fatal(err)
	}
	if stopped {
		a.start()
	}
	wait.Until(t, 30*time.Second, "alice's node leaves the inbox carol computes", func() bool { return !subscribes(a.node, carolsView) }, a.stats)
	newSeed, err := a.Reg.InboxSeed(ctx, a.NodeKey, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if newSeed == oldSeed {
		t.Fatal("the removal kept the inbox seed")
	}
	wait.Until(t, 30*time.Second, "alice's node on her new inbox", func() bool {
		return subscribes(a.node, topic.Inbox(newSeed, topic.InboxDay(time.Now())))
	}, a.stats)
	wait.Until(t, 30*time.Second, "bob holds alice's new seed", func() bool {
		cd := c.naming("bob", alice.Passport).Card
		return cd != nil && cd.Seed == newSeed
	}, a.stats, c.stats)

	sendAs(t, c, "bob", bobPW, bob.Address("asmtp").String(), alice.Address("asmtp").String(), "after carol left")
	wait.Until(t, 30*time.Second, "bob's mail on alice's new inbox", func() bool { return a.inboxCount("alice") == 3 }, a.stats, c.stats)
	if got := d.naming("carol", alice.Passport).Card.Seed; got != oldSeed {
		t.Error("carol, removed, was sent alice's new seed")
	}
}

// TestNamingV2PassportUpdateRollback: whoever stole alice's old shared
// secret (the reason she rotated) sends bob her old passport sealed with
// it, to roll him back to the old key; bob drops it as forged and keeps
// the new key.
func TestNamingV2PassportUpdateRollback(t *testing.T) {
	a, c, alice, bob, _, _ := v2Pair(t)
	ctx := context.Background()
	stolen, err := a.Reg.Secrets(ctx, a.NodeKey, "alice")
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := a.Reg.RotateSharedKey(ctx, a.NodeKey, "alice")
	if err != nil {
		t.Fatal(err)
	}
	newKey := accountstest.OwnSharedKey(t, rotated)
	holds := func(k keys.SharedKey) func() bool {
		return func() bool {
			ct, err := c.Reg.Contact(ctx, "bob", alice.Passport)
			return err == nil && ct.SharedKey == k
		}
	}
	wait.Until(t, 30*time.Second, "bob holds alice's new passport", holds(newKey), a.stats, c.stats)

	ab, err := a.Reg.Contact(ctx, "alice", bob.Passport)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := card.SealUpdate(nil, noise.NewXKey(stolen.SharedSecret), ab.SharedKey, alice.Blocks)
	if err != nil {
		t.Fatal(err)
	}
	bobsCard := a.naming("alice", bob.Passport).Card
	s, err := a.node.Attach(alice.Device)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reported := c.node.Stats().Reported
	inbox := topic.Inbox(bobsCard.Seed, topic.InboxDay(time.Now()))
	if err := s.PublishTo(ctx, inbox, &node.PeerAddr{ID: bobsCard.Node, Addr: bobsCard.Addr}, forged); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 30*time.Second, "bob's bridge reports the forged update", func() bool { return c.node.Stats().Reported > reported }, a.stats, c.stats)
	if !holds(newKey)() {
		t.Fatal("bob took alice's old passport back")
	}
}

// TestNamingV2PassportUpdateOffline: alice rotates while bob's node is
// down; her node holds the update (§16.6), alice's bridge restarts, and
// bob takes the update when his node is back; then mail flows both ways.
func TestNamingV2PassportUpdateOffline(t *testing.T) {
	a, c, alice, bob, alicePW, bobPW := v2Pair(t)
	ctx := context.Background()
	c.stop()
	rotated, err := a.Reg.RotateSharedKey(ctx, a.NodeKey, "alice")
	if err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 30*time.Second, "alice's node stored the update for bob", func() bool {
		sent, err := a.Reg.SentTo(ctx, "alice")
		return err == nil && sent[bob.Passport].Passport == accounts.PassportHash(rotated.Blocks)
	}, a.stats)
	a.stop()
	a.start()
	c.start()
	newKey := accountstest.OwnSharedKey(t, rotated)
	wait.Until(t, 30*time.Second, "bob holds alice's new passport", func() bool {
		ct, err := c.Reg.Contact(ctx, "bob", alice.Passport)
		return err == nil && ct.SharedKey == newKey
	}, a.stats, c.stats)
	aliceAddr, bobAddr := alice.Address("asmtp").String(), bob.Address("asmtp").String()
	sendAs(t, a, "alice", alicePW, aliceAddr, bobAddr, "after rotating")
	wait.Until(t, 30*time.Second, "alice's mail at bob", func() bool { return c.inboxCount("bob") == 2 }, a.stats, c.stats)
	sendAs(t, c, "bob", bobPW, bobAddr, aliceAddr, "to the new key")
	wait.Until(t, 30*time.Second, "bob's mail at alice", func() bool { return a.inboxCount("alice") == 2 }, a.stats, c.stats)
}
