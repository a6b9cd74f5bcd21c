package bridge

import (
	"context"
	"database/sql"
	"errors"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
	"github.com/asmtp/asmtp/bridge/outbound/dsntest"
	"github.com/asmtp/asmtp/internal/wait"
	"github.com/asmtp/asmtp/mailstore"
)

// TestUnlinkedAccountBounces: mail of an account the bridge cannot put on
// the node (here the node refuses it a session: its device key already
// holds node.MaxSessionsPerUser) bounces once the retry window is over,
// like any other undeliverable mail, instead of waiting forever.
func TestUnlinkedAccountBounces(t *testing.T) {
	ctx := context.Background()
	s := newSite(t)
	alice, pw := s.AddAccount(t, "alice")
	bob, _ := s.AddAccount(t, "bob")
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
	if s.bridge.roster.Session("alice") != nil {
		t.Fatal("alice is on the node: the test needs her refused")
	}
	from, to := alice.Address("asmtp").String(), bob.Address("asmtp").String()
	sent := time.Now()
	sendMails(t, s, pw, from, to, "hi\n", "never linked")
	wait.Until(t, s.delivery.RetryWindow+20*time.Second, "the bounce in alice's INBOX", func() bool { return s.inboxCount("alice") == 1 },
		func() string {
			q, _ := s.Mail.Outbox(ctx, "alice")
			return "outbox: " + strings.TrimSpace(strings.Repeat("entry ", len(q)))
		})
	took := time.Since(sent)
	dsntest.CheckBounce(t, s.inbox("alice")[0], to, "5.4.7")
	if q, err := s.Mail.Outbox(ctx, "alice"); err != nil || len(q) != 0 {
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
	alice, pw := s.AddAccount(t, "alice")
	bob, _ := s.AddAccount(t, "bob")
	befriend(t, s, "alice", "Alice", s, "bob", "Bob")
	db, err := sql.Open("sqlite", filepath.Join(s.Dir, accounts.MailFile)+"?_pragma=busy_timeout(10000)")
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
	wait.Until(t, 10*time.Second, "alice on the node", func() bool { return s.bridge.roster.Session("alice") != nil })
	from, to := alice.Address("asmtp").String(), bob.Address("asmtp").String()
	big := strings.Repeat("Forty-two bytes of text in every line.\r\n", 11500) // 8 chunks
	sendMails(t, s, pw, from, to, big, "handed over once")
	wait.Until(t, 60*time.Second, "alice's outbox empty", func() bool {
		q, err := s.Mail.Outbox(ctx, "alice")
		return err == nil && len(q) == 0
	})
	wait.Until(t, 10*time.Second, "the mail at bob", func() bool { return s.inboxCount("bob") == 1 })
	mu.Lock()
	defer mu.Unlock()
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	if len(failedAt) < failures {
		t.Fatalf("the outbox update failed %d times, want %d: the test did not test anything", len(failedAt), failures)
	}
	tp := topic.Derive(accountstest.OwnSharedKey(t, alice), accountstest.OwnSharedKey(t, bob))
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

// TestDelayedMailWarning: mail that is still in the outbox DelayWarning
// after submission (here to a passport no node has: its owner's node is
// offline) gets the sender one delay report (RFC 3464 Action: delayed,
// with Will-Retry-Until), read over IMAP by Python's imaplib, and the
// bounce later when the retry window ends; mail delivered before
// DelayWarning gets none.
func TestDelayedMailWarning(t *testing.T) {
	s := newSite(t)
	s.delivery.DelayWarning = 2 * time.Second
	alice, pw := s.AddAccount(t, "alice")
	bob, _ := s.AddAccount(t, "bob")
	befriend(t, s, "alice", "Alice", s, "bob", "Bob")
	s.start()
	wait.Until(t, 10*time.Second, "alice on the node", func() bool { return s.bridge.roster.Session("alice") != nil })
	from := alice.Address("asmtp").String()
	offline := passport.Hash{0xde, 0xad, 0xbe, 0xef}.String() + "@asmtp"
	sent := time.Now()
	sendMails(t, s, pw, from, offline, "hi\n", "to an offline node")
	sendMails(t, s, pw, from, bob.Address("asmtp").String(), "hi\n", "delivered at once")
	wait.Until(t, s.delivery.RetryWindow+20*time.Second, "the delay report and the bounce", func() bool { return s.inboxCount("alice") >= 2 })
	took := time.Since(sent)

	out := t.TempDir()
	host, port := hostPort(s.bridge.IMAPAddr())
	python(t, "fetch", host, port, "alice", pw, out)
	first, err1 := os.ReadFile(filepath.Join(out, "1.eml"))
	second, err2 := os.ReadFile(filepath.Join(out, "2.eml"))
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	report := dsntest.CheckReport(t, first, offline, "delayed", "4.1.1")
	if !strings.Contains(report, "Will-Retry-Until: ") {
		t.Errorf("the delay report does not say until when it is retried:\n%s", report)
	}
	if subj := header(t, first, "Subject"); subj != "Delayed Mail (still being retried)" {
		t.Errorf("delay report Subject %q", subj)
	}
	dsntest.CheckBounce(t, second, offline, "5.1.1")
	if got, _ := netmail.ParseDate(header(t, first, "Date")); got.Before(sent.Add(s.delivery.DelayWarning).Truncate(time.Second)) {
		t.Errorf("delay report dated %v, before the %v delay warning", got, s.delivery.DelayWarning)
	}
	if n := s.inboxCount("alice"); n != 2 {
		t.Errorf("alice has %d reports, want the delay report and the bounce: %s", n, subjects(t, s.inbox("alice")))
	}
	if s.inboxCount("bob") != 1 {
		t.Errorf("bob has %d mails, want 1", s.inboxCount("bob"))
	}
	t.Logf("delay report and bounce in alice's INBOX %v after submission (delay warning %v, retry window %v)",
		took.Round(time.Millisecond), s.delivery.DelayWarning, s.delivery.RetryWindow)
}

// TestMailWaitsForTheRecipientsNode: alice's node stores her mail to bob
// and to carol at once, but neither has added alice as a contact, so no
// node holding their topics is seen: the entries stay in the outbox
// (published once, not again), and after DelayWarning alice gets a delay
// report for each (4.4.4). Then bob adds alice: his node subscribes,
// alice's sees it, his entry leaves the outbox and he gets the mail. Carol
// never does: her entry bounces (5.4.4) at the end of the retry window.
func TestMailWaitsForTheRecipientsNode(t *testing.T) {
	ctx := context.Background()
	relay := startRelay(t)
	a, c := newSite(t, relay), newSite(t, relay)
	a.delivery.DelayWarning, a.delivery.RetryWindow = 2*time.Second, 12*time.Second
	alice, pw := a.AddAccount(t, "alice")
	bob, _ := c.AddAccount(t, "bob")
	carol, _ := c.AddAccount(t, "carol")
	for _, r := range []accounts.Account{bob, carol} {
		if _, err := a.Reg.AddContact(ctx, "alice", r.Name, r.Blocks); err != nil {
			t.Fatal(err)
		}
	}
	a.start()
	c.start()
	a.waitLinked(t) // what alice's mail then waits for is bob's node alone
	c.waitLinked(t)
	from := alice.Address("asmtp").String()
	sent := time.Now()
	sendMails(t, a, pw, from, bob.Address("asmtp").String(), "hi\n", "to bob")
	sendMails(t, a, pw, from, carol.Address("asmtp").String(), "hi\n", "to carol")
	wait.Until(t, 20*time.Second, "two delay reports", func() bool { return a.inboxCount("alice") == 2 }, a.stats, c.stats)
	warned := time.Since(sent)
	for i, r := range []accounts.Account{bob, carol} {
		dsntest.CheckReport(t, a.inbox("alice")[i], r.Address("asmtp").String(), "delayed", "4.4.4")
	}
	q, err := a.Mail.Outbox(ctx, "alice")
	if err != nil || len(q) != 2 || q[0].HandedAt.IsZero() || q[1].HandedAt.IsZero() {
		t.Fatalf("alice's outbox %+v, %v; want both entries handed to the node and waiting", q, err)
	}

	if _, err := c.Reg.AddContact(ctx, "bob", "Alice", alice.Blocks); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 20*time.Second, "the mail at bob", func() bool { return c.inboxCount("bob") == 1 }, a.stats, c.stats)
	wait.Until(t, 10*time.Second, "bob's entry out of alice's outbox", func() bool {
		q, err := a.Mail.Outbox(ctx, "alice")
		return err == nil && len(q) == 1 && q[0].Passport == carol.Passport
	})
	wait.Until(t, a.delivery.RetryWindow+20*time.Second, "carol's bounce", func() bool { return a.inboxCount("alice") == 3 })
	bounced := time.Since(sent)
	bounce := a.inbox("alice")[2]
	dsntest.CheckBounce(t, bounce, carol.Address("asmtp").String(), "5.4.4")
	if q, err := a.Mail.Outbox(ctx, "alice"); err != nil || len(q) != 0 {
		t.Errorf("alice's outbox %+v, %v after the bounce", q, err)
	}
	if n := c.inboxCount("carol"); n != 0 {
		t.Errorf("carol has %d mails", n)
	}
	for _, r := range []accounts.Account{bob, carol} {
		tp := topic.Derive(accountstest.OwnSharedKey(t, alice), accountstest.OwnSharedKey(t, r))
		if n := storedOn(t, a, alice, tp); n != 1 {
			t.Errorf("the 1-chunk mail to %s is stored %d times on alice's node, want once", r.Name, n)
		}
	}
	t.Logf("delay reports %v after submission (delay warning %v), carol's bounce after %v (retry window %v)",
		warned.Round(time.Millisecond), a.delivery.DelayWarning, bounced.Round(time.Millisecond), a.delivery.RetryWindow)
}
