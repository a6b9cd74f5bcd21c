package imapserver

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/imapserver/testmail"
)

// corpusSize is the Must-show mailbox size: 10,000 messages.
const corpusSize = 10000

// maildirFlags gives message i of the corpus its Maildir flags: every 3rd
// seen, every 7th flagged, every 11th answered.
func maildirFlags(i int) string {
	var f string
	if i%7 == 0 {
		f += "F"
	}
	if i%11 == 0 {
		f += "R"
	}
	if i%3 == 0 {
		f += "S"
	}
	return f
}

func writeMaildir(t *testing.T, dir string, n int) {
	t.Helper()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		name := fmt.Sprintf("%d.M%dP1.test:2,%s", 1700000000+i, i, maildirFlags(i))
		if err := os.WriteFile(filepath.Join(dir, "cur", name), testmail.Message(i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// mbsyncConfig writes a configuration syncing INBOX of the server with the
// Maildir at dir, both ways, flags and expunges included.
func mbsyncConfig(t *testing.T, ts *testServer, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// FSync off: mbsync would otherwise fsync its own Maildir and state after
	// every message; the server's durability is what is under test.
	conf := fmt.Sprintf(`FSync no

IMAPAccount bridge
Host 127.0.0.1
Port %s
User %s
Pass %s
SSLType None
AuthMechs LOGIN
PipelineDepth 64

IMAPStore bridge-remote
Account bridge

MaildirStore local
Path %s/
Inbox %s/INBOX

Channel bridge
Far :bridge-remote:
Near :local:
Patterns INBOX
Create Both
Expunge Both
SyncState *
Sync All
`, ts.port(), testUser, testToken, dir, dir)
	path := filepath.Join(t.TempDir(), "mbsyncrc")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mbsync(t *testing.T, config string) string {
	t.Helper()
	start := time.Now()
	out := runTool(t, 5*time.Minute, "mbsync", "-c", config, "-a")
	t.Logf("mbsync took %v", time.Since(start).Round(time.Millisecond))
	return out
}

var maildirInfo = regexp.MustCompile(`:2,([A-Z]*)$`)

// maildirFlagCounts counts messages and each flag letter in a Maildir.
func maildirFlagCounts(t *testing.T, dir string) (int, map[rune]int) {
	t.Helper()
	counts := map[rune]int{}
	n := 0
	forEachMaildirFile(t, dir, func(path string) {
		n++
		if m := maildirInfo.FindStringSubmatch(path); m != nil {
			for _, r := range m[1] {
				counts[r]++
			}
		}
	})
	return n, counts
}

func searchCount(t *testing.T, c *rawClient, criteria string) int {
	t.Helper()
	untagged, st := c.cmd("UID SEARCH " + criteria)
	for _, line := range untagged { // other lines: updates from other sessions
		if strings.HasPrefix(line, "* SEARCH") && strings.Contains(st, "OK") {
			return len(strings.Fields(line)) - 2
		}
	}
	t.Fatalf("UID SEARCH %s: %.300v %s", criteria, untagged, st)
	return 0
}

// xTUID is the header mbsync adds to messages it uploads, to find them again.
var xTUID = regexp.MustCompile(`(?m)^X-TUID: [^\r\n]*\r?\n`)

// TestMbsyncTenThousand is the Must-show run: a fresh account gets 10,000
// messages by APPEND (mbsync pushing a Maildir), mbsync mirrors them into a
// second Maildir and back with flags intact, UIDs and UIDVALIDITY survive a
// restart, and a MOVE and an EXPUNGE reach a concurrent IDLE session.
func TestMbsyncTenThousand(t *testing.T) {
	needTool(t, "mbsync")
	ts := startServer(t)
	work := t.TempDir()
	source := filepath.Join(work, "source")
	writeMaildir(t, filepath.Join(source, "INBOX"), corpusSize)
	wantSeen, wantFlagged, wantAnswered := 0, 0, 0
	for i := range corpusSize {
		f := maildirFlags(i)
		wantSeen += strings.Count(f, "S")
		wantFlagged += strings.Count(f, "F")
		wantAnswered += strings.Count(f, "R")
	}

	// 1. Push: mbsync APPENDs all 10,000 messages with their flags.
	mbsync(t, mbsyncConfig(t, ts, source))
	c := dialRaw(t, ts.addr)
	c.login()
	c.cmd("SELECT INBOX")
	for _, check := range []struct {
		criteria string
		want     int
	}{{"ALL", corpusSize}, {"SEEN", wantSeen}, {"FLAGGED", wantFlagged}, {"ANSWERED", wantAnswered}} {
		if got := searchCount(t, c, check.criteria); got != check.want {
			t.Fatalf("server after push: %s = %d, want %d", check.criteria, got, check.want)
		}
	}

	// 2. Pull into a fresh Maildir.
	mirror := filepath.Join(work, "mirror")
	mirrorConf := mbsyncConfig(t, ts, mirror)
	mbsync(t, mirrorConf)
	n, counts := maildirFlagCounts(t, filepath.Join(mirror, "INBOX"))
	if n != corpusSize || counts['S'] != wantSeen || counts['F'] != wantFlagged || counts['R'] != wantAnswered {
		t.Fatalf("mirror: %d messages, flags %v; want %d, S=%d F=%d R=%d", n, counts, corpusSize, wantSeen, wantFlagged, wantAnswered)
	}
	compareMaildirBodies(t, filepath.Join(mirror, "INBOX"))

	// 3. Change flags on both sides, then sync both ways.
	renamed := markMaildirDraft(t, filepath.Join(mirror, "INBOX"), 25, 300)
	if _, st := c.cmd(`UID STORE 1:100 +FLAGS.SILENT (\Deleted)`); !strings.Contains(st, "OK") {
		t.Fatal(st)
	}
	c.cmd("EXPUNGE")
	c.cmd(`UID STORE 101:200 +FLAGS.SILENT ($Important)`)
	c.cmd(`UID STORE 201:300 -FLAGS.SILENT (\Seen)`)
	mbsync(t, mirrorConf)
	if got := searchCount(t, c, "DRAFT"); got != renamed {
		t.Errorf("server \\Draft after sync = %d, want %d", got, renamed)
	}
	n, counts = maildirFlagCounts(t, filepath.Join(mirror, "INBOX"))
	if n != corpusSize-100 {
		t.Errorf("mirror after server expunge of 100: %d messages", n)
	}
	if got := searchCount(t, c, "SEEN"); counts['S'] != got {
		t.Errorf("mirror S=%d, server SEEN=%d", counts['S'], got)
	}

	// 4. Restart: UIDVALIDITY and every UID unchanged, and mbsync agrees.
	before := uidState(t, c)
	c.conn.Close()
	ts.restart(t)
	c = dialRaw(t, ts.addr)
	c.login()
	if after := uidState(t, c); after != before {
		t.Fatalf("after restart:\n%.200s\nbefore:\n%.200s", after, before)
	}
	out := mbsync(t, mirrorConf)
	if strings.Contains(strings.ToLower(out), "uidvalidity") {
		t.Errorf("mbsync complained about UIDVALIDITY after restart: %s", out)
	}
	if n2, _ := maildirFlagCounts(t, filepath.Join(mirror, "INBOX")); n2 != n {
		t.Errorf("mirror changed after no-op sync: %d -> %d", n, n2)
	}

	// 5. On the big mailbox too, a second client's MOVE and EXPUNGE reach an
	// IDLEing client. UIDs 1-100 are gone, so UID 501 is message 401.
	w := startIdleWatcher(t, ts, "INBOX")
	runTool(t, 30*time.Second, "python3", "testdata/move_expunge.py", "127.0.0.1", ts.port(), testUser, testToken, "501", "502")
	w.pushed("* 401 EXPUNGE", 5*time.Second)
	w.pushed("* 401 EXPUNGE", 5*time.Second)
	w.stop()
}

// compareMaildirBodies checks a sample of mirrored messages byte for byte,
// after undoing what mbsync itself does: it stores LF line endings and adds
// an X-TUID header to the messages it uploaded.
func compareMaildirBodies(t *testing.T, dir string) {
	t.Helper()
	want := map[string]bool{}
	for i := 0; i < corpusSize; i += 997 {
		want[strings.ReplaceAll(string(testmail.Message(i)), "\r\n", "\n")] = false
	}
	forEachMaildirFile(t, dir, func(name string) {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		b = xTUID.ReplaceAll(b, nil)
		if _, ok := want[string(b)]; ok {
			want[string(b)] = true
		}
	})
	for body, found := range want {
		if !found {
			t.Errorf("message not mirrored byte-exact: %.80q", body)
		}
	}
}

func forEachMaildirFile(t *testing.T, dir string, fn func(path string)) {
	t.Helper()
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			fn(filepath.Join(dir, sub, e.Name()))
		}
	}
}

var maildirUID = regexp.MustCompile(`,U=([0-9]+):2,`)

// markMaildirDraft adds the D flag to the files of every nth UID above
// minUID and returns how many it marked.
func markMaildirDraft(t *testing.T, dir string, every, minUID int) int {
	t.Helper()
	n := 0
	forEachMaildirFile(t, dir, func(path string) {
		name := filepath.Base(path)
		m, u := maildirInfo.FindStringSubmatch(name), maildirUID.FindStringSubmatch(name)
		if m == nil || u == nil {
			t.Fatalf("unexpected Maildir name %q", name)
		}
		uid, _ := strconv.Atoi(u[1])
		if uid <= minUID || uid%every != 0 {
			return
		}
		flags := []rune(m[1] + "D")
		slices.Sort(flags)
		newName := strings.TrimSuffix(name, m[1]) + string(flags)
		if err := os.Rename(path, filepath.Join(filepath.Dir(path), newName)); err != nil {
			t.Fatal(err)
		}
		n++
	})
	return n
}

// uidState is UIDVALIDITY, UIDNEXT and every UID with its flags.
func uidState(t *testing.T, c *rawClient) string {
	t.Helper()
	status, _ := c.cmd("STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES)")
	c.cmd("EXAMINE INBOX")
	fetched, st := c.cmd("FETCH 1:* (UID FLAGS)")
	if !strings.Contains(st, "OK") {
		t.Fatal(st)
	}
	return strings.Join(status, "\n") + "\n" + strconv.Itoa(len(fetched)) + "\n" + strings.Join(fetched, "\n")
}
