package imapwire

import (
	"bufio"
	"strings"
	"testing"
)

func encodeServer(quotedUTF8 bool, f func(enc *Encoder)) string {
	var sb strings.Builder
	bw := bufio.NewWriter(&sb)
	enc := NewEncoder(bw, ConnSideServer)
	enc.QuotedUTF8 = quotedUTF8
	f(enc)
	if err := enc.CRLF(); err != nil {
		return "error: " + err.Error()
	}
	return sb.String()
}

func TestEncoderStrings(t *testing.T) {
	long := strings.Repeat("a", maxQuoted-1)
	tests := []struct {
		name       string
		quotedUTF8 bool
		write      func(enc *Encoder)
		want       string
	}{
		{"special", false, func(enc *Encoder) { enc.Special('(').Atom("A").Special(')') }, "(A)\r\n"},
		{"quoted plain", false, func(enc *Encoder) { enc.Quoted("a b") }, `"a b"` + "\r\n"},
		{"quoted escapes", false, func(enc *Encoder) { enc.Quoted(`a"b\c"`) }, `"a\"b\\c\""` + "\r\n"},
		{"quoted empty", false, func(enc *Encoder) { enc.Quoted("") }, `""` + "\r\n"},
		{"string CR is a literal", false, func(enc *Encoder) { enc.String("a\rb") }, "{3}\r\na\rb\r\n"},
		{"string 8-bit without UTF8", false, func(enc *Encoder) { enc.String("é") }, "{2}\r\né\r\n"},
		{"string 8-bit with UTF8", true, func(enc *Encoder) { enc.String("é") }, `"é"` + "\r\n"},
		{"wrapped", false, func(enc *Encoder) { enc.StringWrapped("<", `a"b@c`, ">") }, `"<a\"b@c>"` + "\r\n"},
		{"wrapped CR is a literal", false, func(enc *Encoder) { enc.StringWrapped("<", "a\nb", ">") }, "{5}\r\n<a\nb>\r\n"},
		{"wrapped 8-bit without UTF8", false, func(enc *Encoder) { enc.StringWrapped("<", "é", ">") }, "{4}\r\n<é>\r\n"},
		// The wrapped string, not s alone, decides between quoted and
		// literal, as String("<"+s+">") did.
		{"wrapped over the quoted limit", false, func(enc *Encoder) { enc.StringWrapped("<", long, ">") },
			"{4097}\r\n<" + long + ">\r\n"},
		{"wrapped at the quoted limit", false, func(enc *Encoder) { enc.StringWrapped("<", long[2:], ">") },
			`"<` + long[2:] + `>"` + "\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := encodeServer(tt.quotedUTF8, tt.write); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// The response writers call Special and Quoted for every item: they must
// not allocate.
func TestEncoderQuotedAllocations(t *testing.T) {
	bw := bufio.NewWriterSize(discard{}, 1<<16)
	enc := NewEncoder(bw, ConnSideServer)
	allocs := testing.AllocsPerRun(100, func() {
		enc.Special('(').Quoted(`a "quoted" \ string`).StringWrapped("<", "id@host", ">").Special(')')
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run, want 0", allocs)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
