package imapserver

import (
	"context"
	"fmt"
	"mime"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/charset"

	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/bridge/imapserver/dovecotref"
	"github.com/asmtp/asmtp/bridge/imapserver/testmail"
)

// appendCmd is an APPEND with flags, a fixed date and a LITERAL+ literal.
func appendCmd(mailbox, flags string, raw []byte) string {
	return fmt.Sprintf(`APPEND %s (%s) "05-Mar-2024 10:20:30 +0100" {%d+}`+"\r\n%s", mailbox, flags, len(raw), raw)
}

// edgeMessages are MIME shapes beyond the corpus.
var edgeMessages = [][]byte{
	[]byte("Subject: no body separator\r\nFrom: a@b.c\r\n"),
	[]byte("From: \"Doe, Jane\" <jane@example.com>, bob@example.org\r\nTo: Team <team@example.com>\r\nCc: =?iso-8859-1?q?J=FCrgen?= <j@example.de>\r\n" +
		"Subject: =?utf-8?b?w6nDqMOg?=\r\nDate: Tue, 5 Mar 2024 01:02:03 -0800\r\nIn-Reply-To: <a@x> <b@y>\r\nMessage-ID: <id@host>\r\n\r\nbody\r\n"),
	[]byte("Subject: digest\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: inner one\r\n\r\none\r\n--d\r\n\r\nSubject: inner two\r\n\r\ntwo\r\n--d--\r\n"),
	[]byte("Subject: missing boundary\r\nContent-Type: multipart/mixed\r\n\r\nplain really\r\n"),
	[]byte("Subject: nested\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n" +
		"--i\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\nContent-Language: en, fr\r\n\r\nhi\r\n--i\r\nContent-Type: text/html\r\n\r\n<b>hi</b>\r\n--i--\r\n" +
		"--o\r\nContent-Type: image/png; name=a.png\r\nContent-ID: <img1>\r\nContent-Description: a picture\r\nContent-Disposition: inline; filename=a.png\r\n" +
		"Content-Transfer-Encoding: base64\r\nContent-Location: http://example.com/a.png\r\n\r\niVBORw0K\r\n--o--\r\n"),
}

// fixture APPENDs the corpus' five shapes and the edge messages to INBOX.
func fixture() []string {
	var cmds []string
	for i := range 5 {
		flags := []string{"", `\Seen`, `\Flagged $Work`, `\Answered \Seen`, `\Draft`}[i]
		cmds = append(cmds, appendCmd("INBOX", flags, testmail.Message(i)))
	}
	for _, m := range edgeMessages {
		cmds = append(cmds, appendCmd("INBOX", "", m))
	}
	return cmds
}

type conversation struct {
	name string
	cmds []string
	// known lists, by command, differences from Dovecot that are deliberate
	// or come from go-imap; each says why.
	known map[string]string
}

