package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/mailstore"
)

// mustRun runs asmtpd-cli in-process and fails the test if it fails.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("asmtpd-cli %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func TestStatus(t *testing.T) {
	t.Setenv(passwordEnv, "")
	ctx := context.Background()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(mustRun(t, "default-config")), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "generate-new-key", "--entropy-output", filepath.Join(dir, "entropy.txt"), "--password", "node pw")

	// Before asmtpd ever ran and before any account: nothing is created.
	out := mustRun(t, "status", "--config", cfg)
	for _, want := range []string{"no database at", "accounts: none", "limits: 128 links (32 kept for overlay peers and users)",
		"stored from one peer: 1MiB/s, bursts of 32MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("status of a new node lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "asmtpd.db")); !os.IsNotExist(err) {
		t.Errorf("status created the node database: %v", err)
	}

	alice := fields(t, mustRun(t, "account", "add", "--config", cfg, "--name", "alice", "--password", "node pw"),
		"address", "imap", "smtp", "carddav", "username", "password")["address"]
	bob := fields(t, mustRun(t, "account", "add", "--config", cfg, "--name", "bob", "--password", "node pw"),
		"address", "imap", "smtp", "carddav", "username", "password")["address"]
	alicePassport := filepath.Join(dir, "alice.passport")
	bobPassport := filepath.Join(dir, "bob.passport")
	mustRun(t, "account", "export-passport", "--config", cfg, "--name", "alice", "--output", alicePassport)
	mustRun(t, "account", "export-passport", "--config", cfg, "--name", "bob", "--output", bobPassport)
	mustRun(t, "contact", "add", "--config", cfg, "--account", "bob", "--name", "Alice Liddell", "--passport", alicePassport)
	mustRun(t, "contact", "add", "--config", cfg, "--account", "alice", "--name", "Bob", "--passport", bobPassport)
	mustRun(t, "contact", "add", "--config", cfg, "--account", "alice", "--name", "Carol", "--id", "00112233445566778899aabbccddeeff")

	// The node's database, as a running node leaves it, kept open (as by
	// a running asmtpd) while status reads it.
	node, err := store.Open(ctx, filepath.Join(dir, "asmtpd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	raw, _ := hex.DecodeString(upstreamGossip)
	g, err := gossip.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	seen := time.Date(2026, 11, 25, 11, 20, 1, 0, time.UTC)
	var tp topic.Topic
	tp[0] = 1
	if err := errorsJoin(
		node.ReplaceGossips(ctx, []store.Gossip{{ID: g.ID, Time: g.Time, Bytes: raw}}),
		node.SetLastSeen(ctx, seen),
		node.Register(ctx, g.ID, tp),
	); err != nil {
		t.Fatal(err)
	}
	if _, _, err := node.AddMessage(ctx, store.Durable, tp, [32]byte{1}, []byte("m"), seen.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}

	// Alice's outbox: one message to Bob, one to Carol that failed once;
	// Bob received one message from Alice.
	reg, err := accounts.OpenRegistry(ctx, filepath.Join(dir, "bridge"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	bobContacts, err := reg.Contacts(ctx, "bob")
	if err != nil || len(bobContacts) != 1 {
		t.Fatalf("bob's contacts: %v, %v", bobContacts, err)
	}
	aliceContacts, err := reg.Contacts(ctx, "alice")
	if err != nil || len(aliceContacts) != 2 {
		t.Fatalf("alice's contacts: %v, %v", aliceContacts, err)
	}
	mailboxes, err := mailstore.Open(ctx, filepath.Join(dir, "bridge", accounts.MailFile))
	if err != nil {
		t.Fatal(err)
	}
	defer mailboxes.Close()
	now := time.Now()
	for _, c := range aliceContacts {
		_, err := mailboxes.Enqueue(ctx, mailstore.Submission{Account: "alice", From: alice, Message: bytes.NewReader([]byte("Subject: hi\r\n\r\nhi\r\n")),
			Recipients: []mailstore.OutboxRecipient{{Passport: c.Passport, Address: c.Address("asmtp").String(), MessageID: [16]byte{byte(len(c.Name))}}}}, now)
		if err != nil {
			t.Fatal(err)
		}
	}
	items, err := mailboxes.Outbox(ctx, "alice")
	if err != nil || len(items) != 2 {
		t.Fatalf("outbox: %v, %v", items, err)
	}
	for _, it := range items {
		if it.Address == aliceContacts[1].Address("asmtp").String() && aliceContacts[1].Name == "Carol" ||
			it.Address == aliceContacts[0].Address("asmtp").String() && aliceContacts[0].Name == "Carol" {
			if err := mailboxes.DeliveryDeferred(ctx, it, now.Add(5*time.Minute), "passport not found\nyet"); err != nil {
				t.Fatal(err)
			}
		}
	}
	bobC := aliceContacts[0]
	if bobC.Name != "Bob" {
		bobC = aliceContacts[1]
	}
	// A third message, to Bob, given up: its bounce goes to Alice's INBOX.
	id3, err := mailboxes.Enqueue(ctx, mailstore.Submission{Account: "alice", From: alice, Message: bytes.NewReader([]byte("Subject: lost\r\n\r\nlost\r\n")),
		Recipients: []mailstore.OutboxRecipient{{Passport: bobC.Passport, Address: bob, MessageID: [16]byte{3}}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	// Shaped like bridge/outbound/dsn.go's reports.
	dsn := "From: Mail Delivery System <MAILER-DAEMON@asmtp>\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\n\r\nfailed\r\n--b--\r\n"
	if _, err := mailboxes.DeliveryFailed(ctx, mailstore.OutboxItem{OutboxID: id3, Account: "alice", OutboxRecipient: mailstore.OutboxRecipient{Passport: bobC.Passport, Address: bob}}, []byte(dsn), now); err != nil {
		t.Fatal(err)
	}
	delivered := time.Date(2026, 11, 25, 11, 19, 0, 0, time.UTC)
	if _, ok, err := mailboxes.AppendInbound(ctx, "bob", bobContacts[0].SharedKey, [16]byte{9}, nil, []byte("Subject: hello\r\n\r\nhello\r\n"), delivered); err != nil || !ok {
		t.Fatalf("deliver inbound: %v, %v", ok, err)
	}

	out = mustRun(t, "status", "--config", cfg)
	t.Logf("status:\n%s", out)
	for _, re := range []string{
		`(?m)^node .* listening 127\.0\.0\.1:9800$`,
		`(?m)^  last seen: 2026-11-25 11:20:01 UTC `,
		`(?m)^peers: 1 known \(stored gossips\)\n  ` + g.ID.String() + ` ` + regexp.QuoteMeta(g.Addr.String()) + ` gossip of `,
		`(?m)^topics: 1 registered \(by 1 user\), 1 message stored \(oldest 2026-11-25 10:20:01 UTC`,
		`(?m)^account alice \(` + alice + `\)\n  outbox: 1 pending, 1 retrying, 1 bounce reports in INBOX\n`,
		`(?m)^    to 00112233445566778899aabbccddeeff@asmtp: 1 attempt since .*, next .*, last error: passport not found yet$`,
		`(?m)^    Bob ` + bob + `  naming awaiting card  last delivery in: none on record  queued out: 1$`,
		`(?m)^    Carol 00112233445566778899aabbccddeeff@asmtp  passport pending  queued out: 1$`,
		`(?m)^account bob \(` + bob + `\)\n  outbox: 0 pending, 0 retrying, 0 bounce reports in INBOX\n  contacts: 1\n` +
			`    Alice Liddell ` + alice + `  naming awaiting card  last delivery in: 2026-11-25 11:19:00 UTC$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status does not match %s:\n%s", re, out)
		}
	}

	// With the node's database closed, as when asmtpd is stopped.
	if err := node.Close(); err != nil {
		t.Fatal(err)
	}
	if again := mustRun(t, "status", "--config", cfg); !strings.Contains(again, "peers: 1 known") {
		t.Errorf("status with asmtpd stopped:\n%s", again)
	}
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
