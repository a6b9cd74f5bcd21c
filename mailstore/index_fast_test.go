package mailstore

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// addEntitySlow is addEntity without its fast path: what the search text
// of a part must be.
func addEntitySlow(t *textSink, h textproto.Header, raw []byte) { t.addDecoded(h, raw) }

func TestLowerASCII(t *testing.T) {
	var all []byte
	for c := range 128 {
		all = append(all, byte(c))
	}
	for off := range 9 { // every alignment of the eight-byte steps
		b := append(bytes.Repeat([]byte{'Q'}, off), all...)
		want := strings.ToLower(string(b))
		lowerASCII(b)
		if string(b) != want {
			t.Fatalf("offset %d: %q, want %q", off, b, want)
		}
	}
	if isASCII(append(bytes.Repeat([]byte{'a'}, 13), 0x80)) || !isASCII(all) {
		t.Error("isASCII wrong")
	}
}

// TestAddEntityFastPath: the search text is the same with and without the
// fast path, for every kind of text part.
func TestAddEntityFastPath(t *testing.T) {
	long := strings.Repeat("Hello WORLD, Grüße ", 10)
	bodies := []string{"", "Plain ASCII With UPPER case\r\n", long, "caf\xe9 latin-1 \xC0", "\xff\xfe broken UTF-8 ÄÖÜ",
		"=C3=84rger quoted=\r\nprintable", "SGVsbG8gV09STEQ=", strings.Repeat("ABC", maxSearchText/3+5)}
	headers := []string{"", "Content-Type: text/plain\r\n", "Content-Type: text/plain; charset=UTF-8\r\n",
		"Content-Type: text/plain; charset=US-ASCII\r\nContent-Transfer-Encoding: 8BIT\r\n",
		"Content-Type: text/plain; charset=iso-8859-1\r\n", "Content-Type: text/html; charset=x-unknown\r\n",
		"Content-Transfer-Encoding: quoted-printable\r\n", "Content-Transfer-Encoding: base64\r\n",
		"Content-Transfer-Encoding: x-weird\r\n", "Content-Type: text/plain; charset\r\n",
		"Content-Type: application/json\r\nContent-Transfer-Encoding: binary\r\n"}
	for _, hs := range headers {
		h, err := textproto.ReadHeader(bufioReader(hs + "\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bodies {
			for _, prefill := range []int{0, maxSearchText - 7, maxSearchText} {
				var fast, slow textSink
				pre := strings.Repeat("x", prefill)
				fast.b.WriteString(pre)
				slow.b.WriteString(pre)
				fast.addEntity(h, []byte(b))
				addEntitySlow(&slow, h, []byte(b))
				if fast.String() != slow.String() {
					t.Errorf("header %q, body %.20q, prefill %d: %.40q, want %.40q", hs, b, prefill,
						fast.String()[prefill:], slow.String()[prefill:])
				}
			}
		}
	}
}

// TestIndexMessageSplitHeader: splitHeader leaves the body that a header
// read leaves in its reader.
func TestIndexMessageSplitHeader(t *testing.T) {
	for _, raw := range []string{"Subject: x\r\n\r\nbody\r\n", "no header at all", "Subject: x\r\n", "Subject: x\r\n\r\n",
		"Subject: y\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: a@b.c\r\n\r\nINNER body\r\n",
		"Content-Type: message/rfc822\r\n\r\nbroken inner header\r\n"} {
		h, body, err := splitHeader([]byte(raw))
		br := bufioReader(raw)
		h2, err2 := textproto.ReadHeader(br)
		rest, _ := io.ReadAll(br)
		if (err == nil) != (err2 == nil) || string(body) != string(rest) || h.Len() != h2.Len() {
			t.Errorf("%q: body %q (%v), want %q (%v)", raw, body, err, rest, err2)
		}
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