var conversations = []conversation{
	{name: "noop-check-namespace", cmds: []string{"NOOP", "CHECK", "NAMESPACE"}, known: map[string]string{
		"CHECK": "go-imap accepts CHECK outside the selected state (as NOOP); Dovecot answers BAD",
	}},
	{name: "cte-case", cmds: []string{
		appendCmd("INBOX", "", []byte("Content-Type: application/pdf\r\nContent-Transfer-Encoding: BASE64\r\n\r\nAAAA\r\n")),
		"SELECT INBOX", "FETCH 1 BODYSTRUCTURE",
	}, known: map[string]string{
		"FETCH 1 BODYSTRUCTURE": "go-imap writes the transfer encoding in lower case (for Outlook for iOS); Dovecot copies the header",
	}},
	{name: "envelope-groups", cmds: []string{
		appendCmd("INBOX", "", []byte("To: undisclosed-recipients:;\r\nCc: Team: a@b.c, d@e.f;\r\nSubject: groups\r\n\r\nx\r\n")),
		"SELECT INBOX", "FETCH 1 ENVELOPE",
	}},
	{name: "search-uid-star", cmds: append(fixture()[:3], "SELECT INBOX",
		"SEARCH UID *", "SEARCH UID 99:*", "UID SEARCH UID 99:*", "UID SEARCH UID 3:99", "SEARCH UID 2:*", "UID SEARCH 3:*")},
	{name: "envelope-route", cmds: []string{
		appendCmd("INBOX", "", []byte("From: Joe <@relay.example:joe@example.com>\r\nTo: g: a@x.example, b@y.example;, c@z.example\r\nSubject: route\r\n\r\nx\r\n")),
		"SELECT INBOX", "FETCH 1 ENVELOPE"},
		known: map[string]string{"FETCH 1 ENVELOPE": "go-imap's Address has no route (adl) field: the bridge gives NIL where Dovecot gives \"@relay.example\""}},
	{name: "search-from-parsed", cmds: []string{
		appendCmd("INBOX", "", []byte("From: <user (comment)@ (comment) example.com>\r\nSubject: parsed\r\n\r\nx\r\n")),
		appendCmd("INBOX", "", []byte("From: \"Other\" <user@example.org>\r\nSubject: parsed\r\n\r\nx\r\n")),
		"SELECT INBOX", "SEARCH FROM user@example.com", "SEARCH FROM example.com", "SEARCH FROM Other"}},
	{name: "binary", cmds: []string{
		appendCmd("INBOX", "", []byte("Subject: binary\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"+
			"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n--b\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nD=C3=A9j=C3=A0 vu=\r\n!\r\n--b--\r\n")),
		"APPEND INBOX ~{23+}\r\nSubject: lit8\r\n\r\nbody\r\n",
		"SELECT INBOX", "FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])", "FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])",
		"FETCH 1 BINARY.PEEK[2]<1.4>", "FETCH 1 BINARY[1]", "FETCH 2 (BINARY.PEEK[1] BINARY.SIZE[1] FLAGS)"},
		known: map[string]string{"FETCH 1 BINARY.PEEK[2]<1.4>": "go-imap beta.8's WriteBinarySection writes no <origin> after a partial BINARY[] (unlike BODY[]); Dovecot does"}},
	{name: "move-to-selected", cmds: append(fixture()[:2], "SELECT INBOX", "MOVE 1 INBOX", "FETCH 1:* UID", "UID MOVE 2 INBOX", "NOOP")},
	{name: "bad-names", cmds: []string{`CREATE "a&Jjo"`, `CREATE "&AGE-"`, `CREATE "&ZZZ-"`, `SELECT "&Jjo"`, "CREATE {3+}\r\na\x00b",
		`RENAME INBOX "&Jj"`, `STATUS "&-&" (MESSAGES)`},
		known: map[string]string{"CREATE {3+}\r\na\x00b": "the bridge refuses a NUL in a mailbox name with NO; Dovecot accepts it"}},
	{name: "recent", cmds: append(fixture()[:3], "STATUS INBOX (RECENT MESSAGES)", "EXAMINE INBOX", "SELECT INBOX",
		"FETCH 1:* FLAGS", "SEARCH RECENT", "SEARCH NEW", "SEARCH OLD", "STATUS INBOX (RECENT)", `STORE 1 +FLAGS (\Seen)`,
		"SEARCH NEW", appendCmd("INBOX", "", testmail.Message(3)), "FETCH 4 FLAGS", "SEARCH RECENT", "UNSELECT",
		"SELECT INBOX", "SEARCH RECENT", "FETCH 1:* FLAGS", "COPY 1 Archive", "STATUS Archive (RECENT)")},
	{name: "new-keyword", cmds: append(fixture()[:1], "SELECT INBOX", `STORE 1 +FLAGS ($Brandnew)`, "FETCH 1 FLAGS", `UID STORE 1 FLAGS ($Other \Seen)`,
		`STORE 1 FLAGS.SILENT ($Third)`, "FETCH 1 FLAGS")},
	{name: "id", cmds: []string{"ID NIL", `ID ("name" "conversation-test")`}},
	{name: "create-list-delete", cmds: []string{
		"CREATE Work", "CREATE Work", `CREATE "Lists/"`, `LIST "" "*"`, `LIST "" "%"`, `LIST "" "L*"`,
		`LIST "" ""`, "DELETE Work", "DELETE Work", "DELETE INBOX", `LIST "" "W*"`,
	}},
	{name: "hierarchy", cmds: []string{
		"CREATE a/b/c", `LIST "" "a*"`, `LIST "a/" "%"`, "DELETE a", "DELETE a/b/c", "DELETE a/b", "DELETE a", `LIST "" "a*"`,
	}, known: map[string]string{
		`LIST "" "a*"`:  "the store creates the parents a and a/b as real mailboxes (RFC 3501 6.3.3 SHOULD); Dovecot's are \\NonExistent",
		`LIST "a/" "%"`: "same parents",
		"DELETE a":      "same parents: Dovecot has no mailbox a to delete",
		"DELETE a/b":    "same parents",
	}},
	{name: "rename", cmds: []string{
		"CREATE Old", "CREATE Old/Child", appendCmd("Old", `\Seen`, testmail.Message(1)), "RENAME Old New",
		`LIST "" "*Old*"`, `LIST "" "New*"`, "STATUS New (MESSAGES UNSEEN)", "RENAME Nope Other", "CREATE Taken", "RENAME New Taken",
	}},
	{name: "subscribe", cmds: []string{
		"CREATE Sub", `LSUB "" "*"`, "SUBSCRIBE Sub", `LSUB "" "S*"`, `LIST (SUBSCRIBED) "" "S*"`, "UNSUBSCRIBE Sub", `LSUB "" "S*"`,
	}},
	{name: "subscriptions", cmds: []string{
		"CREATE a", "CREATE a/b", "CREATE a/b/c", "CREATE a/x", "CREATE gone", "CREATE gone/kid", "SUBSCRIBE a/b/c", "SUBSCRIBE gone/kid", "SUBSCRIBE gone",
		"DELETE gone/kid", `LSUB "" "*"`, `LSUB "" "%"`, `LSUB "" "a/%"`, `LSUB "a/" "%"`, `LIST (SUBSCRIBED) "" "*"`,
		`LIST (SUBSCRIBED) "" "%"`, `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`, `LIST (SUBSCRIBED RECURSIVEMATCH) "" "a/%"`,
		`LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"`, `LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)`, `LIST "" "*" RETURN (SUBSCRIBED)`,
		`LIST (SUBSCRIBED) "" "g*" RETURN (STATUS (MESSAGES))`, `LIST (RECURSIVEMATCH) "" "%"`, `LIST "" "*"`,
		"SUBSCRIBE nope", "UNSUBSCRIBE gone/kid", "UNSUBSCRIBE gone/kid", "CREATE gone/kid", `LSUB "" "gone*"`,
		"SUBSCRIBE a/x", "RENAME a/x a/y", `LSUB "" "a/*"`, "DELETE gone/kid", "DELETE gone", `LIST (SUBSCRIBED) "" "gone*"`,
	}},
	{name: "special-use", cmds: []string{`LIST (SPECIAL-USE) "" "*"`, `LIST "" "*" RETURN (SPECIAL-USE)`}},
	{name: "status", cmds: append(fixture()[:3],
		"STATUS INBOX (MESSAGES RECENT UNSEEN SIZE)", "STATUS Nope (MESSAGES)", `LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN))`)},
	{name: "select-examine", cmds: append(fixture()[:3],
		"SELECT INBOX", "EXAMINE INBOX", "SELECT Nope", "SELECT INBOX", "UNSELECT", "FETCH 1 FLAGS")},
	{name: "append", cmds: []string{
		appendCmd("INBOX", `\Seen $Label1`, testmail.Message(3)), appendCmd("Nope", "", testmail.Message(3)),
		"SELECT INBOX", "FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE)",
	}},
	{name: "fetch-shapes", cmds: append(fixture(), "SELECT INBOX",
		"FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)", "FETCH 1:* (BODYSTRUCTURE)", "FETCH 1:* (BODY)",
		"FETCH 1 FAST", "FETCH 2 ALL", "FETCH 3 FULL")},
	{name: "fetch-sections", cmds: append(fixture(), "SELECT INBOX",
		"FETCH 2 (BODY.PEEK[HEADER] BODY.PEEK[TEXT])", "FETCH 3 (BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[2.MIME])",
		"FETCH 5 (BODY.PEEK[2] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1])",
		"FETCH 10 (BODY.PEEK[1.1] BODY.PEEK[1.2] BODY.PEEK[2])",
		"FETCH 1 (BODY.PEEK[HEADER.FIELDS (From Subject)] BODY.PEEK[HEADER.FIELDS.NOT (From Subject To Date Message-ID)])",
		"FETCH 1 (BODY.PEEK[]<0.20> BODY.PEEK[TEXT]<5.10> BODY.PEEK[]<100000.5>)",
		"FETCH 1 (RFC822.HEADER RFC822.SIZE)", "FETCH 1 BODY[TEXT]", "FETCH 1 FLAGS", "FETCH 4 RFC822", "FETCH 4 FLAGS",
		"FETCH 99 FLAGS", "FETCH 0 FLAGS"),
		known: map[string]string{"FETCH 0 FLAGS": "go-imap rejects the set while parsing and answers NO [SERVERBUG]; Dovecot says BAD"}},
	{name: "store", cmds: append(fixture()[:4], "SELECT INBOX",
		`STORE 1 +FLAGS (\Flagged)`, `STORE 1:2 -FLAGS (\Seen)`, `STORE 3 FLAGS ($A $B)`, `STORE 4 +FLAGS.SILENT (\Deleted)`,
		`UID STORE 1 +FLAGS ($Work)`, `STORE 2 +FLAGS (\Recent)`, `FETCH 1:* FLAGS`, `STORE 1 +FLAGS (\Bogus)`),
	},
	{name: "search", cmds: append(fixture(), "SELECT INBOX",
		"SEARCH ALL", "SEARCH SEEN", "SEARCH UNSEEN", "SEARCH FLAGGED", "SEARCH KEYWORD $Work", "SEARCH UNKEYWORD $Work",
		"SEARCH DRAFT", "SEARCH ANSWERED UNANSWERED", "SEARCH SUBJECT message", "SEARCH FROM sender1", `SEARCH TO "other@example.net"`,
		"SEARCH HEADER Message-ID msg3", "SEARCH HEADER In-Reply-To \"\"", "SEARCH BODY token00002", "SEARCH TEXT token00004",
		"SEARCH TEXT attachment", "SEARCH BODY Déjà", "SEARCH LARGER 1500", "SEARCH SMALLER 300",
		"SEARCH SINCE 5-Mar-2024", "SEARCH BEFORE 5-Mar-2024", "SEARCH ON 5-Mar-2024",
		"SEARCH SENTSINCE 1-Jan-2024 SENTBEFORE 2-Jan-2024", "SEARCH SENTON 5-Mar-2024",
		"SEARCH OR SEEN FLAGGED", "SEARCH NOT SEEN", "SEARCH 2:4", "SEARCH UID 3:*", "SEARCH (SEEN) (OR DRAFT FLAGGED)",
		"UID SEARCH ALL", "UID SEARCH RETURN (MIN MAX COUNT) ALL", "SEARCH RETURN (ALL) UNSEEN", "SEARCH CHARSET UTF-8 BODY token",
		"SEARCH BOGUS"),
		known: map[string]string{
			"SEARCH BODY Déjà": "go-imap accepts 8-bit search strings without CHARSET; Dovecot says BAD",
			"SEARCH BOGUS":     "go-imap answers an unknown search key with NO; Dovecot with BAD",
		}},
	{name: "copy-move", cmds: append(fixture()[:4], "SELECT INBOX",
		"COPY 1:2 Archive", "UID COPY 3 Archive", "COPY 1 Nope", "MOVE 2 Trash", "UID MOVE 3:4 Trash", "FETCH 1:* (UID FLAGS)",
		"STATUS Archive (MESSAGES)", "SELECT Trash", "FETCH 1:* (UID FLAGS)")},
	{name: "copy-into-selected", cmds: append(fixture()[:4], "SELECT INBOX", "COPY 1:4 INBOX", "UID COPY 2:3 INBOX",
		appendCmd("INBOX", "", testmail.Message(4)), "FETCH 1:* (UID FLAGS)", "NOOP")},
	{name: "expunge", cmds: append(fixture()[:5], "SELECT INBOX",
		`STORE 2,4 +FLAGS.SILENT (\Deleted)`, "EXPUNGE", "FETCH 1:* UID", `STORE 1:3 +FLAGS.SILENT (\Deleted)`, "UID EXPUNGE 1:2",
		"FETCH 1:* UID", "CLOSE", "STATUS INBOX (MESSAGES)")},
	{name: "invalid-names", cmds: []string{`CREATE "&Jjo"`, `CREATE "a&-b&AGE-"`, `SELECT "x&AOk"`, `RENAME INBOX "&AOk-&AOk-"`,
		`STATUS "&Jjo" (MESSAGES)`, `LIST "" "&Jjo"`, "NOOP"}},
	{name: "sort", cmds: append(append(sortFixture(), threadFixture()...), "SELECT INBOX",
		"SORT (SUBJECT) UTF-8 ALL", "SORT (REVERSE DATE) UTF-8 ALL", "SORT (DATE) US-ASCII ALL", "SORT (ARRIVAL) UTF-8 ALL",
		"SORT (REVERSE ARRIVAL) UTF-8 ALL", "SORT (FROM) UTF-8 ALL", "SORT (TO) UTF-8 ALL", "SORT (CC REVERSE SIZE) UTF-8 ALL",
		"SORT (SIZE) UTF-8 ALL", "SORT (REVERSE SUBJECT DATE) UTF-8 SEEN", "UID SORT (DATE) UTF-8 2:9",
		"SORT (SUBJECT) UTF-8 OR FROM bob SUBJECT hello", "SORT (DATE) KOI8-R ALL", "SORT () UTF-8 ALL", "SORT (BOGUS) UTF-8 ALL",
		"SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL", "UID SORT RETURN (ALL) (REVERSE ARRIVAL) UTF-8 ALL",
		"SORT RETURN () (SUBJECT) UTF-8 ALL", "SORT RETURN (COUNT) (SUBJECT) UTF-8 NOT ALL", "SORT RETURN (MAX) (SIZE) UTF-8 SEEN",
		// The bridge keeps whole-mailbox orders until messages come or go.
		"SORT (SUBJECT) UTF-8 ALL", appendAt(1, threadMessage("<s@x>", "AAA first", "Mon, 1 Jan 2024 09:00:00 +0000", "", ""), ""), "SORT (SUBJECT) UTF-8 ALL",
		`STORE 1,3 +FLAGS.SILENT (\Deleted)`, "EXPUNGE", "SORT (SUBJECT) UTF-8 ALL", "SORT (REVERSE DATE) UTF-8 ALL"),
		known: map[string]string{
			"SORT (DATE) KOI8-R ALL": "the bridge takes UTF-8 and US-ASCII only (NO [BADCHARSET]), as in SEARCH; Dovecot converts any charset iconv knows",
		}},
	{name: "thread", cmds: append(threadFixture(), "SELECT INBOX",
		"THREAD ORDEREDSUBJECT UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL", "UID THREAD REFERENCES UTF-8 ALL",
		"THREAD REFERENCES UTF-8 SEEN", "UID THREAD ORDEREDSUBJECT UTF-8 UNSEEN", "THREAD REFERENCES UTF-8 2:4", "THREAD BOGUS UTF-8 ALL",
		// The bridge keeps whole-mailbox threads until messages come or go.
		"THREAD REFERENCES UTF-8 ALL", appendAt(1, threadMessage("<t@x>", "Re: Other", "Sat, 6 Jan 2024 09:00:00 +0000", "<f@x>", ""), ""),
		"THREAD REFERENCES UTF-8 ALL", `STORE 1:2 +FLAGS.SILENT (\Deleted)`, "EXPUNGE", "THREAD REFERENCES UTF-8 ALL")},
	{name: "multiappend", cmds: []string{
		`APPEND INBOX (\Seen) "05-Mar-2024 10:20:30 +0100" ` + lit(plainA) + ` ($Work) ` + lit(plainB) + " " + lit(multi),
		"STATUS INBOX (MESSAGES)",
		"APPEND Nope " + lit(plainA) + " " + lit(plainB),
		"APPEND INBOX " + lit(plainA) + " " + lit(""),
		"STATUS INBOX (MESSAGES)",
		"SELECT INBOX", "FETCH 1:* (FLAGS RFC822.SIZE BODY.PEEK[])", "FETCH 1 INTERNALDATE", // the others are dated by the clock
		"APPEND INBOX " + lit(plainB) + " " + lit(plainA), "FETCH 4:* (UID BODY.PEEK[HEADER])",
	}},
	{name: "catenate", cmds: []string{
		appendCmd("INBOX", `\Seen`, []byte(plainA)), appendCmd("INBOX", "", []byte(multi)),
		"APPEND INBOX CATENATE (TEXT " + lit("Subject: built\r\n\r\n") + ` URL "/INBOX/;UID=1/;SECTION=TEXT")`,
		`APPEND INBOX (\Flagged) CATENATE (URL "/INBOX/;UID=2/;SECTION=1" TEXT ` + lit("\r\n--tail\r\n") + ` URL "/INBOX/;UID=2/;SECTION=2.MIME")`,
		`APPEND INBOX CATENATE (URL "/INBOX/;UID=2")`,
		`APPEND INBOX CATENATE (URL "/INBOX/;UID=2/;SECTION=HEADER" TEXT ` + lit("\r\npartial:") + ` URL "/INBOX/;UID=1/;SECTION=TEXT/;PARTIAL=2.5")`,
		`APPEND INBOX CATENATE (URL "/INBOX/;UID=99")`,
		`APPEND INBOX CATENATE (URL "/Nope/;UID=1")`,
		`APPEND INBOX CATENATE (URL "/INBOX;UIDVALIDITY=1/;UID=1")`,
		`APPEND INBOX CATENATE (TEXT ` + lit("Subject: x\r\n\r\n") + ` URL "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(FROM)")`,
		"APPEND INBOX " + lit(plainB) + " CATENATE (TEXT " + lit("Subject: two in one\r\n\r\n") + ` URL "/INBOX/;UID=1/;SECTION=TEXT")`,
		"STATUS INBOX (MESSAGES)",
		"SELECT INBOX", `APPEND INBOX CATENATE (URL ";UID=1/;SECTION=HEADER" TEXT ` + lit("\r\nrelative\r\n") + ")",
		"FETCH 1:* (FLAGS BODY.PEEK[])",
	}},
	{name: "idle", cmds: append(fixture()[:1], "SELECT INBOX", "IDLE", "NOOP")},
	{name: "state-errors", cmds: []string{"FETCH 1 FLAGS", "EXPUNGE", "STORE 1 +FLAGS (\\Seen)", "LOGIN x y", "SELECT"}},
}

