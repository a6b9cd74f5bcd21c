package imapserver

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeConn is a net.Conn reading a fixed client stream and recording writes.
type fakeConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *fakeConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func newFakeWire(client string) (*wireConn, *fakeConn) {
	fc := &fakeConn{in: bytes.NewReader([]byte(client))}
	return newWireConn(fc, time.Minute, 1000), fc
}

// readAll drains what go-imap would see.
func readAll(t testing.TB, w *wireConn) string {
	var got bytes.Buffer
	buf := make([]byte, 7) // small reads exercise the pending buffer
	for range 1 << 20 {
		n, err := w.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			return got.String()
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	t.Fatal("reader did not reach EOF")
	return ""
}

func TestWireInput(t *testing.T) {
	tests := []struct {
		name, client, seen, answered string
	}{
		{"passes commands", "a NOOP\r\nb LOGIN x y\r\n", "a NOOP\r\nb LOGIN x y\r\n", ""},
		{"answers ID", "a ID NIL\r\nb NOOP\r\n", "b NOOP\r\n", idResponse + "a OK ID completed\r\n"},
		{"answers ID with list", `a id ("name" "x")` + "\r\n", "", idResponse + "a OK ID completed\r\n"},
		{"rejects bad ID", "a ID foo\r\n", "", "a BAD ID expects NIL or a parenthesized list\r\n"},
		{"ID inside a literal is data", "a APPEND INBOX {10+}\r\nb ID NIL\r\n\r\n", "a APPEND INBOX {10+}\r\nb ID NIL\r\n\r\n", ""},
		{"ID after a literal is the same command", "a LOGIN {1+}\r\nx ID NIL\r\n", "a LOGIN {1+}\r\nx ID NIL\r\n", ""},
		{"DONE after IDLE is not a command", "a IDLE\r\nDONE\r\nb ID NIL\r\n", "a IDLE\r\nDONE\r\n", idResponse + "b OK ID completed\r\n"},
		{"non-sync literal over APPENDLIMIT closes", "a APPEND INBOX {1001+}\r\n" + strings.Repeat("x", 1001), "a APPEND INBOX {1001+}\r\n", byeLiteralTooBig},
		{"non-sync literal over 4 KiB outside APPEND closes", "a LOGIN {5000+}\r\n" + strings.Repeat("x", 100), "", byeLiteralTooBig},
		{"refused sync literal ends the line", "a LOGIN {5000}\r\nb NOOP\r\n", "a LOGIN {5000}\r\n\r\nb NOOP\r\n", ""},
		{"after STARTTLS bytes pass through", "a STARTTLS\r\nb ID NIL\r\n", "a STARTTLS\r\nb ID NIL\r\n", ""},
	}
	for _, tt := range tests {
		w, fc := newFakeWire(tt.client)
		if got := readAll(t, w); got != tt.seen {
			t.Errorf("%s: go-imap saw %q, want %q", tt.name, got, tt.seen)
		}
		if fc.out.String() != tt.answered {
			t.Errorf("%s: answered %q, want %q", tt.name, fc.out.String(), tt.answered)
		}
	}
}

func TestWireAcceptedSyncLiteral(t *testing.T) {
	w, _ := newFakeWire("a LOGIN {5}\r\nb ID\r\n c\r\n")
	line := make([]byte, 100)
	n, _ := w.Read(line)
	if string(line[:n]) != "a LOGIN {5}\r\n" {
		t.Fatalf("first read %q", line[:n])
	}
	w.Write([]byte("+ Ready for literal data\r\n")) // go-imap accepts
	if rest := readAll(t, w); rest != "b ID\r\n c\r\n" {
		t.Fatalf("literal and rest: %q", rest)
	}
}

func TestWireOutput(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"capability", "* CAPABILITY IMAP4rev1 IDLE\r\n", "* CAPABILITY IMAP4rev1 IDLE ID\r\n"},
		{"greeting", "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] IMAP server ready\r\n", "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN ID] IMAP server ready\r\n"},
		{"login", "t1 OK [CAPABILITY IMAP4rev1 MOVE] Logged in\r\n", "t1 OK [CAPABILITY IMAP4rev1 MOVE ID] Logged in\r\n"},
		{"other lines", "* 1 EXISTS\r\nt2 OK done\r\n", "* 1 EXISTS\r\nt2 OK done\r\n"},
		{"literal text is data", "* 1 FETCH (BODY[] {27}\r\n* CAPABILITY IMAP4rev1 X\r\n)\r\n", "* 1 FETCH (BODY[] {27}\r\n* CAPABILITY IMAP4rev1 X\r\n)\r\n"},
	}
	for _, tt := range tests {
		var o outputScanner
		got, _ := o.process([]byte(tt.in))
		if string(got) != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	// A literal whose announcement is split across writes still hides its data.
	var o outputScanner
	var got []byte
	for _, part := range []string{"* 1 FETCH (BODY[] {2", "6}\r\n* CAPABILITY IMAP4rev1\r\n)\r\n", "* CAPABILITY A\r\n"} {
		out, _ := o.process([]byte(part))
		got = append(got, out...)
	}
	if want := "* 1 FETCH (BODY[] {26}\r\n* CAPABILITY IMAP4rev1\r\n)\r\n* CAPABILITY A ID\r\n"; string(got) != want {
		t.Errorf("split literal: %q, want %q", got, want)
	}
	var c outputScanner
	if _, cont := c.process([]byte("+ Ready\r\n")); !cont {
		t.Error("continuation not noticed")
	}
	if _, cont := c.process([]byte("* 1 FETCH (BODY[] {3}\r\n+ab)\r\n")); cont {
		t.Error("a '+' inside a literal taken for a continuation")
	}
}

