package bridge

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/mailtext"
	"github.com/asmtp/asmtp/internal/wait"
	"github.com/asmtp/asmtp/mailstore"
)

// Every attempt at a queued mail keeps the message id drawn when it was
// queued, and the SMTP login works with the pseudo-address too.
func TestRetriesKeepTheMessageID(t *testing.T) {
	s, alice, pw := oneSite(t, func(c *DeliveryConfig) { c.RetryWindow = time.Hour; c.FirstRetry = 100 * time.Millisecond })
	addr := alice.Address("asmtp").String()
	nowhere := passport.Hash{0xde, 0xad}.String() + "@asmtp"
	host, port := hostPort(s.bridge.SMTPAddr())
	runPy(t, `
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=30) as s:
    s.login(sys.argv[3], sys.argv[4])
    s.sendmail(sys.argv[3], [sys.argv[5]], b"Subject: retried\r\n\r\nhi\r\n")
`, host, port, addr, pw, nowhere)
	// The look-up fails at once ("no peer to ask"), so attempts follow
	// each other FirstRetry apart: the first one seen may be the second.
	var first mailstore.OutboxItem
	wait.Until(t, 10*time.Second, "a failed attempt", func() bool {
		q, err := s.Mail.Outbox(context.Background(), "alice")
		if err == nil && len(q) == 1 && q[0].Attempts >= 1 {
			first = q[0]
		}
		return first.Attempts >= 1
	})
	if !strings.Contains(first.LastError, "not found") {
		t.Errorf("last error %q, want the passport look-up failure", first.LastError)
	}
	wait.Until(t, 20*time.Second, "a further failed attempt", func() bool {
		q, err := s.Mail.Outbox(context.Background(), "alice")
		return err == nil && len(q) == 1 && q[0].Attempts > first.Attempts && q[0].MessageID == first.MessageID
	})
}

// runPy runs a Python script with args.
func runPy(t testing.TB, script string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "python3", append([]string{"-c", script}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

// A message whose header goes on past mailtext.MaxHeadBytes (the part
// submission reads into memory to edit) is refused for good with a
// sentence saying so, and nothing is queued; one just under the limit
// goes through with its body intact.
func TestSubmissionHeaderLimit(t *testing.T) {
	s, alice, pw := oneSite(t, nil)
	addr := alice.Address("asmtp").String()
	host, port := hostPort(s.bridge.SMTPAddr())
	runPy(t, `
import smtplib, sys
host, port, user, pw, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
field = b"X-Filler: " + b"y" * 60 + b"\r\n"
def message(header_bytes):
    return b"Subject: big header\r\n" + field * (header_bytes // len(field)) + b"\r\n" + b"body\r\n" * 1000
with smtplib.SMTP(host, port, timeout=60) as s:
    s.login(user, pw)
    try:
        s.sendmail(user, [user], message(limit + 1000))
        sys.exit("a header over the limit was accepted")
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 554 and b"header is over" in e.smtp_error, e
    s.sendmail(user, [user], message(limit - 1000))
`, host, port, addr, pw, strconv.Itoa(mailtext.MaxHeadBytes))
	wait.Until(t, 20*time.Second, "alice's outbox empty and a message in her INBOX", func() bool {
		q, err := s.Mail.Outbox(context.Background(), "alice")
		return err == nil && len(q) == 0 && s.inboxCount("alice") > 0
	})
	if n := s.inboxCount("alice"); n != 1 {
		t.Fatalf("%d messages delivered, want only the one under the limit", n)
	}
	if got := s.inbox("alice")[0]; !bytes.HasSuffix(got, bytes.Repeat([]byte("body\r\n"), 1000)) {
		t.Errorf("the delivered message ends %q", got[max(0, len(got)-40):])
	}
}