// TestConversationsAgainstDovecot runs each conversation against the bridge
// and against a throwaway Dovecot and compares the normalised answers.
func TestConversationsAgainstDovecot(t *testing.T) {
	dove := startDovecot(t)
	ts := startServerFor(t, numberedUsers("conv", len(conversations))...)

	for i, conv := range conversations {
		t.Run(conv.name, func(t *testing.T) {
			user := fmt.Sprintf("conv%d", i)
			diffs := 0
			defer func() { t.Logf("%d commands, %d unexplained differences", len(conv.cmds), diffs) }()
			ours := converse(t, ts.addr, user, testToken, conv.cmds)
			theirs := converse(t, dove.Addr, user, dovecotref.Password, conv.cmds)
			for j, cmd := range conv.cmds {
				if ours[j] == theirs[j] {
					continue
				}
				if why, ok := conv.known[cmd]; ok {
					t.Logf("known difference in %q: %s", trim(cmd), why)
					continue
				}
				t.Errorf("%s\n--- bridge:\n%s\n--- dovecot:\n%s", trim(cmd), ours[j], theirs[j])
				diffs++
			}
		})
	}
}

// restartWith restarts the server with other options (same store and port).
func (ts *testServer) restartWith(t testing.TB, configure func(*Options)) {
	t.Helper()
	ts.ln.Close()
	ts.srv.Close()
	ts.serve(t, configure)
}

