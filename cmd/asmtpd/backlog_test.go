package main

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/internal/procmem"
)

// TestBacklogCatchUp is issue 11's backlog case: bob's node C is down
// while alice sends big mails (15 MiB each, some 325 node messages apiece:
// more than one catch-up answer of QueryLimit messages) and 20 small
// ones; once A has published them all, C restarts and must fetch the whole
// backlog from A: every mail at bob exactly once within 3 minutes of the
// restart, with C's peak RSS at most 512 MiB. ASMTP_BACKLOG_BIG sets the
// number of big mails (default 4, the figure).
func TestBacklogCatchUp(t *testing.T) {
	big := 4
	if s := os.Getenv("ASMTP_BACKLOG_BIG"); s != "" {
		var err error
		if big, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	const small = 20
	n := startMailNet(t)
	tok := "backlog" + randHex(3)
	n.c.stop(t)
	var raws [][]byte
	for i := range big {
		raws = append(raws, plainMail(n.alice.Address, n.bob.Address, fmt.Sprintf("%s-big-%d", tok, i), randomBody(15<<20)))
	}
	for i := range small {
		raws = append(raws, plainMail(n.alice.Address, n.bob.Address, fmt.Sprintf("%s-small-%02d", tok, i), fmt.Sprintf("small mail %d\r\n", i)))
	}
	sent := time.Now()
	if out, err := n.sendRaw(t, n.alice, n.bob.Address, raws...); err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	t.Logf("%d mails accepted by A in %v", len(raws), time.Since(sent).Round(time.Millisecond))
	waitOutboxOnNode(t, n.a, 3*time.Minute)
	t.Logf("every mail on A's node %v after the first submission", time.Since(sent).Round(time.Millisecond))

	n.c.start(t)
	n.c.waitListening(t)
	restarted := time.Now()
	want := big + small
	if out, err := n.py("wait", n.bob.json(), tok, strconv.Itoa(want), "180"); err != nil {
		t.Errorf("not all %d mails at bob 180 s after C's restart: %s", want, out)
	} else {
		t.Logf("%d/%d mails at bob %v after C's restart", want, want, time.Since(restarted).Round(time.Millisecond))
	}
	peak := procmem.MustStatus(t, n.c.cmd.Process.Pid, "VmHWM")
	t.Logf("C's peak RSS: %d MiB", peak>>20)
	if peak > 512<<20 {
		t.Errorf("C's peak RSS %d MiB, want at most 512 MiB", peak>>20)
	}
	counts := n.subjectCounts(t, n.bob)
	for i := range want {
		s := fmt.Sprintf("%s-small-%02d", tok, i-big)
		if i < big {
			s = fmt.Sprintf("%s-big-%d", tok, i)
		}
		if counts[s] != 1 {
			t.Errorf("%s arrived %d times, want once", s, counts[s])
		}
	}
}

// randomBody is a text body of about size bytes that does not compress:
// base64 lines of random bytes.
func randomBody(size int) string {
	raw := make([]byte, size*3/4)
	for i := range raw {
		raw[i] = byte(rand.Uint32())
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	var b strings.Builder
	b.Grow(len(enc) + len(enc)/76*2)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
	return b.String()
}

// waitOutboxOnNode waits until p's bridge has handed every queued mail to
// its node: delivered, or stored there waiting for the recipient's node.
func waitOutboxOnNode(t *testing.T, p *proc, timeout time.Duration) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(p.dir, "bridge", "mail.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		var left int
		// Delivered, or every chunk stored on the node while no holder of
		// the recipient's topic is seen (handed_at): the mail then waits
		// in the outbox, and the recipient's node takes it from ours.
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM outbox_recipients WHERE handed_at = 0`).Scan(&left)
		if err == nil && left == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s's outbox: %d mails not on its node after %v (err %v)", p.name, left, timeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
