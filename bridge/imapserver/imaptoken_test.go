package imapserver

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// imapToken is one value of a server response, as the conversation tests
// compare them: atoms, strings (quoted and literal alike) and lists.
type imapToken struct {
	atom     string
	isString bool
	isList   bool
	list     []imapToken
}

func (t imapToken) String() string {
	switch {
	case t.isList:
		parts := make([]string, len(t.list))
		for i, item := range t.list {
			parts[i] = item.String()
		}
		return "(" + strings.Join(parts, " ") + ")"
	case t.isString:
		return strconv.Quote(t.atom)
	case strings.EqualFold(t.atom, "NIL"):
		return "NIL"
	}
	return t.atom
}

const maxTokenDepth = 100

var errTokens = errors.New("malformed response")

// parseIMAP splits a response line (literals inlined as "{n}\r\n<bytes>")
// into tokens.
func parseIMAP(s string) ([]imapToken, error) {
	p := &tokenParser{s: s}
	toks, err := p.items(0)
	if err == nil && p.i < len(p.s) {
		err = errTokens // an unmatched ")"
	}
	return toks, err
}

type tokenParser struct {
	s string
	i int
}

func (p *tokenParser) items(depth int) ([]imapToken, error) {
	if depth > maxTokenDepth {
		return nil, errTokens
	}
	var out []imapToken
	for {
		for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\r' || p.s[p.i] == '\n') {
			p.i++
		}
		if p.i >= len(p.s) || p.s[p.i] == ')' {
			return out, nil
		}
		tok, err := p.item(depth)
		if err != nil {
			return nil, err
		}
		out = append(out, tok)
	}
}

func (p *tokenParser) item(depth int) (imapToken, error) {
	switch c := p.s[p.i]; {
	case c == '(':
		p.i++
		list, err := p.items(depth + 1)
		if err != nil {
			return imapToken{}, err
		}
		if p.i >= len(p.s) {
			return imapToken{}, errTokens
		}
		p.i++ // ')'
		return imapToken{isList: true, list: list}, nil
	case c == '"':
		var b strings.Builder
		for p.i++; p.i < len(p.s); p.i++ {
			switch p.s[p.i] {
			case '\\':
				p.i++
				if p.i < len(p.s) {
					b.WriteByte(p.s[p.i])
				}
			case '"':
				p.i++
				return imapToken{atom: b.String(), isString: true}, nil
			default:
				b.WriteByte(p.s[p.i])
			}
		}
		return imapToken{}, errTokens
	case c == '{' || (c == '~' && p.i+1 < len(p.s) && p.s[p.i+1] == '{'):
		end := strings.Index(p.s[p.i:], "}\r\n")
		if end < 0 {
			return imapToken{}, errTokens
		}
		num := strings.TrimSuffix(strings.TrimLeft(p.s[p.i:p.i+end], "~{"), "+")
		n, err := strconv.Atoi(num)
		start := p.i + end + 3
		if err != nil || n < 0 || n > len(p.s)-start {
			return imapToken{}, errTokens
		}
		p.i = start + n
		return imapToken{atom: p.s[start:p.i], isString: true}, nil
	}
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '[' {
			end := strings.IndexByte(p.s[p.i:], ']')
			if end < 0 {
				return imapToken{}, errTokens
			}
			p.i += end + 1
			continue
		}
		if c == ' ' || c == '(' || c == ')' || c == '\r' || c == '\n' {
			break
		}
		p.i++
	}
	return imapToken{atom: p.s[start:p.i]}, nil
}

func TestParseIMAP(t *testing.T) {
	tests := []struct{ in, want string }{
		{`* 1 FETCH (UID 1 FLAGS (\Seen))`, `* 1 FETCH (UID 1 FLAGS (\Seen))`},
		{"* 1 FETCH (BODY[] {5}\r\nhello)", `* 1 FETCH (BODY[] "hello")`},
		{`* 2 FETCH (BODY[HEADER.FIELDS (FROM TO)] "a" ENVELOPE (nil "x\"y"))`, `* 2 FETCH (BODY[HEADER.FIELDS (FROM TO)] "a" ENVELOPE (NIL "x\"y"))`},
		{`* LIST (\HasNoChildren) "/" INBOX`, `* LIST (\HasNoChildren) "/" INBOX`},
		{`* 3 FETCH (BODY[]<0> ~{2}` + "\r\nab)", `* 3 FETCH (BODY[]<0> "ab")`},
	}
	for _, tt := range tests {
		toks, err := parseIMAP(tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		var parts []string
		for _, tok := range toks {
			parts = append(parts, tok.String())
		}
		if got := strings.Join(parts, " "); got != tt.want {
			t.Errorf("%q\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{`(`, `"open`, "{5}\r\nab", `a ) b`, `BODY[`, strings.Repeat("(", 200)} {
		if _, err := parseIMAP(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzParseIMAP: the conversation tests' response parser never panics and
// always consumes its input or reports an error.
func FuzzParseIMAP(f *testing.F) {
	f.Add(`* 1 FETCH (UID 1 FLAGS (\Seen) BODY[] {3}` + "\r\nabc)")
	f.Add(`* LIST (\HasChildren) "/" "a \"b\""`)
	f.Fuzz(func(t *testing.T, s string) {
		toks, err := parseIMAP(s)
		if err == nil {
			for _, tok := range toks {
				_ = tok.String()
			}
		}
	})
}
