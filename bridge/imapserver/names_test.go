package imapserver

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestInvalidMailboxNamesGetNo checks that names go-imap cannot decode
// (invalid modified UTF-7, control characters, a NUL in a literal) get a
// plain NO, not NO [SERVERBUG], and that the connection goes on; before the
// framer checked them, a literal name with a NUL also closed it.
func TestInvalidMailboxNamesGetNo(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	c.login()
	tests := []string{
		`CREATE "&Jjo"`,         // base64 that is not UTF-16
		`CREATE "a&-b&AGE-"`,    // a shift holding ASCII
		`CREATE "&AOk-&AOk-"`,   // two shifts in a row
		`CREATE "x&AOk"`,        // unterminated shift
		"CREATE \"a\x01b\"",     // control character
		"CREATE {3+}\r\na\x00b", // NUL in a literal
		`DELETE "&Jjo"`,         // every command taking a name
		`RENAME INBOX "&Jjo"`,   // the second argument
		"RENAME {3+}\r\nabc {3+}\r\na\x00c",
		`SUBSCRIBE "&Jjo"`,
		`STATUS "&Jjo" (MESSAGES)`,
		`SELECT "&Jjo"`,
		"APPEND \"&Jjo\" {3+}\r\nx\r\n",
	}
	lists := []string{ // list nothing
		`LIST "" "&Jjo"`,
		`LIST "&Jjo" "*"`,
		`LSUB "" "&Jjo"`,
		`LIST (SUBSCRIBED) "" "&Jjo"`,
		`LIST "" ("a" "&Jjo")`,
	}
	for _, cmd := range tests {
		_, st := c.cmd(cmd)
		if !strings.Contains(st, " NO ") || strings.Contains(st, "SERVERBUG") {
			t.Errorf("%q: %s, want NO without SERVERBUG", cmd, st)
		}
		if _, st := c.cmd("NOOP"); !strings.Contains(st, "OK") {
			t.Fatalf("NOOP after %q: %s", cmd, st)
		}
	}
	for _, cmd := range lists {
		untagged, st := c.cmd(cmd)
		if !strings.Contains(st, " OK ") || len(untagged) != 0 {
			t.Errorf("%q: %q %s, want nothing listed and OK", cmd, untagged, st)
		}
	}
	if untagged, _ := c.cmd(`LIST (SUBSCRIBED) "" ("INBOX" "&Jjo")`); len(untagged) != 1 {
		t.Errorf("LIST of INBOX and an invalid name: %q, want INBOX", untagged)
	}
	// Valid modified UTF-7 still works: "Entwürfe" and "&" itself.
	for _, name := range []string{"Entw&APw-rfe", "a&-b"} {
		if _, st := c.cmd(`CREATE "` + name + `"`); !strings.Contains(st, "OK") {
			t.Errorf("CREATE %s: %s", name, st)
		}
	}
	if _, err := ts.store.Mailbox(t.Context(), testUser, "Entwürfe"); err != nil {
		t.Errorf("Entwürfe: %v", err)
	}
}

// TestMoveToSelectedMailbox: like Dovecot, MOVE into the selected mailbox
// gives the messages new UIDs (COPYUID, EXPUNGE, EXISTS); it answered NO
// [SERVERBUG] before.
func TestMoveToSelectedMailbox(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	c.login()
	for range 2 {
		if _, st := c.cmd("APPEND INBOX {3+}\r\nx\r\n"); !strings.Contains(st, "OK") {
			t.Fatal(st)
		}
	}
	c.cmd("SELECT INBOX")
	for _, tt := range []struct{ cmd, copyUID string }{
		{"MOVE 1 INBOX", "[COPYUID "},
		{"UID MOVE 2 INBOX", "[COPYUID "},
	} {
		untagged, st := c.cmd(tt.cmd)
		got := strings.Join(untagged, "\n")
		if !strings.Contains(st, "OK") || !strings.Contains(got, tt.copyUID) || !strings.Contains(got, "* 1 EXPUNGE") {
			t.Errorf("%s: %q %s", tt.cmd, untagged, st)
		}
	}
	untagged, _ := c.cmd("UID SEARCH ALL")
	if len(untagged) != 1 || untagged[0] != "* SEARCH 3 4" {
		t.Errorf("after the moves: %q, want the 2 messages as UIDs 3 and 4", untagged)
	}
}

// TestOversizedLiteralBeforeLogin: a client pushing a literal over the limit
// gets exactly one BYE and the connection closes; before, it got six BYEs
// and a tagged NO [SERVERBUG].
func TestOversizedLiteralBeforeLogin(t *testing.T) {
	ts := startServer(t)
	for _, first := range []string{
		"a LOGIN {100000000+}\r\n",
		"a LOGIN alice {100000000+}\r\n",
		"a AUTHENTICATE PLAIN {100000000+}\r\n",
	} {
		c := dialRaw(t, ts.addr)
		c.send(first)
		go func() { // keep pushing, as the attacker does, until the server closes
			chunk := strings.Repeat("x", 1<<16)
			for range 64 {
				if _, err := io.WriteString(c.conn, chunk); err != nil {
					return
				}
			}
		}()
		c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		var lines []string
		for {
			line, err := c.r.ReadString('\n')
			if line != "" {
				lines = append(lines, line)
			}
			if err != nil {
				break
			}
		}
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "* BYE ") {
			t.Errorf("%q: got %q, want one BYE then the end", first, lines)
		}
	}
}

func TestValidMUTF7(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"INBOX", true},
		{"Entw&APw-rfe", true}, // Entwürfe
		{"a&-b", true},         // a&b
		{"&ZeVnLIqe-", true},   // 日本語
		{"&2D3eAA-", true},     // U+1F600, a surrogate pair
		{"Entwürfe", true},     // raw UTF-8, which go-imap accepts too
		{"&Jjo", false},        // unterminated
		{"&Jjo-", true},        // ☺
		{"&Jj-", false},        // not a whole UTF-16 unit
		{"&AGE-", false},       // "a", which must not be shifted
		{"&AOk-&AOk-", false},  // two shifts in a row
		{"&2D0-", false},       // a lone surrogate
		{"&AOk=-", false},      // padding
		{"a\x00b", false},
		{"a\x7fb", false},
		{"\xff", false},
	}
	for _, tt := range tests {
		if got := validMUTF7(tt.name); got != tt.ok {
			t.Errorf("validMUTF7(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

// FuzzNameCheck: the framer's look at mailbox arguments never panics, never
// changes a line's length, and leaves lines of printable ASCII without '&'
// alone.
func FuzzNameCheck(f *testing.F) {
	for _, seed := range []string{`a CREATE "&Jjo"`, `a LIST (SUBSCRIBED) "" ("a" "&Jjo")`, `a UID MOVE 1:* "x`, `a RENAME {3+}`, `a LIST ((( "`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		_, name, args := splitCommand([]byte(line))
		nc := newNameCheck(name, args)
		b := []byte(line)
		nc.line(argsOf(b, true))
		nc.line(b) // as a continuation line too
		if len(b) != len(line) {
			t.Fatalf("length changed: %q -> %q", line, b)
		}
		for _, c := range []byte(line) {
			if c == '&' || c < 0x20 || c > 0x7e {
				return // may hold an invalid name
			}
		}
		if string(b) != line {
			t.Fatalf("changed a plain line: %q -> %q", line, b)
		}
	})
}
