package imapserver

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestMalformedInput sends broken commands; each must get BAD or NO with the
// connection still usable, or a clean close (BYE, then EOF). Meanwhile a
// bystander session keeps working.
func TestMalformedInput(t *testing.T) {
	const limit = 1 << 20
	ts := startServer(t, func(o *Options) { o.AppendLimit = limit })
	bystander := dialRaw(t, ts.addr)
	bystander.login()
	bystander.cmd("SELECT INBOX")
	if _, st := bystander.cmd("APPEND INBOX {19+}\r\nSubject: ok\r\n\r\nbody"); !strings.Contains(st, "OK") {
		t.Fatal(st)
	}

	tenMB := strings.Repeat("x", 10<<20)
	nested := strings.Repeat("(", 10000) + "ALL" + strings.Repeat(")", 10000)
	tests := []struct {
		name string
		send string // after login and SELECT INBOX; "a" is the tag
		want string // "BAD", "NO", "BAD|NO" or "close"
	}{
		{"seq set zero", "a FETCH 0 FLAGS\r\n", "BAD|NO"},
		{"seq set garbage", "a FETCH 1:x FLAGS\r\n", "BAD|NO"},
		{"seq set empty item", "a FETCH 1,,2 FLAGS\r\n", "BAD|NO"},
		{"seq set overflow", "a FETCH 4294967296 FLAGS\r\n", "BAD|NO"},
		{"seq beyond mailbox", "a FETCH 99 FLAGS\r\n", "BAD"},
		{"uid set negative", "a UID FETCH -1 FLAGS\r\n", "BAD|NO"},
		{"nested parens in SEARCH", "a SEARCH " + nested + "\r\n", "BAD|NO"},
		{"nested parens in FETCH", "a FETCH 1 " + nested + "\r\n", "BAD|NO"},
		{"nested parens in APPEND flags", "a APPEND INBOX " + nested + " {1}\r\n", "BAD|NO"},
		{"unbalanced parens", "a FETCH 1 (FLAGS\r\n", "BAD"},
		{"binary junk arguments", "a FETCH \x00\x01\x02\xff\xfe\r\n", "BAD|NO"},
		{"binary junk tag", "\x00\x01 \xff\xfe\r\n", "close"}, // go-imap drops a connection whose tag is not an atom
		{"unknown command", "a FROBNICATE\r\n", "BAD"},
		{"bad flag", "a STORE 1 +FLAGS (\\Bogus)\r\n", "BAD|NO"},
		{"bad mailbox name", "a CREATE \"a//b\"\r\n", "NO"},
		{"10 MB sync literal over APPENDLIMIT", "a APPEND INBOX {10485760}\r\n", "NO"},
		{"big literal outside APPEND", "a LOGIN {100000}\r\n", "BAD|NO"},
		{"10 MB non-sync literal over APPENDLIMIT", "a APPEND INBOX {10485760+}\r\n" + tenMB + "\r\n", "close"},
		{"line over 64 KiB", "a NOOP " + strings.Repeat("y", 100<<10) + "\r\n", "close"},
		{"literal cut short by the client", "a APPEND INBOX {100+}\r\nonly part", "close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, ts.addr)
			c.login()
			c.cmd("SELECT INBOX")
			got := abuse(t, c, tt.send, tt.want == "close")
			switch {
			case tt.want == "close":
				if got != "close" {
					t.Fatalf("want a clean close, got %q", got)
				}
			case !strings.Contains("|"+tt.want+"|", "|"+got+"|"):
				t.Fatalf("want %s, got %q", tt.want, got)
			default:
				if _, st := c.cmd("NOOP"); !strings.Contains(st, "OK") {
					t.Fatalf("connection unusable after %s: %s", got, st)
				}
			}
		})
	}

	// A client that vanishes in the middle of a literal.
	c := dialRaw(t, ts.addr)
	c.login()
	c.send("a APPEND INBOX {100}\r\n")
	if line := c.readLine(); !strings.HasPrefix(line, "+") {
		t.Fatalf("want continuation, got %q", line)
	}
	c.send("half a literal")
	c.conn.Close()

	for _, cmd := range []string{"NOOP", "FETCH 1 (FLAGS BODY.PEEK[HEADER])", "STATUS INBOX (MESSAGES)"} {
		if _, st := bystander.cmd(cmd); !strings.Contains(st, "OK") {
			t.Fatalf("bystander %s after the abuse: %s", cmd, st)
		}
	}
	if st, _ := ts.store.Status(t.Context(), testUser, "INBOX"); st.Messages != 1 {
		raw, _ := ts.store.Raw(t.Context(), st.ID, 2)
		t.Fatalf("INBOX has %d messages, want only the bystander's 1; 2nd: %.100q", st.Messages, raw)
	}
}

// abuse sends s and reports "BAD", "NO", "OK" for the tagged answer, or
// "close" when the server said BYE or closed the connection.
func abuse(t *testing.T, c *rawClient, s string, expectClose bool) string {
	t.Helper()
	writeErr := make(chan error, 1)
	go func() {
		c.conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, err := io.WriteString(c.conn, s)
		if expectClose {
			c.conn.(*net.TCPConn).CloseWrite() // a client that gives up mid-command
		}
		writeErr <- err
	}()
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c.r)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("no answer within 20 s")
			}
			if expectClose {
				<-writeErr
			}
			return "close"
		}
		if strings.HasPrefix(line, "+") {
			continue // continuation for a literal we chose not to send
		}
		if strings.HasPrefix(line, "* BYE") {
			continue // the close follows
		}
		if tagged, ok := strings.CutPrefix(line, "a "); ok {
			if expectClose {
				continue // e.g. NO [TOOBIG] before the BYE
			}
			word, _, _ := strings.Cut(tagged, " ")
			c.r = r
			return word
		}
	}
}
