package imapserver

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/asmtp/asmtp/bridge/imapserver/dovecotref"
	"github.com/asmtp/asmtp/bridge/imapserver/testmail"
)

// step is one command of a multi-session script, run by session a or b;
// differs, if set, says why a's answer deliberately differs from Dovecot's
// beyond the status, which must still match.
type step struct {
	session byte
	cmd     string
	differs string
}

// Dovecot keeps serving a message expunged by another session until it
// tells the session; the bridge's shared view has dropped it, so it leaves
// the message out of the answer, as RFC 2180 §4.1.2 allows.
const omitsExpunged = "the bridge omits messages expunged elsewhere (RFC 2180 §4.1.2), Dovecot still serves them"

// sessionScripts run two sessions on one mailbox seeded with three
// messages. Session a's answers are compared with Dovecot's; b only makes
// changes behind a's back.
var sessionScripts = []struct {
	name  string
	steps []step
}{
	{name: "expunged-last-elsewhere", steps: []step{
		{'a', "SELECT INBOX", ""}, {'b', "SELECT INBOX", ""},
		{'b', `STORE 3 +FLAGS.SILENT (\Deleted)`, ""}, {'b', "EXPUNGE", ""},
		{'a', "FETCH 3 UID", ""}, {'a', "FETCH 1:3 UID", omitsExpunged}, {'a', "FETCH 1:* UID", omitsExpunged},
		{'a', `STORE 3 +FLAGS (\Seen)`, omitsExpunged}, {'a', `STORE 2:3 +FLAGS (\Seen)`, ""},
		{'a', "SEARCH ALL", omitsExpunged}, {'a', "NOOP", ""}, {'a', "FETCH 1:* UID", ""},
	}},
	{name: "expunged-last-two-elsewhere", steps: []step{
		{'a', "SELECT INBOX", ""}, {'b', "SELECT INBOX", ""},
		{'b', `STORE 2:3 +FLAGS.SILENT (\Deleted)`, ""}, {'b', "EXPUNGE", ""},
		{'a', "FETCH 2:3 FLAGS", omitsExpunged}, {'a', "FETCH 1:3 UID", omitsExpunged},
		{'a', "UID FETCH 1:* UID", omitsExpunged}, {'a', "NOOP", ""}, {'a', "FETCH 1:* UID", ""},
	}},
	{name: "expunged-and-appended-elsewhere", steps: []step{
		{'a', "SELECT INBOX", ""}, {'b', "SELECT INBOX", ""},
		{'b', `STORE 3 +FLAGS.SILENT (\Deleted)`, ""}, {'b', "EXPUNGE", ""},
		{'b', appendCmd("INBOX", "", testmail.Message(3)), ""},
		{'a', "FETCH 1:3 UID", omitsExpunged}, {'a', "FETCH 4 UID", ""}, {'a', "NOOP", ""}, {'a', "FETCH 1:* UID", ""},
	}},
}

// TestSessionsAgainstDovecot: a message expunged by another session stays
// addressable by number until the session is told (RFC 3501 §7.4.1).
func TestSessionsAgainstDovecot(t *testing.T) {
	dove := startDovecot(t)
	ts := startServerFor(t, numberedUsers("multi", len(sessionScripts))...)
	for i, script := range sessionScripts {
		t.Run(script.name, func(t *testing.T) {
			user := fmt.Sprintf("multi%d", i)
			ours := converseTwo(t, ts.addr, user, testToken, script.steps)
			theirs := converseTwo(t, dove.Addr, user, dovecotref.Password, script.steps)
			for j, s := range script.steps {
				switch {
				case s.session != 'a':
				case strings.Contains(ours[j], " BAD") || lastLine(ours[j]) != lastLine(theirs[j]):
					t.Errorf("%s: status differs:\n--- bridge:\n%s\n--- dovecot:\n%s", s.cmd, ours[j], theirs[j])
				case ours[j] == theirs[j]:
				case s.differs != "":
					t.Logf("known difference in %q: %s", s.cmd, s.differs)
				default:
					t.Errorf("%s\n--- bridge:\n%s\n--- dovecot:\n%s", s.cmd, ours[j], theirs[j])
				}
			}
		})
	}
}

