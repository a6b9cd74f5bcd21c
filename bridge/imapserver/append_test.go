package imapserver

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/imapserver/dovecotref"
)

// TestMultiAppendAllOrNothing: an APPEND of several messages that fails on
// any of them stores none (RFC 3502), whatever the failure: a bad flag,
// the command's total size or message count, an empty message, a
// CATENATE URL naming another account's message. Each run then checks the
// mailbox still has only the message stored first.
func TestMultiAppendAllOrNothing(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.AppendLimit = 1000 })
	if err := ts.store.CreateAccount(context.Background(), "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.store.Append(context.Background(), "bob", "INBOX", []byte("Subject: bob's\r\n\r\nsecret\r\n"), nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, ts.addr)
	if _, st := c.cmd("LOGIN " + testUser + " " + testToken); !strings.Contains(st, "OK") {
		t.Fatal(st)
	}
	if _, st := c.cmd("APPEND INBOX " + lit(plainA)); !strings.Contains(st, "OK") {
		t.Fatal(st)
	}
	many := func(n int, msg string) string {
		return strings.TrimSpace(strings.Repeat(lit(msg)+" ", n))
	}
	for _, tc := range []struct{ name, args, status string }{
		{"bad flag", lit(plainA) + ` (\Bogus) ` + lit(plainB), "BAD"},
		{"total", many(11, strings.Repeat("x", 990)), "NO [TOOBIG]"},
		{"count", many(maxAppendMessages+1, "x"), "NO [LIMIT]"},
		{"empty", lit(plainA) + " " + lit(""), "NO"},
		{"other account", lit(plainA) + ` CATENATE (URL "/INBOX/;UID=2")`, "NO [BADURL]"},
		{"imap url", lit(plainA) + ` CATENATE (URL "imap://bob@localhost/INBOX/;UID=1")`, "NO [BADURL]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st := c.cmd("APPEND INBOX " + tc.args)
			if !strings.Contains(st, " "+tc.status) {
				t.Errorf("status %q, want %s", st, tc.status)
			}
			untagged, _ := c.cmd("STATUS INBOX (MESSAGES)")
			if len(untagged) != 1 || !strings.Contains(untagged[0], "(MESSAGES 1)") {
				t.Errorf("after a failed APPEND: %q", untagged)
			}
		})
	}
	// The failed commands left no spool files behind.
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(ts.dbPath), "mailstore-append-*")); len(left) > 0 {
		t.Errorf("spool files left: %v", left)
	}
}

// TestCapabilitiesListExtensions: after login the bridge advertises the
// extensions this package implements through the go-imap fork, under the
// names Dovecot advertises them.
func TestCapabilitiesListExtensions(t *testing.T) {
	dove := startDovecot(t)
	ts := startServer(t)
	for _, server := range []struct{ addr, password string }{{ts.addr, testToken}, {dove.Addr, dovecotref.Password}} {
		c := dialRaw(t, server.addr)
		if _, st := c.cmd("LOGIN " + testUser + " " + server.password); !strings.Contains(st, "OK") {
			t.Fatal(st)
		}
		caps, _ := c.cmd("CAPABILITY")
		have := strings.Fields(strings.Join(caps, " "))
		for _, want := range []string{"SORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "MULTIAPPEND", "CATENATE",
			"LIST-EXTENDED", "ESEARCH", "BINARY"} {
			if !slices.Contains(have, want) {
				t.Errorf("%s: CAPABILITY lacks %s: %v", server.addr, want, have)
			}
		}
	}
}

// TestMultiAppendSynchronizingLiterals sends MULTIAPPEND and CATENATE as
// clients without LITERAL+ do, waiting for "+" before each literal; a
// command refused at its first literal gets its answer instead of "+".
func TestMultiAppendSynchronizingLiterals(t *testing.T) {
	ts := startServer(t)
	c := dialRaw(t, ts.addr)
	c.login()
	step := func(s string) {
		t.Helper()
		c.send(s)
		if line := c.readLine(); !strings.HasPrefix(line, "+") {
			t.Fatalf("after %q: %q, want a continuation request", trim(s), line)
		}
	}
	if _, st := c.cmd("APPEND INBOX " + lit(plainA)); !strings.Contains(st, "OK") { // UID 1, for the URL
		t.Fatal(st)
	}
	step(fmt.Sprintf("a1 APPEND INBOX (\\Seen) {%d}\r\n", len(plainA)))
	step(fmt.Sprintf("%s {%d}\r\n", plainA, len(plainB)))
	step(fmt.Sprintf("%s CATENATE (TEXT {%d}\r\n", plainB, len("Subject: cat\r\n\r\n")))
	c.send("Subject: cat\r\n\r\n URL \"/INBOX/;UID=1/;SECTION=TEXT\")\r\n")
	if _, st := c.readUntil("a1"); !strings.Contains(st, "OK [APPENDUID ") || !strings.Contains(st, " 2:4]") {
		t.Fatalf("MULTIAPPEND: %q", st)
	}
	c.send(fmt.Sprintf("a2 APPEND Nope {%d}\r\n", len(plainA)))
	if _, st := c.readUntil("a2"); !strings.Contains(st, "NO [TRYCREATE]") {
		t.Fatalf("APPEND to a missing mailbox: %q", st)
	}
	if _, st := c.cmd("NOOP"); !strings.Contains(st, "OK") { // the connection is in step
		t.Fatal(st)
	}
	c.cmd("SELECT INBOX")
	lines, _ := c.cmd("FETCH 4 BODY.PEEK[]")
	if len(lines) != 1 || !strings.Contains(lines[0], "Subject: cat\r\n\r\nfirst body") {
		t.Errorf("catenated message: %q", lines)
	}
}
