package smtpserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

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

func (q *diskQueue) Submit(_ context.Context, _, _ string, _ []string, msg io.Reader, _ int64) error {
	f, err := os.CreateTemp(q.dir, "msg-*")
	if err != nil {
		return err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, sum), msg); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	q.mu.Lock()
	q.digests = append(q.digests, hex.EncodeToString(sum.Sum(nil)))
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
// DATA goes to spool files that Queue.Submit reads as it stores them, so
// the server's peak RSS grows by at most 16 MiB (+1 MiB measured; reading
// DATA into memory whole, it held 8 messages and their growth copies,
// +351 MiB; reading each spool file whole for Submit, one at a time,
// +49 MiB), and all 8 arrive intact.
func TestConcurrentLargeSubmissions(t *testing.T) {
	q := &diskQueue{dir: t.TempDir()}
	spool := t.TempDir()
	_, addr := start(t, q, nil, func(o *Options) { o.SpoolDir = spool })
	debug.FreeOSMemory()
	idle := procmem.MustResetPeak(t, procmem.Self)
	digest := strings.TrimSpace(runPython(t, concurrentSubmissions, addr, password, "24"))
	peak := procmem.MustStatus(t, procmem.Self, "VmHWM")
	t.Logf("8 concurrent 24 MiB submissions: RSS idle %d MiB, peak %d MiB (+%d MiB)", idle>>20, peak>>20, (peak-idle)>>20)
	if grow := (peak - idle) >> 20; grow > 16 {
		t.Errorf("peak RSS grew by %d MiB, want at most 16", grow)
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