func TestLiteralAnnounce(t *testing.T) {
	tests := []struct {
		line    string
		size    int64
		nonSync bool
		ok      bool
	}{
		{"a APPEND INBOX {12}\r\n", 12, false, true},
		{"a APPEND INBOX {12+}\r\n", 12, true, true},
		{"a APPEND INBOX ~{3}\r\n", 3, false, true},
		{"a LOGIN {}\r\n", 0, false, false},
		{"a LOGIN {+}\r\n", 0, false, false},
		{"a LOGIN {-1}\r\n", 0, false, false},
		{"a LOGIN {99999999999999999999}\r\n", 0, false, false},
		{"a NOOP\r\n", 0, false, false},
		{"}\r\n", 0, false, false},
	}
	for _, tt := range tests {
		size, nonSync, ok := literalAnnounce([]byte(tt.line))
		if size != tt.size || nonSync != tt.nonSync || ok != tt.ok {
			t.Errorf("%q: %d %v %v", tt.line, size, nonSync, ok)
		}
	}
}

// FuzzWireInput: any client stream is framed without panics, and go-imap
// sees no more than the client sent plus one CRLF per refused literal.
func FuzzWireInput(f *testing.F) {
	f.Add("a ID NIL\r\nb APPEND INBOX {3+}\r\nabc\r\nc IDLE\r\nDONE\r\n")
	f.Add("a LOGIN {5}\r\n{2+}\r\nxx\r\n")
	f.Fuzz(func(t *testing.T, client string) {
		w, _ := newFakeWire(client)
		seen := readAll(t, w)
		if len(seen) > len(client)+2*strings.Count(client, "\n") {
			t.Fatalf("go-imap saw %d bytes of %d", len(seen), len(client))
		}
	})
}

// FuzzOutputScanner: any server stream split anywhere is passed on with only
// " ID" added, and never panics.
func FuzzOutputScanner(f *testing.F) {
	f.Add("* CAPABILITY IMAP4rev1\r\n* 1 FETCH (BODY[] {5}\r\nab\r\nc)\r\n", 7)
	f.Add("t OK [CAPABILITY X] hi\r\n+ go\r\n", 3)
	f.Fuzz(func(t *testing.T, server string, split int) {
		var o outputScanner
		var out []byte
		for rest := server; len(rest) > 0; {
			n := len(rest)
			if split > 0 && split < n {
				n = split
			}
			got, _ := o.process([]byte(rest[:n]))
			out = append(out, got...)
			rest = rest[n:]
		}
		if strings.ReplaceAll(string(out), " ID", "") != strings.ReplaceAll(server, " ID", "") {
			t.Fatalf("output %q differs from input %q beyond added IDs", out, server)
		}
	})
}
