package mailstore

import (
	"regexp"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/mail"
)

// parseAddressList reads an address header as the IMAP ENVELOPE has it
// (RFC 3501 §7.4.2): a group "g: a@x, b@y;" becomes a start marker (the
// group name as mailbox, no host), its members and an end marker (all
// empty), where net/mail would flatten it; a route address
// "<@relay:user@domain>" keeps its user and domain (go-imap's Address has
// no field for the route, so the route itself is dropped) where net/mail
// refuses it.
func parseAddressList(value string) []imap.Address {
	var out []imap.Address
	for _, item := range splitTopLevel(value, ',', true) {
		name, members, isGroup := cutGroup(item)
		if !isGroup {
			out = appendMailbox(out, item)
			continue
		}
		out = append(out, imap.Address{Mailbox: decodePhrase(name)})
		for _, m := range splitTopLevel(members, ',', false) {
			out = appendMailbox(out, m)
		}
		out = append(out, imap.Address{})
	}
	return out
}

// splitTopLevel splits s at sep outside quotes, comments and angle
// brackets; with groups, also outside "name: ...;" groups.
func splitTopLevel(s string, sep byte, groups bool) []string {
	var parts []string
	depth, angle, inGroup, quoted, start := 0, false, false, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\':
			i++
		case quoted:
			quoted = c != '"'
		case c == '"' && depth == 0:
			quoted = true
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0:
		case c == '<':
			angle = true
		case c == '>':
			angle = false
		case angle:
		case groups && c == ':':
			inGroup = true
		case groups && c == ';':
			inGroup = false
		case c == sep && !inGroup:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// cutGroup splits "name: members;" into the name and the members.
func cutGroup(item string) (name, members string, ok bool) {
	colon := splitTopLevel(item, ':', false)
	if len(colon) < 2 {
		return "", "", false
	}
	name = colon[0]
	members = strings.TrimSpace(strings.Join(colon[1:], ":"))
	members = strings.TrimSuffix(members, ";")
	return strings.TrimSpace(name), members, true
}

// appendMailbox appends one mailbox, without its route; what cannot be
// parsed is left out, as before.
func appendMailbox(out []imap.Address, s string) []imap.Address {
	s = strings.TrimSpace(s)
	if s == "" {
		return out
	}
	if open := strings.LastIndexByte(s, '<'); open >= 0 && strings.HasPrefix(s[open+1:], "@") {
		if colon := strings.IndexByte(s[open:], ':'); colon > 0 {
			s = s[:open+1] + s[open+colon+1:]
		}
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		// net/mail refuses comments inside an address ("<u (c)@ (c) d>");
		// Dovecot reads through them.
		if a, err = mail.ParseAddress(atSpace.ReplaceAllString(stripComments(s), "@")); err != nil {
			return out
		}
	}
	mailbox, host, ok := strings.Cut(a.Address, "@")
	if !ok {
		return out
	}
	return append(out, imap.Address{Name: validUTF8(a.Name), Mailbox: mailbox, Host: host})
}

// decodePhrase decodes a group name: quotes and encoded-words.
func decodePhrase(s string) string {
	if a, err := mail.ParseAddress(s + " <x@x>"); err == nil {
		return validUTF8(a.Name)
	}
	return validUTF8(strings.Trim(s, `"`))
}

// atSpace is the white space a removed comment leaves around "@".
var atSpace = regexp.MustCompile(`\s*@\s*`)

// stripComments removes (comments) outside quoted strings.
func stripComments(s string) string {
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case depth == 0 && quoted && c == '\\' && i+1 < len(s):
			b.WriteByte(c)
			i++
			c = s[i]
		case depth == 0 && c == '"':
			quoted = !quoted
		case !quoted && c == '(':
			depth++
			continue
		case !quoted && c == ')' && depth > 0:
			depth--
			continue
		}
		if depth == 0 {
			b.WriteByte(c)
		}
	}
	return b.String()
}
