package outbound

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
	"github.com/asmtp/asmtp/bridge/outbound/dsntest"
	"github.com/asmtp/asmtp/mailstore"
)

// dsnOriginal is the message a bounce or delay report is about; its body
// must not be in the report.
var dsnOriginal = []byte("Subject: the original\r\nTo: x\r\n\r\nthe body, not in the report\r\n")

// newDSNFixture returns a worker retrying for 4 days, an outbox item alice
// queued on 1 March 2026 and has tried attempts times, and alice.
func newDSNFixture(t *testing.T, attempts int) (*Worker, mailstore.OutboxItem, accounts.Account) {
	t.Helper()
	e := accountstest.NewEnv(t)
	alice, _ := e.AddAccount(t, "alice")
	w := NewWorker(Config{Domain: "asmtp", Pacing: Pacing{RetryWindow: 4 * 24 * time.Hour}}, e.Reg, e.Mail, nil)
	it := mailstore.OutboxItem{OutboxID: 7, Account: "alice", QueuedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Attempts: attempts,
		OutboxRecipient: mailstore.OutboxRecipient{Address: "dead00000000000000000000000000ff@asmtp"}}
	return w, it, alice
}

func TestBounce(t *testing.T) {
	b, it, alice := newDSNFixture(t, 11)
	queued := it.QueuedAt
	for _, c := range []struct {
		cause  error
		status string
		says   string
	}{
		{fmt.Errorf("%w: dead…: no answer within 10s", errUnknownPassport), "5.1.1", "could not be found on the ASMTP network in 4 days"},
		{errors.New("publish chunk 1 of 3: node: closed"), "5.4.7", "could not be handed to the ASMTP network in 4 days"},
		{errNoHolder, "5.4.4", "in 4 days no node of the recipient's was seen to take it"},
	} {
		dsn := b.bounce(context.Background(), it, dsnOriginal, c.cause, queued.Add(96*time.Hour))
		dsntest.CheckBounce(t, dsn, it.Address, c.status)
		words := strings.Join(strings.Fields(string(dsn)), " ") // the text is wrapped
		for _, want := range []string{c.says, "To: <" + alice.Address("asmtp").String() + ">", "Attempts: 12", "Subject: the original", "Auto-Submitted: auto-replied"} {
			if !strings.Contains(words, want) {
				t.Errorf("%s bounce lacks %q:\n%s", c.status, want, dsn)
			}
		}
		if strings.Contains(string(dsn), "the body") {
			t.Errorf("the bounce carries the original body")
		}
	}
}

func TestDelayReport(t *testing.T) {
	b, it, alice := newDSNFixture(t, 5)
	queued := it.QueuedAt
	for _, c := range []struct {
		cause  error
		status string
		says   string
	}{
		{fmt.Errorf("%w: dead…: no answer within 10s", errUnknownPassport), "4.1.1", "has not been found on the ASMTP network so far"},
		{errNotLinked, "4.4.7", "not on the ASMTP node yet"},
		{errNoHolder, "4.4.4", "no node of the recipient's has been seen to take it so far"},
		{errors.New("publish chunks 1-3 of 3: node: closed"), "4.4.7", "could not be handed to the ASMTP network so far"},
	} {
		report := b.delayed(context.Background(), it, dsnOriginal, c.cause, queued.Add(4*time.Hour))
		status := dsntest.CheckReport(t, report, it.Address, "delayed", c.status)
		words := strings.Join(strings.Fields(string(report)), " ") // the text is wrapped
		for _, want := range []string{c.says, "not delivered yet, 4 hours after you sent it", "until Thu, 05 Mar 2026 12:00:00 +0000",
			"Subject: Delayed Mail (still being retried)", "To: <" + alice.Address("asmtp").String() + ">", "Attempts: 6", "Subject: the original"} {
			if !strings.Contains(words, want) {
				t.Errorf("%s report lacks %q:\n%s", c.status, want, report)
			}
		}
		if !strings.Contains(status, "Will-Retry-Until: Thu, 05 Mar 2026 12:00:00 +0000") {
			t.Errorf("no Will-Retry-Until:\n%s", status)
		}
		if strings.Contains(string(report), "the body") {
			t.Errorf("the report carries the original body")
		}
	}
}
