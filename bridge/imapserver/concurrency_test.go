package imapserver

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/imapserver/testmail"
)

// clientView is what one client may believe about the selected mailbox
// from the untagged responses it was sent: the UID at each message number,
// 0 while it has not seen it.
type clientView struct {
	uids []uint32
}

// apply follows one untagged response, reporting one that contradicts
// what the client was told before.
func (cv *clientView) apply(line string) error {
	fields := strings.Fields(line)
	if len(fields) >= 2 && fields[0] == "*" && (fields[1] == "SORT" || fields[1] == "THREAD") {
		return cv.numbered(line)
	}
	if len(fields) < 3 || fields[0] != "*" {
		return nil
	}
	n, err := strconv.Atoi(fields[1])
	if err != nil {
		return nil // not a numbered response
	}
	switch fields[2] {
	case "EXISTS":
		if n < len(cv.uids) {
			return fmt.Errorf("EXISTS %d after %d messages", n, len(cv.uids))
		}
		cv.uids = append(cv.uids, make([]uint32, n-len(cv.uids))...)
	case "EXPUNGE":
		if n < 1 || n > len(cv.uids) {
			return fmt.Errorf("EXPUNGE %d of %d messages", n, len(cv.uids))
		}
		cv.uids = append(cv.uids[:n-1], cv.uids[n:]...)
	case "FETCH":
		return cv.fetched(n, line)
	}
	return nil
}

func (cv *clientView) fetched(n int, line string) error {
	if n < 1 || n > len(cv.uids) {
		return fmt.Errorf("FETCH for message %d of %d: %s", n, len(cv.uids), line)
	}
	i := strings.Index(line, "UID ")
	if i < 0 {
		return nil
	}
	uid, err := strconv.ParseUint(strings.Trim(strings.Fields(line[i+4:])[0], ")"), 10, 32)
	if err != nil {
		return fmt.Errorf("FETCH UID in %q: %v", line, err)
	}
	if prev := cv.uids[n-1]; prev != 0 && prev != uint32(uid) {
		return fmt.Errorf("message %d was UID %d, now %d: %s", n, prev, uid, line)
	}
	cv.uids[n-1] = uint32(uid)
	for i := n; i < len(cv.uids); i++ { // UIDs ascend with message numbers
		if cv.uids[i] != 0 && cv.uids[i] <= uint32(uid) {
			return fmt.Errorf("message %d is UID %d but message %d is UID %d", n, uid, i+1, cv.uids[i])
		}
	}
	return nil
}

// numbered checks that a SORT or THREAD answer names each message the
// client knows at most once, and no other.
func (cv *clientView) numbered(line string) error {
	seen := make(map[int]bool)
	for _, f := range strings.Fields(strings.NewReplacer("(", " ", ")", " ").Replace(line))[2:] {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > len(cv.uids) || seen[n] {
			return fmt.Errorf("message %q of %d in %s", f, len(cv.uids), line)
		}
		seen[n] = true
	}
	return nil
}

// randomCommand picks a valid command for a client that knows n messages.
func randomCommand(r *rand.Rand, n int) string {
	if n == 0 {
		return appendCmd("INBOX", "", testmail.Message(r.IntN(5)))
	}
	a := r.IntN(n) + 1
	b := a + r.IntN(n-a+1)
	switch r.IntN(11) {
	case 7:
		return "SORT (REVERSE DATE SUBJECT) UTF-8 ALL"
	case 8:
		return "THREAD REFERENCES UTF-8 ALL"
	case 9:
		m := testmail.Message(r.IntN(5))
		return fmt.Sprintf("APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s", len(m), m, len(m), m)
	case 0:
		return appendCmd("INBOX", "", testmail.Message(r.IntN(5)))
	case 1:
		return fmt.Sprintf(`STORE %d +FLAGS (\Deleted)`, a)
	case 2:
		return "EXPUNGE"
	case 3:
		return fmt.Sprintf("MOVE %d Archive", a)
	case 4:
		return fmt.Sprintf(`STORE %d:%d FLAGS (\Seen $Label%d)`, a, b, r.IntN(3))
	case 5:
		return "NOOP"
	case 6:
		return fmt.Sprintf("FETCH %d:* (UID FLAGS)", a)
	}
	return fmt.Sprintf("FETCH %d:%d (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])", a, b)
}

// TestConcurrentSessions has ten sessions change one mailbox at once for
// a few seconds: every valid command must get OK, and what each session is
// told must stay consistent (RFC 3501 §7.4.1: numbers shift only by
// EXPUNGE, UIDs never change under a number).
func TestConcurrentSessions(t *testing.T) {
	ts := startServer(t)
	seed := dialRaw(t, ts.addr)
	seed.login()
	for i := range 20 {
		if _, st := seed.cmd(appendCmd("INBOX", "", testmail.Message(i%5))); !strings.Contains(st, "OK") {
			t.Fatalf("seed: %s", st)
		}
	}
	// Goroutines rather than parallel subtests, which run only GOMAXPROCS
	// at a time. rawClient's Fatalf on an I/O error ends just its goroutine.
	deadline := time.Now().Add(8 * time.Second)
	var wg sync.WaitGroup
	for s := range 10 {
		wg.Go(func() {
			if err := runSession(t, ts.addr, uint64(s), deadline); err != nil {
				t.Errorf("session %d: %v", s, err)
			}
		})
	}
	wg.Wait()
}

func runSession(t *testing.T, addr string, seed uint64, deadline time.Time) error {
	c := dialRaw(t, addr)
	c.login()
	cv := &clientView{}
	r := rand.New(rand.NewPCG(seed, 13))
	cmds := 0
	for cmd := "SELECT INBOX"; time.Now().Before(deadline); cmd = randomCommand(r, len(cv.uids)) {
		untagged, status := c.cmd(cmd)
		cmds++
		for _, line := range untagged {
			if err := cv.apply(line); err != nil {
				return fmt.Errorf("after %q: %v", trim(cmd), err)
			}
		}
		if !strings.Contains(status, " OK") {
			return fmt.Errorf("%q: %s", trim(cmd), status)
		}
	}
	t.Logf("%d commands, %d messages at the end", cmds, len(cv.uids))
	return nil
}
