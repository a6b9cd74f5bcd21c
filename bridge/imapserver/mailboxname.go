package imapserver

import (
	"encoding/base64"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// go-imap (v2.0.0-beta.8) decodes mailbox names from modified UTF-7 while
// parsing a command and reports a name that does not decode, such as
// "&Jjo" or one holding a NUL, as an internal error: the client gets
// NO [SERVERBUG], and after a literal name the rest of the line is then
// read as a new command, which closes the connection. The framer
// (wire.go) therefore checks the mailbox arguments of the commands that
// take them and replaces an invalid one by a name of the same length made
// of delimiters, which decodes and which the store refuses as invalid:
// the client gets NO [CANNOT] Invalid mailbox name, as from Dovecot's
// "NO Mailbox name is not valid mUTF-7"; LIST and LSUB, whose reference or
// pattern it becomes, list nothing.

// invalidNameFiller replaces each byte of an invalid mailbox name: a name
// of delimiters only is invalid (NormalizeName) but decodes.
const invalidNameFiller = '/'

// mailboxArgs are, by command, the positions of the arguments that are
// mailbox names (counting from 0 after the command name; after "UID" the
// subcommand is argument 0).
var mailboxArgs = map[string][]int{
	"SELECT": {0}, "EXAMINE": {0}, "CREATE": {0}, "DELETE": {0}, "SUBSCRIBE": {0}, "UNSUBSCRIBE": {0},
	"STATUS": {0}, "APPEND": {0}, "RENAME": {0, 1}, "COPY": {1}, "MOVE": {1}, "UID COPY": {2}, "UID MOVE": {2},
	"LIST": {0, 1}, "LSUB": {0, 1},
}

// nameCheck tracks the arguments of one command across its lines.
type nameCheck struct {
	positions []int // mailbox argument positions; nil: nothing to check
	arg       int   // position of the next argument
	list      bool  // LIST: a leading list of selection options does not count
}

func newNameCheck(name, args string) nameCheck {
	if name == "UID" {
		sub, _, _ := strings.Cut(args, " ")
		name += " " + strings.ToUpper(sub)
	}
	return nameCheck{positions: mailboxArgs[name], list: name == "LIST"}
}

func (nc *nameCheck) isMailbox(arg int) bool {
	for _, p := range nc.positions {
		if p == arg {
			return true
		}
	}
	return false
}

// line rewrites invalid mailbox names among the arguments in args (a
// command line without tag, name and CRLF, or the continuation after a
// literal) and reports whether a literal that ends the line is a mailbox
// name.
func (nc *nameCheck) line(args []byte) (literalIsMailbox bool) {
	for i := 0; i < len(args); {
		for i < len(args) && args[i] == ' ' {
			i++
		}
		if i == len(args) {
			break
		}
		start, end := i, tokenEnd(args, i)
		if args[start] == '{' && end == len(args) { // a literal follows this line
			literalIsMailbox = nc.isMailbox(nc.arg)
			nc.arg++
			return literalIsMailbox
		}
		switch {
		case nc.list && nc.arg == 0 && args[start] == '(':
			i = end // LIST (SUBSCRIBED ...) reference pattern
			continue
		case !nc.isMailbox(nc.arg):
		case args[start] == '(': // LIST "" ("a" "b"): several patterns
			checkNames(args[start+1 : max(start+1, end-1)])
		default:
			checkName(args[start:end])
		}
		nc.arg++
		i = end
	}
	return false
}

// checkNames checks the space-separated names in a parenthesized list.
func checkNames(list []byte) {
	for i := 0; i < len(list); {
		if list[i] == ' ' {
			i++
			continue
		}
		end := tokenEnd(list, i)
		if list[i] != '(' {
			checkName(list[i:end])
		}
		i = end
	}
}

// checkName fills an atom or quoted string that is not a valid name.
func checkName(tok []byte) {
	value := tok
	quoted := tok[0] == '"' && len(tok) >= 2
	if quoted {
		value = unquote(tok[1 : len(tok)-1])
	}
	if !validMUTF7(string(value)) {
		fill(tok, quoted)
	}
}

// tokenEnd is the end of the argument starting at i: a quoted string, a
// parenthesized list, or an atom.
func tokenEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(b)
	case '(':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '(':
				depth++
			case ')':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ' ' {
		j++
	}
	return j
}

func unquote(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+1 < len(b) {
			i++
		}
		out = append(out, b[i])
	}
	return out
}

// fill overwrites a token with the filler, keeping quotes and its length.
func fill(tok []byte, quoted bool) {
	inner := tok
	if quoted && len(tok) >= 2 {
		inner = tok[1 : len(tok)-1]
	}
	for i := range inner {
		inner[i] = invalidNameFiller
	}
}

// validMUTF7 reports whether go-imap decodes s as a modified UTF-7 mailbox
// name (RFC 3501, 5.1.3), following its decoder: printable ASCII or UTF-8
// outside shifts, "&-" for "&", and shifts of modified base64 holding
// UTF-16 of non-ASCII characters, never two shifts in a row.
func validMUTF7(s string) bool {
	if strings.EqualFold(s, "INBOX") {
		return true
	}
	if !utf8.ValidString(s) {
		return false
	}
	afterShift := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return false
		}
		if c != '&' {
			afterShift = false
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return false
		}
		shift := s[i+1 : i+1+end]
		i += end + 1
		if shift == "" {
			afterShift = false
			continue
		}
		if afterShift || !validShift(shift) {
			return false
		}
		afterShift = true
	}
	return true
}

var mutf7Base64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// validShift reports whether one shift decodes to UTF-16 of characters
// that are not printable ASCII, with surrogates paired.
func validShift(b64 string) bool {
	b, err := mutf7Base64.DecodeString(b64)
	if err != nil || len(b) == 0 || len(b)%2 == 1 {
		return false
	}
	units := make([]uint16, len(b)/2)
	for i := range units {
		units[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	for i := 0; i < len(units); i++ {
		r := rune(units[i])
		if utf16.IsSurrogate(r) {
			if i+1 == len(units) || utf16.DecodeRune(r, rune(units[i+1])) == utf8.RuneError {
				return false
			}
			i++
			continue
		}
		if r >= 0x20 && r <= 0x7e {
			return false
		}
	}
	return true
}
