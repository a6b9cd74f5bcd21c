package mailstore

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// shape renders a body structure as nested media types.
func shape(bs imap.BodyStructure) string {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		var parts []string
		for _, c := range bs.Children {
			parts = append(parts, shape(c))
		}
		return "multipart/" + bs.Subtype + "(" + strings.Join(parts, " ") + ")"
	case *imap.BodyStructureSinglePart:
		s := bs.Type + "/" + bs.Subtype
		if bs.MessageRFC822 != nil {
			s += "[" + shape(bs.MessageRFC822.BodyStructure) + "]"
		}
		return s
	}
	return "?"
}

func TestIndexMessageShapes(t *testing.T) {
	tests := []struct {
		name, raw, shape string
	}{
		{"no content type", "Subject: x\r\n\r\nhello\r\n", "text/plain"},
		{"no header at all", "just text", "text/plain"},
		{"bare LF", "Subject: x\n\nhello\n", "text/plain"},
		{"alternative", "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\na\r\n--b\r\nContent-Type: text/html\r\n\r\n<b>a</b>\r\n--b--\r\n",
			"multipart/alternative(text/plain text/html)"},
		{"digest defaults", "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: in\r\n\r\nx\r\n--d--\r\n",
			"multipart/digest(message/rfc822[text/plain])"},
		{"no boundary", "Content-Type: multipart/mixed\r\n\r\nx\r\n", "multipart/mixed(text/plain)"},
		{"empty multipart", "Content-Type: multipart/mixed; boundary=z\r\n\r\nno parts here\r\n", "multipart/mixed(text/plain)"},
		{"bad content type", "Content-Type: ;;;\r\n\r\nx\r\n", "text/plain"},
		{"nested message", "Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nin\r\n--q--\r\n",
			"message/rfc822[multipart/mixed(text/plain)]"},
	}
	for _, tt := range tests {
		ix := indexMessage(nil, []byte(tt.raw))
		if got := shape(ix.structure); got != tt.shape {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.shape)
		}
	}
}

func TestIndexMessageLimits(t *testing.T) {
	// 2,000 nested multiparts: parsed to MaxMIMEDepth, then one empty part.
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	ix := indexMessage(nil, []byte(b.String()))
	if depth := strings.Count(shape(ix.structure), "("); depth != MaxMIMEDepth+1 {
		t.Errorf("nesting depth %d, want %d", depth, MaxMIMEDepth+1)
	}
	// 20,000 parts: at most maxMIMEParts kept.
	b.Reset()
	b.WriteString("Content-Type: multipart/mixed; boundary=p\r\n\r\n")
	for range 20000 {
		b.WriteString("--p\r\n\r\nx\r\n")
	}
	ix = indexMessage(nil, []byte(b.String()))
	if n := strings.Count(shape(ix.structure), "text/plain"); n >= maxMIMEParts {
		t.Errorf("%d parts kept, limit %d", n, maxMIMEParts)
	}
	// Search text is bounded.
	big := "Subject: big\r\n\r\n" + strings.Repeat("word ", 3<<20)
	if n := len(indexMessage(nil, []byte(big)).bodyText); n > maxSearchText+1 {
		t.Errorf("search text %d bytes, limit %d", n, maxSearchText)
	}
}

func TestIndexEnvelope(t *testing.T) {
	raw := "Date: Tue, 5 Mar 2024 01:02:03 -0800\r\nSubject: =?iso-8859-1?q?Caf=E9?=\r\n  folded\r\n" +
		"From: =?iso-8859-1?q?J=FCrgen?= <j@example.de>\r\nTo: a@b.c, \"Doe, J\" <d@e.f>\r\nIn-Reply-To: <x@y>\r\nMessage-ID: <m@h>\r\n\r\nbody"
	env := indexMessage(nil, []byte(raw)).envelope
	if env.Subject != "=?iso-8859-1?q?Caf=E9?= folded" {
		t.Errorf("subject %q (kept as written, unfolded)", env.Subject)
	}
	if len(env.From) != 1 || env.From[0].Name != "Jürgen" || env.From[0].Addr() != "j@example.de" {
		t.Errorf("from %+v", env.From)
	}
	if len(env.To) != 2 || env.To[1].Name != "Doe, J" || env.MessageID != "m@h" || len(env.InReplyTo) != 1 {
		t.Errorf("envelope %+v", env)
	}
	if env.Date.Format("2006-01-02 -0700") != "2024-03-05 -0800" {
		t.Errorf("date %v", env.Date)
	}
}

// FuzzIndexMessage: any bytes index without panicking, and the cached
// envelope and body structure decode back to what was encoded.
func FuzzIndexMessage(f *testing.F) {
	f.Add([]byte("Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nx"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ix := indexMessage(nil, raw)
		env, err := encodeEnvelope(ix.envelope)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeEnvelope(env); err != nil {
			t.Fatal(err)
		}
		st, err := encodeStructure(ix.structure)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeStructure(st)
		if err != nil {
			t.Fatalf("decode %s: %v", st, err)
		}
		again, _ := encodeStructure(back)
		if !bytes.Equal(st, again) {
			t.Fatalf("round trip changed the structure:\n%s\n%s", st, again)
		}
	})
}

// FuzzDecodeStructure: a corrupt cache entry gives an error or a structure
// go-imap can write (every multipart has children, every part extension
// data), never a panic.
func FuzzDecodeStructure(f *testing.F) {
	f.Add([]byte(`{"c":[{"t":"text","s":"plain"}],"s":"mixed"}`))
	f.Add([]byte(`{"t":"message","s":"rfc822","m":{"e":null,"b":{"c":[]}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		bs, err := decodeStructure(b)
		if err != nil {
			return
		}
		var check func(bs imap.BodyStructure)
		check = func(bs imap.BodyStructure) {
			switch bs := bs.(type) {
			case *imap.BodyStructureMultiPart:
				if len(bs.Children) == 0 || bs.Extended == nil {
					t.Fatalf("multipart without children or extension: %s", b)
				}
				for _, c := range bs.Children {
					check(c)
				}
			case *imap.BodyStructureSinglePart:
				if bs.Extended == nil {
					t.Fatalf("part without extension: %s", b)
				}
				if bs.MessageRFC822 != nil {
					check(bs.MessageRFC822.BodyStructure)
				}
			default:
				t.Fatalf("unexpected %T", bs)
			}
		}
		check(bs)
	})
}

// FuzzDecodeEnvelope: a corrupt cached envelope is an error, never a panic
// or a huge allocation; a valid one survives a round trip.
func FuzzDecodeEnvelope(f *testing.F) {
	good, _ := encodeEnvelope(indexMessage(nil, []byte("Date: Tue, 5 Mar 2024 01:02:03 -0800\r\nFrom: A <a@b.c>\r\nIn-Reply-To: <x@y>\r\nSubject: s\r\n\r\n")).envelope)
	f.Add(good)
	f.Add([]byte{envelopeVersion, 0, 0, 255, 255, 255, 255, 15})
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		again, _ := encodeEnvelope(env)
		back, err := decodeEnvelope(again)
		if err != nil || back.Subject != env.Subject || len(back.From) != len(env.From) || !back.Date.Equal(env.Date) {
			t.Fatalf("round trip: %v %+v %+v", err, env, back)
		}
	})
}
