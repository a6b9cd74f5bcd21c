package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/mailstore"
)

// TestStatusDelayWarnings: status warns of mail still in the outbox
// bridge.delay_warning after submission, saying whether it is not handed
// to the network yet or stored on this node only (no node holding the
// recipient's topic seen); younger mail gets no warning.
func TestStatusDelayWarnings(t *testing.T) {
	t.Setenv(passwordEnv, "")
	ctx := context.Background()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	def := mustRun(t, "default-config")
	if !strings.Contains(def, `delay_warning: "4h"`) {
		t.Fatalf("the default config does not set delay_warning: \"4h\":\n%s", def)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(def, `delay_warning: "4h"`, `delay_warning: "1h"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "generate-new-key", "--entropy-output", filepath.Join(dir, "entropy.txt"), "--password", "node pw")
	alice := fields(t, mustRun(t, "account", "add", "--config", cfg, "--name", "alice", "--password", "node pw"),
		"address", "imap", "smtp", "carddav", "username", "password")["address"]

	mailboxes, err := mailstore.Open(ctx, filepath.Join(dir, "bridge", accounts.MailFile))
	if err != nil {
		t.Fatal(err)
	}
	defer mailboxes.Close()
	now := time.Now()
	enqueue := func(to string, b byte, queued time.Time) mailstore.OutboxItem {
		t.Helper()
		r := mailstore.OutboxRecipient{Address: to + "@asmtp", MessageID: [16]byte{b}}
		r.Passport[0] = b
		if _, err := mailboxes.Enqueue(ctx, mailstore.Submission{Account: "alice", From: alice, Message: bytes.NewReader([]byte("Subject: hi\r\n\r\nhi\r\n")),
			Recipients: []mailstore.OutboxRecipient{r}}, queued); err != nil {
			t.Fatal(err)
		}
		q, err := mailboxes.Outbox(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		return q[len(q)-1]
	}
	lost := enqueue("01000000000000000000000000000000", 1, now.Add(-5*time.Hour))
	if err := mailboxes.DeliveryDeferred(ctx, lost, now.Add(time.Hour), "passport not found on the ASMTP network"); err != nil {
		t.Fatal(err)
	}
	waiting := enqueue("02000000000000000000000000000000", 2, now.Add(-3*time.Hour))
	if err := mailboxes.DeliveryHanded(ctx, waiting, now.Add(-3*time.Hour), now.Add(time.Hour), "no holder"); err != nil {
		t.Fatal(err)
	}
	young := enqueue("03000000000000000000000000000000", 3, now.Add(-10*time.Minute))
	if err := mailboxes.DeliveryHanded(ctx, young, now.Add(-10*time.Minute), now.Add(time.Minute), "no holder"); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, "status", "--config", cfg)
	t.Logf("status:\n%s", out)
	for _, re := range []string{
		`(?m)^    to 02000000000000000000000000000000@asmtp: on this node since .*, waiting for a node holding the recipient's topic \(1 check\), next `,
		`(?m)^  warning: 2 mails undelivered after 1h0m0s \(bridge.delay_warning\)\n` +
			`    to 01000000000000000000000000000000@asmtp: queued .*, not handed to the network yet, last error: passport not found on the ASMTP network\n` +
			`    to 02000000000000000000000000000000@asmtp: queued .*, stored on this node only: no node holding the recipient's topic seen since .* \(the recipient's node is offline, or they have not added this account as a contact\)\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status does not match %s", re)
		}
	}
	if strings.Contains(out, "queued "+fmtTime(young.QueuedAt)) {
		t.Errorf("status warns of mail younger than the delay warning")
	}
}
