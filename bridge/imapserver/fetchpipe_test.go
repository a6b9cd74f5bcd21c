package imapserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/imapserver/testmail"
)

// TestFetchPipelined: a FETCH of many messages (read on a second
// goroutine) answers each message as a FETCH of that message alone does,
// in order, also while another session expunges and appends.
func TestFetchPipelined(t *testing.T) {
	ts := startServer(t)
	const n = 3 * minPipelinedFetch
	for i := range n {
		if _, err := ts.store.Deliver(context.Background(), testUser, "INBOX", testmail.Message(i), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	c, other := dialRaw(t, ts.addr), dialRaw(t, ts.addr)
	c.login()
	other.login()
	c.cmd("SELECT INBOX")
	other.cmd("SELECT INBOX")
	const items = "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"
	all, st := c.cmd("FETCH 1:* " + items)
	if len(all) != n || !strings.Contains(st, "OK") {
		t.Fatalf("%d responses, %s", len(all), st)
	}
	for i := 1; i <= n; i += 37 {
		one, _ := c.cmd(fmt.Sprintf("FETCH %d %s", i, items))
		if len(one) != 1 || one[0] != all[i-1] {
			t.Fatalf("message %d alone:\n%q\nin FETCH 1:*:\n%q", i, one, all[i-1])
		}
	}
	// Another session changes the mailbox under a long FETCH: every
	// response is still for a message this session knows, in order.
	other.send("x1 STORE 1:100 +FLAGS.SILENT (\\Deleted)\r\nx2 EXPUNGE\r\n" + appendCmd("INBOX", "", testmail.Message(1)) + "\r\n")
	lines, st := c.cmd("FETCH 1:* " + items)
	if !strings.Contains(st, "OK") {
		t.Fatal(st)
	}
	last := 0
	for _, l := range lines {
		var seq int
		if _, err := fmt.Sscanf(l, "* %d FETCH", &seq); err != nil || !strings.Contains(l, "ENVELOPE") {
			continue // EXISTS, EXPUNGE, the other session's flag changes
		}
		if seq <= last || seq > n {
			t.Fatalf("FETCH for %d after %d (of %d): %q", seq, last, n, l)
		}
		last = seq
	}
}
