package bridge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/node"
)

// TestUnlinkedAccountBounces: mail of an account the bridge cannot put on
// the node (here the node refuses it a session: its device key already
// holds node.MaxSessionsPerUser) bounces once the retry window is over,
// like any other undeliverable mail, instead of waiting forever.
func TestUnlinkedAccountBounces(t *testing.T) {
	ctx := context.Background()
	s := newSite(t)
	alice, pw := s.addAccount(t, "alice")
	bob, _ := s.addAccount(t, "bob")
	befriend(t, s, "alice", "Alice", s, "bob", "Bob")
	s.beforeBridge = func(n *node.Node) {
		n.AddUser(alice.Device)
		for range node.MaxSessionsPerUser {
			sess, err := n.Attach(alice.Device)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(sess.Close)
		}
	}
	s.start()
	if s.bridge.session("alice") != nil {
		t.Fatal("alice is on the node: the test needs her refused")
	}
	from, to := alice.Address("asmtp").String(), bob.Address("asmtp").String()
	sent := time.Now()
	sendMails(t, s, pw, from, to, "hi\n", "never linked")
	waitUntil(t, s.delivery.RetryWindow+20*time.Second, "the bounce in alice's INBOX", func() bool { return s.inboxCount("alice") == 1 },
		func() string {
			q, _ := s.mail.Outbox(ctx, "alice")
			return "outbox: " + strings.TrimSpace(strings.Repeat("entry ", len(q)))
		})
	took := time.Since(sent)
	checkBounce(t, s.inbox("alice")[0], to, "5.4.7")
	if q, err := s.mail.Outbox(ctx, "alice"); err != nil || len(q) != 0 {
		t.Errorf("alice's outbox holds %+v, %v after the bounce", q, err)
	}
	if took < s.delivery.RetryWindow {
		t.Errorf("bounced after %v, before the %v retry window", took, s.delivery.RetryWindow)
	}
	t.Logf("an account not on the node: its mail bounced %v after submission (retry window %v)", took.Round(time.Millisecond), s.delivery.RetryWindow)
}
