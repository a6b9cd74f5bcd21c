package imapserver

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// nestedMessage is a message of depth multiparts, each the only part of
// the one above, with "deep" as the innermost text.
func nestedMessage(depth int) string {
	var b strings.Builder
	b.WriteString("From: a@example.org\r\nSubject: nested\r\nMIME-Version: 1.0\r\n")
	for i := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\ndeep\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.String()
}

// TestDeepSectionFetchIsCheap: FETCH of a section path deeper than the
// store's MIME depth cap answers an empty section at once. go-imap's MIME
// walker, used before for every path, costs the square of the depth:
// 2.4-6 s for a 5,000-level path on a 5,000-level message.
func TestDeepSectionFetchIsCheap(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	c.login()
	msg := nestedMessage(5000)
	if _, st := c.cmd(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg)); !strings.Contains(st, "OK") {
		t.Fatal(st)
	}
	c.cmd("SELECT INBOX")
	path := strings.TrimSuffix(strings.Repeat("1.", 5000), ".")
	var took []time.Duration
	for range 3 {
		start := time.Now()
		untagged, st := c.cmd("FETCH 1 (BODY.PEEK[" + path + "])")
		took = append(took, time.Since(start))
		if !strings.Contains(st, "OK") || len(untagged) != 1 || !strings.HasSuffix(untagged[0], "] {0}\r\n)") {
			t.Fatalf("deep FETCH: %.200q %s", untagged, st)
		}
	}
	slices.Sort(took)
	t.Logf("5,000-level section FETCH: %v (fastest of 3: %v)", took, took[0])
	if took[0] > 50*time.Millisecond {
		t.Errorf("5,000-level section FETCH took %v, want <= 50 ms", took[0])
	}
	// The deepest path still walked costs the cap times the message.
	start := time.Now()
	c.cmd("FETCH 1 (BODY.PEEK[" + strings.TrimSuffix(strings.Repeat("1.", 41), ".") + "] BINARY.SIZE[" + path + "])")
	t.Logf("41-level section FETCH: %v", time.Since(start))
	// Paths within the cap still reach parts.
	untagged, _ := c.cmd("FETCH 1 (BODY.PEEK[" + strings.TrimSuffix(strings.Repeat("1.", 3), ".") + ".MIME])")
	if len(untagged) != 1 || !strings.Contains(untagged[0], "multipart/mixed; boundary=b3") {
		t.Errorf("FETCH BODY[1.1.1.MIME]: %.300q", untagged)
	}
}
