package imapserver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// idleWatcher is Python imaplib IDLEing on a mailbox in another process.
type idleWatcher struct {
	t     *testing.T
	stdin io.WriteCloser
	lines chan string
	done  chan error
}

func startIdleWatcher(t *testing.T, ts *testServer, mailbox string) *idleWatcher {
	t.Helper()
	cmd := exec.Command(needTool(t, "python3"), "testdata/idle_watch.py", "127.0.0.1", ts.port(), testUser, testToken, mailbox)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &idleWatcher{t: t, stdin: stdin, lines: make(chan string, 1000), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		w.done <- err
	}()
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill() })
	if line := w.next(10 * time.Second); line != "READY" {
		t.Fatalf("watcher: %q, stderr %s", line, stderr.String())
	}
	return w
}

func (w *idleWatcher) next(timeout time.Duration) string {
	w.t.Helper()
	select {
	case line, ok := <-w.lines:
		if !ok {
			w.t.Fatalf("watcher exited: %v", <-w.done)
		}
		return line
	case <-time.After(timeout):
		w.t.Fatalf("watcher: nothing pushed within %v", timeout)
		return ""
	}
}

// pushed waits for a pushed line containing want and returns when it
// arrived, by the watcher's clock.
func (w *idleWatcher) pushed(want string, timeout time.Duration) (time.Time, string) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		line := w.next(time.Until(deadline))
		stamp, text, _ := strings.Cut(line, " ")
		if strings.Contains(text, want) {
			sec, err := strconv.ParseFloat(stamp, 64)
			if err != nil {
				w.t.Fatalf("watcher line %q", line)
			}
			whole, frac := math.Modf(sec)
			return time.Unix(int64(whole), int64(frac*1e9)), text
		}
	}
}

func (w *idleWatcher) stop() {
	w.t.Helper()
	w.stdin.Close()
	for range w.lines {
	}
	if err := <-w.done; err != nil {
		w.t.Fatalf("watcher: %v", err)
	}
}

// TestIdleSeesMoveAndExpunge: one imaplib session IDLEs on INBOX while
// another MOVEs a message out and EXPUNGEs another; the first sees both.
func TestIdleSeesMoveAndExpunge(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	for i := range 3 {
		if _, err := ts.store.Deliver(ctx, testUser, "INBOX", []byte(fmt.Sprintf("Subject: m%d\r\n\r\nbody\r\n", i)), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	w := startIdleWatcher(t, ts, "INBOX")
	runTool(t, 30*time.Second, "python3", "testdata/move_expunge.py", "127.0.0.1", ts.port(), testUser, testToken, "1", "2")
	// UID 1 is message 1; once it is gone, UID 2 is message 1 too.
	w.pushed("* 1 EXPUNGE", 5*time.Second)
	w.pushed("* 1 EXPUNGE", 5*time.Second)
	w.stop()

	archive, err := ts.store.Status(ctx, testUser, "Archive")
	if err != nil || archive.Messages != 1 {
		t.Fatalf("Archive after MOVE: %+v, %v", archive, err)
	}
	inbox, _ := ts.store.Status(ctx, testUser, "INBOX")
	if inbox.Messages != 1 {
		t.Fatalf("INBOX after MOVE and EXPUNGE: %d messages, want 1", inbox.Messages)
	}
}

// TestIdleLatency: a message delivered through the store (the inbound
// pipeline's path) or APPENDed by another client reaches an IDLEing
// client within 50 ms.
func TestIdleLatency(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	w := startIdleWatcher(t, ts, "INBOX")
	appender := dialRaw(t, ts.addr)
	appender.login()
	const rounds = 20
	var latencies []time.Duration
	for i := 1; i <= 2*rounds; i++ {
		raw := fmt.Sprintf("Subject: idle %d\r\n\r\nbody\r\n", i)
		start := time.Now()
		if i <= rounds {
			if _, err := ts.store.Deliver(ctx, testUser, "INBOX", []byte(raw), nil, time.Time{}); err != nil {
				t.Fatal(err)
			}
		} else {
			appender.n++
			appender.send(fmt.Sprintf("a%d APPEND INBOX {%d+}\r\n%s\r\n", appender.n, len(raw), raw))
		}
		arrived, _ := w.pushed(fmt.Sprintf("* %d EXISTS", i), 5*time.Second)
		latencies = append(latencies, arrived.Sub(start))
		if i > rounds {
			appender.readUntil(fmt.Sprintf("a%d", appender.n))
		}
	}
	w.stop()
	slices.Sort(latencies)
	median, worst := latencies[len(latencies)/2], latencies[len(latencies)-1]
	t.Logf("IDLE push latency over %d deliveries: median %v, max %v", len(latencies), median, worst)
	if worst > 50*time.Millisecond {
		t.Errorf("IDLE push latency max %v exceeds 50 ms (all: %v)", worst, latencies)
	}
}
