package bridge

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/mailstore"
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

// TestOutboxStoreFailureDoesNotSpin: when the outbox cannot record that a
// mail was handed to the node (an SQLite trigger, added from another
// connection, makes every removal from the outbox fail at once), the
// worker neither publishes the mail again nor spins: each pass that could
// not update the outbox waits FirstRetry, doubling, before the next; once
// the store works again it records the handover it made. Without the
// record every retry sealed and published every chunk anew (fresh
// randomness: the node stored and forwarded each copy), as fast as the
// store failed.
func TestOutboxStoreFailureDoesNotSpin(t *testing.T) {
	ctx := context.Background()
	s := newSite(t)
	alice, pw := s.addAccount(t, "alice")
	bob, _ := s.addAccount(t, "bob")
	befriend(t, s, "alice", "Alice", s, "bob", "Bob")
	db, err := sql.Open("sqlite", filepath.Join(s.dir, MailFile)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const failures = 4 // outbox updates that fail before the store is repaired
	var mu sync.Mutex
	var sent int             // publications of the message's last chunk
	var failedAt []time.Time // when outbox updates failed
	var hookErr error
	s.delivery.hook = func(stage string, _ mailstore.OutboxItem, chunk int) {
		mu.Lock()
		defer mu.Unlock()
		var err error
		switch {
		case stage == "published" && chunk == 8:
			sent++
		case stage == "sent" && failedAt == nil:
			_, err = db.Exec(`CREATE TRIGGER IF NOT EXISTS broken_outbox BEFORE DELETE ON outbox_recipients
				BEGIN SELECT RAISE(ABORT, 'injected: the outbox cannot be updated'); END`)
		case stage == "unrecorded":
			if failedAt = append(failedAt, time.Now()); len(failedAt) == failures {
				_, err = db.Exec("DROP TRIGGER broken_outbox")
			}
		}
		hookErr = errors.Join(hookErr, err)
	}
	s.start()
	waitUntil(t, 10*time.Second, "alice on the node", func() bool { return s.bridge.session("alice") != nil })
	from, to := alice.Address("asmtp").String(), bob.Address("asmtp").String()
	big := strings.Repeat("Forty-two bytes of text in every line.\r\n", 11500) // 8 chunks
	sendMails(t, s, pw, from, to, big, "handed over once")
	waitUntil(t, 60*time.Second, "alice's outbox empty", func() bool {
		q, err := s.mail.Outbox(ctx, "alice")
		return err == nil && len(q) == 0
	})
	waitUntil(t, 10*time.Second, "the mail at bob", func() bool { return s.inboxCount("bob") == 1 })
	mu.Lock()
	defer mu.Unlock()
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	if len(failedAt) < failures {
		t.Fatalf("the outbox update failed %d times, want %d: the test did not test anything", len(failedAt), failures)
	}
	tp := topic.Derive(ownSharedKey(t, alice), ownSharedKey(t, bob))
	stored := storedOn(t, s, alice, tp)
	spread := failedAt[failures-1].Sub(failedAt[0])
	t.Logf("outbox update failed %d times over %v; the mail was published %d times, %d chunks stored on the node",
		len(failedAt), spread.Round(time.Millisecond), sent, stored)
	if sent != 1 || stored != 8 {
		t.Errorf("the mail was published %d times (%d chunks stored), want once (8 chunks)", sent, stored)
	}
	// Passes after 1, 2 and 3 failed ones wait FirstRetry times 1, 2, 4.
	if least := 7 * s.delivery.FirstRetry; spread < least {
		t.Errorf("%d failed outbox updates within %v: the worker does not back off (want at least %v)", failures, spread, least)
	}
}