// converseTwo seeds INBOX with three messages, then runs steps on two
// sessions and returns each step's normalised answer.
func converseTwo(t *testing.T, addr, user, password string, steps []step) []string {
	t.Helper()
	sessions := map[byte]*rawClient{}
	for _, name := range []byte{'a', 'b'} {
		c := dialRaw(t, addr)
		if _, st := c.cmd(fmt.Sprintf("LOGIN %s %s", user, password)); !strings.Contains(st, "OK") {
			t.Fatalf("login at %s: %s", addr, st)
		}
		sessions[name] = c
	}
	for i := range 3 {
		if _, st := sessions['b'].cmd(appendCmd("INBOX", "", testmail.Message(i))); !strings.Contains(st, "OK") {
			t.Fatalf("seed at %s: %s", addr, st)
		}
	}
	var out []string
	for _, s := range steps {
		untagged, status := sessions[s.session].cmd(s.cmd)
		out = append(out, mergeFetches(normalizeAnswer(s.cmd, untagged, status)))
	}
	return out
}

// mergeFetches joins the FETCH responses for one message into one, where
// the first was: servers may send a flag change apart from or inside the
// FETCH the command asked for.
func mergeFetches(answer string) string {
	var out []string
	at := map[string]int{}
	items := map[string]map[string]string{}
	for _, line := range strings.Split(answer, "\n") {
		tokens, err := parseIMAP(line)
		if err != nil || len(tokens) != 4 || tokens[2].atom != "FETCH" || !tokens[3].isList {
			out = append(out, line)
			continue
		}
		n := tokens[1].atom
		if _, ok := at[n]; !ok {
			at[n], items[n] = len(out), map[string]string{}
			out = append(out, "")
		}
		for k := 0; k+1 < len(tokens[3].list); k += 2 {
			items[n][tokens[3].list[k].atom] = tokens[3].list[k+1].String()
		}
	}
	for n, i := range at {
		var pairs []string
		for k, v := range items[n] {
			pairs = append(pairs, k+" "+v)
		}
		slices.Sort(pairs)
		out[i] = "* " + n + " FETCH (" + strings.Join(pairs, " ") + ")"
	}
	return strings.Join(out, "\n")
}

func lastLine(answer string) string { return answer[strings.LastIndex(answer, "\n")+1:] }

// TestNewKeywordAnnouncedBeforeUse: a keyword new to the mailbox reaches
// the client in * FLAGS before any FETCH uses it, for the session that
// stored it and for another one (Dovecot's order).
func TestNewKeywordAnnouncedBeforeUse(t *testing.T) {
	ts := startServer(t)
	a, b := dialRaw(t, ts.addr), dialRaw(t, ts.addr)
	a.login()
	b.login()
	a.cmd(appendCmd("INBOX", "", testmail.Message(0)))
	a.cmd("SELECT INBOX")
	b.cmd("SELECT INBOX")
	for _, tc := range []struct {
		name    string
		c       *rawClient
		cmd     string
		keyword string
	}{
		{"own STORE", a, `STORE 1 +FLAGS ($Fresh)`, "$Fresh"},
		{"other session's STORE", b, "NOOP", "$Fresh"},
		{"own UID STORE", b, `UID STORE 1 +FLAGS ($Newer)`, "$Newer"},
		{"other session's UID STORE", a, "NOOP", "$Newer"},
	} {
		untagged, status := tc.c.cmd(tc.cmd)
		announced, used := -1, -1
		for i, line := range untagged {
			switch {
			case strings.HasPrefix(line, "* FLAGS") && strings.Contains(line, tc.keyword) && announced < 0:
				announced = i
			case strings.Contains(line, "FETCH") && strings.Contains(line, tc.keyword) && used < 0:
				used = i
			}
		}
		if !strings.Contains(status, "OK") || announced < 0 || used < 0 || used < announced {
			t.Errorf("%s: %s announced at %d, used at %d: %q %s", tc.name, tc.keyword, announced, used, untagged, status)
		}
	}
}