// startDovecot runs a throwaway Dovecot until the test ends; settings are
// extra lines for its configuration.
func startDovecot(t *testing.T, settings ...string) *dovecotref.Server {
	t.Helper()
	dove, err := dovecotref.Start(context.Background(), t.TempDir(), settings...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dove.Stop)
	return dove
}

// startServerFor starts a server whose only accounts are users, each
// logging in with testToken as on Dovecot with its password.
func startServerFor(t *testing.T, users ...string) *testServer {
	t.Helper()
	ts := startServer(t)
	tokens := make(map[string]string, len(users))
	for _, u := range users {
		tokens[u] = testToken
	}
	ts.restartWith(t, func(o *Options) { o.Authenticator = auth.NewTokenAuthenticator(tokens) })
	for _, u := range users {
		if err := ts.store.CreateAccount(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	return ts
}

// numberedUsers names n accounts prefix0, prefix1, ...: one for each
// conversation of a table, so that none sees another's mail.
func numberedUsers(prefix string, n int) []string {
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return users
}

// converse logs in, runs cmds and returns each one's normalised answer.
func converse(t *testing.T, addr, user, password string, cmds []string) []string {
	t.Helper()
	c := dialRaw(t, addr)
	if _, st := c.cmd(fmt.Sprintf("LOGIN %s %s", user, password)); !strings.Contains(st, "OK") {
		t.Fatalf("login at %s: %s", addr, st)
	}
	var out []string
	for _, cmd := range cmds {
		var untagged []string
		var status string
		if cmd == "IDLE" {
			c.n++
			tag := fmt.Sprintf("t%d", c.n)
			c.send(tag + " IDLE\r\n")
			if line := c.readLine(); !strings.HasPrefix(line, "+") {
				t.Fatalf("IDLE at %s: %q", addr, line)
			}
			c.send("DONE\r\n")
			untagged, status = c.readUntil(tag)
			untagged = append([]string{"+"}, untagged...)
		} else {
			untagged, status = c.cmd(cmd)
		}
		out = append(out, normalizeAnswer(cmd, untagged, status))
	}
	c.cmd("LOGOUT")
	return out
}

// keptCodes are the response codes clients act on; others are compared away.
var keptCodes = map[string]bool{
	"TRYCREATE": true, "TOOBIG": true, "READ-ONLY": true, "READ-WRITE": true, "APPENDUID": true, "COPYUID": true,
	"UIDNEXT": true, "UIDVALIDITY": true, "UNSEEN": true, "PERMANENTFLAGS": true,
}

var (
	dropUntagged = regexp.MustCompile(`^\* (CAPABILITY|OK \[(HIGHESTMODSEQ|CLOSED)|ID )`)
	statusText   = regexp.MustCompile(`^(\S+ (?:OK|NO|BAD|BYE|PREAUTH))(?: \[([^\]]*)\])?.*$`)
	appendUID    = regexp.MustCompile(`^(APPENDUID|COPYUID|UIDVALIDITY) \d+`)
)

// normalizeAnswer removes what legitimately differs between servers: human
// text, capability lists, UIDVALIDITY
// values, and the order of items in FETCH and of LIST/LSUB/STATUS lines.
func normalizeAnswer(cmd string, untagged []string, status string) string {
	var lines []string
	for _, line := range untagged {
		if dropUntagged.MatchString(line) {
			continue
		}
		line = normalizeLine(line)
		lines = append(lines, line)
	}
	if strings.HasPrefix(strings.ToUpper(cmd), "SELECT") || strings.HasPrefix(strings.ToUpper(cmd), "EXAMINE") ||
		strings.Contains(strings.ToUpper(cmd), "LIST") || strings.HasPrefix(strings.ToUpper(cmd), "LSUB") {
		slices.Sort(lines)
	}
	lines = append(lines, normalizeStatus(status))
	return strings.Join(lines, "\n")
}

func normalizeStatus(line string) string {
	m := statusText.FindStringSubmatch(line)
	if m == nil {
		return line
	}
	word := m[1]
	word = word[strings.IndexByte(word, ' ')+1:] // drop the tag
	code := m[2]
	if code == "CLIENTBUG" && strings.HasSuffix(word, "OK") {
		code = "" // Dovecot's warning on STATUS of the selected mailbox
	}
	code = appendUID.ReplaceAllString(code, "$1 V")
	name, _, _ := strings.Cut(code, " ")
	if !keptCodes[name] {
		code = "" // servers differ in which codes they add to errors
	}
	if code == "" {
		return word
	}
	if name == "PERMANENTFLAGS" { // Dovecot lists keywords in creation order, the bridge sorted
		list := strings.Fields(strings.Trim(strings.TrimPrefix(code, name), " ()"))
		slices.Sort(list)
		code = name + " (" + strings.Join(list, " ") + ")"
	}
	if strings.HasPrefix(line, "* ") {
		return "* " + word + " [" + code + "]"
	}
	return word + " [" + code + "]"
}

func normalizeLine(line string) string {
	if strings.HasPrefix(line, "* OK") || strings.HasPrefix(line, "* NO") || strings.HasPrefix(line, "* BAD") {
		return normalizeStatus(line)
	}
	tokens, err := parseIMAP(line)
	if err != nil {
		return "UNPARSED " + line
	}
	if len(tokens) >= 3 && tokens[2].atom == "FETCH" && tokens[len(tokens)-1].isList {
		items := tokens[len(tokens)-1].list
		var pairs []string
		for k := 0; k+1 < len(items); k += 2 {
			v := items[k+1]
			switch strings.ToUpper(items[k].atom) {
			case "FLAGS":
				v = normalizeFlags(v)
			case "INTERNALDATE":
				if d, err := time.Parse("_2-Jan-2006 15:04:05 -0700", v.atom); err == nil {
					v.atom = d.UTC().Format(time.RFC3339)
				}
			case "ENVELOPE", "BODYSTRUCTURE", "BODY":
				v = normalizeEnvelopes(v)
			}
			key := strings.ReplaceAll(strings.ToUpper(items[k].atom), `"`, "") // BODY[HEADER.FIELDS ("FROM")]
			pairs = append(pairs, key+" "+v.String())
		}
		slices.Sort(pairs)
		return "* " + tokens[1].atom + " FETCH (" + strings.Join(pairs, " ") + ")"
	}
	if len(tokens) >= 4 && (tokens[1].atom == "LIST" || tokens[1].atom == "LSUB") {
		if tokens[1].atom == "LSUB" && tokens[2].isList { // the bridge also marks LSUB lines \Subscribed
			tokens[2].list = slices.DeleteFunc(tokens[2].list, func(a imapToken) bool { return a.atom == `\Subscribed` })
		}
		tokens[4].isString = false // a mailbox name, quoted or not
	}
	if len(tokens) == 4 && tokens[1].atom == "STATUS" && tokens[3].isList {
		tokens[2].isString = false
		items := tokens[3].list
		var pairs []string
		for k := 0; k+1 < len(items); k += 2 {
			pairs = append(pairs, items[k].atom+" "+items[k+1].String())
		}
		slices.Sort(pairs)
		return "* STATUS " + tokens[2].String() + " (" + strings.Join(pairs, " ") + ")"
	}
	if len(tokens) >= 2 && (tokens[1].atom == "FLAGS" || tokens[1].atom == "SEARCH") {
		rest := tokens[2:]
		if tokens[1].atom == "FLAGS" && len(rest) == 1 {
			rest = []imapToken{normalizeFlags(rest[0])}
		}
		var s []string
		for _, tok := range rest {
			s = append(s, tok.String())
		}
		return "* " + tokens[1].atom + " " + strings.Join(s, " ")
	}
	var s []string
	for _, tok := range tokens {
		s = append(s, tok.String())
	}
	return strings.Join(s, " ")
}

// normalizeEnvelopes rewrites, inside an ENVELOPE or a body structure, what
// servers may legitimately write differently: encoded-words in strings
// (decoded here) and the envelope date (go-imap re-formats the Date header,
// Dovecot copies it).
func normalizeEnvelopes(tok imapToken) imapToken {
	if tok.isString {
		if d, err := mail.ParseDate(tok.atom); err == nil {
			tok.atom = d.Format(time.RFC3339)
		} else if dec, err := wordDecoder.DecodeHeader(tok.atom); err == nil {
			tok.atom = dec
		}
		return tok
	}
	if tok.isList {
		list := make([]imapToken, len(tok.list))
		for i, t := range tok.list {
			list[i] = normalizeEnvelopes(t)
		}
		tok.list = list
	}
	return tok
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// normalizeFlags sorts a flag list.
func normalizeFlags(tok imapToken) imapToken {
	if !tok.isList {
		return tok
	}
	flags := slices.Clone(tok.list)
	slices.SortFunc(flags, func(a, b imapToken) int { return strings.Compare(strings.ToLower(a.atom), strings.ToLower(b.atom)) })
	return imapToken{isList: true, list: flags}
}
