package mailstore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// crashChildEnv makes the test binary act as the process that is killed.
const crashChildEnv = "MAILSTORE_CRASH_CHILD_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		appendUntilKilled(path)
		return
	}
	os.Exit(m.Run())
}

// appendUntilKilled appends messages forever, printing each UID once Append
// has returned, i.e. once the write is acknowledged.
func appendUntilKilled(path string) {
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		raw := []byte(fmt.Sprintf("Subject: crash %d\r\n\r\n%s\r\n", i, strings.Repeat("x", i%5000)))
		a, err := db.Append(ctx, "alice", "INBOX", raw, []string{`\Seen`}, time.Time{})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("acked %d %d\n", a.UID, len(raw))
	}
}

// TestCrashLosesNothingAcknowledged kills (SIGKILL) a process in the middle
// of appending, at a different point each round, then checks that every
// acknowledged message is there, intact, and that the store carries on.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	_, path := openTest(t) // creates the account; the child opens the same file
	for round, killAfter := range []int{1, 37, 150} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[UID]int{}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if f[0] != "acked" {
				t.Fatalf("child: %s", sc.Text())
			}
			uid, _ := strconv.Atoi(f[1])
			size, _ := strconv.Atoi(f[2])
			acked[UID(uid)] = size
			if len(acked) == killAfter {
				cmd.Process.Kill()
				break
			}
		}
		cmd.Wait()

		db, err := Open(context.Background(), path)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		var check string
		db.r.QueryRow("PRAGMA integrity_check").Scan(&check)
		if check != "ok" {
			t.Fatalf("round %d: integrity_check: %s", round, check)
		}
		mb, _ := db.Mailbox(context.Background(), "alice", "INBOX")
		have := map[UID]int64{}
		err = db.Fetch(context.Background(), mb.ID, uidsOf(t, db, mb.ID), func(m MessageMeta) error {
			have[m.UID] = m.Size
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for uid, size := range acked {
			if have[uid] != int64(size) {
				t.Errorf("round %d: acknowledged UID %d (%d bytes) lost or damaged: %d bytes", round, uid, size, have[uid])
			}
		}
		var maxAcked UID
		for uid := range acked {
			maxAcked = max(maxAcked, uid)
		}
		a, err := db.Append(context.Background(), "alice", "INBOX", msg("after", "crash"), nil, time.Time{})
		if err != nil || a.UID <= maxAcked {
			t.Fatalf("round %d: append after crash: UID %d (max acknowledged %d), %v", round, a.UID, maxAcked, err)
		}
		db.Close()
	}
}
