package bridge

import (
	"context"
	"testing"
	"time"

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
