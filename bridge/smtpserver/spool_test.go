package smtpserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asmtp/asmtp/internal/procmem"
)

// diskQueue is a Queue that keeps each message in a file, synced, as the
// bridge's outbox keeps it in SQLite, and remembers only its digest.
type diskQueue struct {
	dir string

	mu      sync.Mutex
	digests []string
}

func (q *diskQueue) Recipient(context.Context, string, string) error { return nil }

func (q *diskQueue) Submit(_ context.Context, _, _ string, _ []string, msg []byte) error {
	f, err := os.CreateTemp(q.dir, "msg-*")
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(msg); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	sum := sha256.Sum256(msg)
	q.mu.Lock()
	q.digests = append(q.digests, hex.EncodeToString(sum[:]))
	q.mu.Unlock()
	return nil
}

// concurrentSubmissions is 8 Python smtplib clients submitting the same
// large message at once; it prints the message's SHA-256.
const concurrentSubmissions = `
import hashlib, smtplib, sys, threading
host, port = sys.argv[1].rsplit(":", 1)
line = b"x" * 76 + b"\r\n"
msg = b"From: <alice@asmtp>\r\nTo: <bob@asmtp>\r\nSubject: big\r\n\r\n" + line * (int(sys.argv[3]) * (1 << 20) // len(line) - 1)
errors = []
def submit():
    try:
        s = smtplib.SMTP(host, int(port), timeout=120)
        s.login("alice", sys.argv[2])
        s.sendmail("alice@asmtp", ["bob@asmtp"], msg)
        s.quit()
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=submit) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    sys.exit("; ".join(errors))
print(hashlib.sha256(msg).hexdigest())
`

// TestConcurrentLargeSubmissions: 8 clients submit 24 MiB each at once.
// DATA goes to spool files and one message at a time is in memory for
// Queue.Submit, so the server's peak RSS grows by at most 256 MiB (reading
// DATA into memory whole, it held 8 messages and their growth copies), and
// all 8 arrive intact.
func TestConcurrentLargeSubmissions(t *testing.T) {
	q := &diskQueue{dir: t.TempDir()}
	spool := t.TempDir()
	_, addr := start(t, q, nil, func(o *Options) { o.SpoolDir = spool })
	debug.FreeOSMemory()
	idle := procmem.MustResetPeak(t, procmem.Self)
	digest := strings.TrimSpace(runPython(t, concurrentSubmissions, addr, password, "24"))
	peak := procmem.MustStatus(t, procmem.Self, "VmHWM")
	t.Logf("8 concurrent 24 MiB submissions: RSS idle %d MiB, peak %d MiB (+%d MiB)", idle>>20, peak>>20, (peak-idle)>>20)
	if grow := (peak - idle) >> 20; grow > 256 {
		t.Errorf("peak RSS grew by %d MiB, want at most 256", grow)
	}
	if len(q.digests) != 8 {
		t.Fatalf("%d messages queued, want 8", len(q.digests))
	}
	for _, d := range q.digests {
		if d != digest {
			t.Errorf("queued message digest %s, sent %s", d, digest)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(spool, "*")); len(left) > 0 {
		t.Errorf("spool files left: %v", left)
	}
}

// TestMemoryBudgetSpent: while one message holds the whole memory budget
// (its Submit blocked), another waits on disk and, after SubmitTimeout, is
// refused with a temporary error saying nothing was sent; once the first
// is queued the budget is free again.
func TestMemoryBudgetSpent(t *testing.T) {
	q := &stuckQueue{release: make(chan struct{})}
	s, addr := start(t, q, nil, func(o *Options) {
		o.MaxMessageBytes = 4096
		o.MemoryBudget = 4096
		o.SubmitTimeout = 500 * time.Millisecond
	})
	send := func(cv *conversation) {
		cv.cmd("EHLO client", "250")
		cv.cmd("AUTH PLAIN "+b64("\x00alice\x00"+password), "235")
		cv.cmd("MAIL FROM:<alice@asmtp>", "250")
		cv.cmd("RCPT TO:<bob@asmtp>", "250")
		cv.cmd("DATA", "354")
		fmt.Fprint(cv.c, "Subject: x\r\n\r\n"+strings.Repeat("y", 3000)+"\r\n.\r\n")
	}
	first, second := dial(t, addr), dial(t, addr)
	send(first)
	deadline := time.Now().Add(10 * time.Second)
	for s.budget.available() == 4096 { // until first holds its share, in Submit
		if time.Now().After(deadline) {
			t.Fatal("first message never took the budget")
		}
		time.Sleep(10 * time.Millisecond)
	}
	send(second)
	if r := second.expect("451 4.3.1"); !strings.Contains(r, "nothing was sent") {
		t.Errorf("refusal %q", r)
	}
	close(q.release)
	first.expect("250")
	second.cmd("MAIL FROM:<alice@asmtp>", "250")
	second.cmd("RCPT TO:<bob@asmtp>", "250")
	second.cmd("DATA", "354")
	second.cmd("Subject: z\r\n\r\nsmall\r\n.", "250")
	if n := q.queued.Load(); n != 2 {
		t.Errorf("%d messages queued, want 2", n)
	}
}

// stuckQueue is a Queue whose Submit waits for release, past its deadline,
// as a queue on a stalled disk does.
type stuckQueue struct {
	release chan struct{}
	queued  atomic.Int32
}

func (q *stuckQueue) Recipient(context.Context, string, string) error { return nil }

func (q *stuckQueue) Submit(context.Context, string, string, []string, []byte) error {
	<-q.release
	q.queued.Add(1)
	return nil
}
