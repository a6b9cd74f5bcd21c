package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/wait"
)

// Durable adds that queue while another holds the writer share one
// commit, and each gets its own messages' results.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "node.db"))
	tp := topic.Topic{7}
	if _, _, err := s.AddMessage(ctx, Durable, tp, [32]byte{0xff}, []byte("old"), time.Now()); err != nil {
		t.Fatal(err)
	}
	before := s.commits.Load()

	const callers = 8
	s.write.Lock() // as if a commit were running: the callers queue
	results := make([][]Message, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			ms := []NewMessage{
				{Topic: tp, Hash: [32]byte{byte(i), 1}, Content: []byte{byte(i), 1}, ReceivedAt: time.Now()},
				{Topic: tp, Hash: [32]byte{0xff}, Content: []byte("old"), ReceivedAt: time.Now()}, // stored before
				{Topic: tp, Hash: [32]byte{byte(i), 2}, Content: []byte{byte(i), 2}, ReceivedAt: time.Now()},
			}
			results[i], errs[i] = s.AddMessagesDurable(ctx, ms)
		})
	}
	var queued int
	allQueued := wait.Poll(5*time.Second, func() bool {
		s.groupMu.Lock()
		queued = len(s.group)
		s.groupMu.Unlock()
		return queued == callers
	})
	s.write.Unlock() // before failing: the callers and Close need the writer
	if !allQueued {
		t.Fatalf("%d of %d callers queued", queued, callers)
	}
	wg.Wait()

	if got := s.commits.Load() - before; got != 1 {
		t.Errorf("%d commits for %d queued callers, want 1", got, callers)
	}
	cursors := map[int64]bool{}
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if len(r) != 3 || r[1].Cursor != 0 || r[0].Cursor == 0 || r[2].Cursor <= r[0].Cursor {
			t.Fatalf("caller %d: cursors %d %d %d; want new, 0 (already stored), newer", i, r[0].Cursor, r[1].Cursor, r[2].Cursor)
		}
		if r[0].Content[0] != byte(i) || r[2].Content[1] != 2 {
			t.Fatalf("caller %d got another caller's messages", i)
		}
		cursors[r[0].Cursor], cursors[r[2].Cursor] = true, true
	}
	if len(cursors) != 2*callers {
		t.Fatalf("%d distinct cursors, want %d", len(cursors), 2*callers)
	}
	stored, err := s.MessagesAfter(ctx, tp, 0, 100)
	if err != nil || len(stored) != 1+2*callers {
		t.Fatalf("%d messages stored (%v), want %d", len(stored), err, 1+2*callers)
	}
}

// A caller whose context has ended fails before queueing anything.
func TestGroupCommitCancelled(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "node.db"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.AddMessagesDurable(ctx, []NewMessage{{Topic: topic.Topic{1}, Content: []byte("x")}}); err == nil {
		t.Fatal("a cancelled add succeeded")
	}
	if ms, _ := s.MessagesAfter(context.Background(), topic.Topic{1}, 0, 10); len(ms) != 0 {
		t.Fatal("a cancelled add stored its message")
	}
}

// The writers never checkpoint inside a commit; the background checkpoint
// still copies the WAL into the database file soon after.
func TestBackgroundCheckpoint(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "node.db")
	s := open(t, path)
	var auto int
	if err := s.db.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("durable writer: wal_autocheckpoint %d (%v), want 0", auto, err)
	}
	if err := s.relaxed.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("relaxed writer: wal_autocheckpoint %d (%v), want 0", auto, err)
	}
	content := make([]byte, 64<<10)
	for i := range 32 { // 2 MiB
		binary.BigEndian.PutUint32(content, uint32(i))
		if _, _, err := s.AddMessage(ctx, Durable, topic.Topic{1}, [32]byte{byte(i)}, content, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	var size int64
	wait.Until(t, 5*time.Second, "the WAL checkpointed into the database file", func() bool {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		size = fi.Size()
		return size >= 2<<20
	}, func() string { return fmt.Sprintf("database file %d bytes after 2 MiB of commits", size) })
}

const crashChildEnv = "ASMTP_STORE_CRASH_CHILD"

// Every durable add that returned survives a SIGKILL of the process: a
// child process (this test binary) runs four writers group-committing
// batches of messages, beside relaxed batches and the background
// checkpoints, and prints each batch once AddMessagesDurable returned; it
// is killed mid-stream, and every batch it printed must be in the reopened
// database.
func TestDurableAddsSurviveKill(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runCrashChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns and kills a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurableAddsSurviveKill$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && len(acked) < 200 {
		if f := strings.Fields(lines.Text()); len(f) == 2 && f[0] == "ACK" {
			acked[f[1]] = true
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Acknowledgements already in the pipe were made before the kill too.
	for lines.Scan() {
		if f := strings.Fields(lines.Text()); len(f) == 2 && f[0] == "ACK" {
			acked[f[1]] = true
		}
	}
	cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("child acknowledged %d batches before it ended", len(acked))
	}

	s := open(t, filepath.Join(dir, "node.db"))
	ms, err := s.MessagesAfter(context.Background(), topic.Topic{1}, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for _, m := range ms {
		stored[string(m.Content[:bytesIndex(m.Content)])]++
	}
	for batch := range acked {
		if stored[batch] != crashBatch {
			t.Errorf("acknowledged batch %s: %d of %d messages stored", batch, stored[batch], crashBatch)
		}
	}
	t.Logf("%d batches acknowledged before the kill, %d messages stored", len(acked), len(ms))
}

// crashBatch is the messages per durable add in the crash test.
const crashBatch = 3

// bytesIndex is where the batch name ends in a crash-test message.
func bytesIndex(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}

func runCrashChild(t *testing.T, dir string) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(dir, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				name := "w" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				ms := make([]NewMessage, crashBatch)
				for j := range ms {
					content := make([]byte, 20<<10) // a WAL of megabytes: checkpoints run
					copy(content, name)
					binary.BigEndian.PutUint32(content[len(content)-4:], uint32(j))
					ms[j] = NewMessage{Topic: topic.Topic{1}, Hash: [32]byte{byte(w), byte(i), byte(i >> 8), byte(i >> 16), byte(j)}, Content: content, ReceivedAt: time.Now()}
				}
				if _, err := s.AddMessagesDurable(ctx, ms); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				out.Lock()
				fmt.Printf("ACK %s\n", name)
				out.Unlock()
			}
		})
	}
	wg.Go(func() { // relayed messages beside them
		for i := 0; ; i++ {
			ms := []NewMessage{{Topic: topic.Topic{2}, Hash: [32]byte{byte(i), byte(i >> 8), byte(i >> 16)}, Content: make([]byte, 20<<10), ReceivedAt: time.Now()}}
			if _, err := s.AddMessages(ctx, ms); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	})
	wg.Wait()
}
