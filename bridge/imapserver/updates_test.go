package imapserver

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestCopyIntoSelectedOneExists copies and moves 2,048 messages into the
// selected mailbox and counts the EXISTS and RECENT responses the copying
// session and another session selecting it are sent: one each, with the
// final count, as Dovecot sends (not one per message).
func TestCopyIntoSelectedOneExists(t *testing.T) {
	ts := startServer(t)
	const half = 2048
	for _, tc := range []struct {
		name, cmd string
		exists    string // the one EXISTS expected
	}{
		{"copy", "COPY 1:* %s", fmt.Sprintf("* %d EXISTS", 2*half)},
		{"uid-copy", "UID COPY 1:* %s", fmt.Sprintf("* %d EXISTS", 2*half)},
		{"move", "MOVE 1:* %s", fmt.Sprintf("* %d EXISTS", half)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mailbox := "many-" + tc.name
			a, b := dialRaw(t, ts.addr), dialRaw(t, ts.addr)
			a.login()
			b.login()
			a.cmd("CREATE " + mailbox)
			a.cmd(appendCmd(mailbox, "", []byte("Subject: one\r\n\r\nbody\r\n")))
			a.cmd("SELECT " + mailbox)
			for n := 1; n < half; n *= 2 { // doubling up to half
				if _, st := a.cmd("COPY 1:* " + mailbox); !strings.Contains(st, "OK") {
					t.Fatalf("COPY: %s", st)
				}
			}
			b.cmd("SELECT " + mailbox)
			a.cmd("NOOP")

			untagged, st := a.cmd(fmt.Sprintf(tc.cmd, mailbox))
			if !strings.Contains(st, "OK") {
				t.Fatalf("%s: %s", tc.cmd, st)
			}
			checkOneExists(t, "copying session", untagged, tc.exists)
			untagged, _ = b.cmd("NOOP")
			checkOneExists(t, "other session", untagged, tc.exists)
		})
	}
}

func checkOneExists(t *testing.T, who string, untagged []string, want string) {
	t.Helper()
	var exists []string
	recent := 0
	for _, line := range untagged {
		switch {
		case strings.HasSuffix(line, " EXISTS"):
			exists = append(exists, line)
		case strings.HasSuffix(line, " RECENT"):
			recent++
		}
	}
	if len(exists) != 1 || exists[0] != want || recent > 1 {
		shown := exists
		if len(shown) > 3 {
			shown = append(shown[:3:3], "...")
		}
		t.Errorf("%s: %d EXISTS %q and %d RECENT responses; want one %q and at most one RECENT",
			who, len(exists), shown, recent, want)
	}
}

// TestQResyncIdleHighestModSeq checks that a QRESYNC session in IDLE is told
// the new HIGHESTMODSEQ right after another session's expunge (an untagged
// OK, as no tagged response is near), and not after a flag change, whose
// FETCH carries its MODSEQ already.
func TestQResyncIdleHighestModSeq(t *testing.T) {
	ts := startServer(t)
	a, b := dialRaw(t, ts.addr), dialRaw(t, ts.addr)
	a.login()
	b.login()
	for range 3 {
		b.cmd(appendCmd("INBOX", "", []byte("Subject: idle\r\n\r\nbody\r\n")))
	}
	a.cmd("ENABLE QRESYNC")
	a.cmd("SELECT INBOX")
	b.cmd("SELECT INBOX")
	a.send("i1 IDLE\r\n")
	if line := a.readLine(); !strings.HasPrefix(line, "+") {
		t.Fatalf("IDLE: %q", line)
	}
	b.cmd(`STORE 1 +FLAGS (\Flagged)`)
	b.cmd(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	b.cmd("EXPUNGE")
	var got []string
	for len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "* OK [HIGHESTMODSEQ ") {
		got = append(got, strings.TrimRight(a.readLine(), "\r\n")) // fails after 20 s without it
	}
	if want := "* VANISHED 2"; !slices.Contains(got, want) {
		t.Errorf("IDLE after another session's expunge: want %q before HIGHESTMODSEQ:\n%s", want, strings.Join(got, "\n"))
	}
	if n := strings.Count(strings.Join(got, "\n"), "HIGHESTMODSEQ"); n != 1 {
		t.Errorf("IDLE: %d HIGHESTMODSEQ responses, want 1 (none for the flag changes):\n%s", n, strings.Join(got, "\n"))
	}
	a.send("DONE\r\n")
	if _, st := a.readUntil("i1"); !strings.HasPrefix(st, "i1 OK") {
		t.Errorf("IDLE ended with %q", st)
	}
}
