package accounts_test

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/accounts"
)

// parseVCards is a reader of RFC 2426 as an importer sees it: lines end in
// CRLF, a line starting with a space continues the previous one, and TEXT
// values unescape \\ \, \; \n.
func parseVCards(t *testing.T, data []byte) []map[string]string {
	t.Helper()
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		t.Fatal("output does not end in CRLF")
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\r\n"), "\r\n") {
		if len(l) > accounts.MaxVCardLine {
			t.Errorf("line of %d octets: %q", len(l), l)
		}
		if !utf8.ValidString(l) {
			t.Errorf("line folded inside a UTF-8 sequence: %q", l)
		}
		if strings.ContainsAny(l, "\r\n") {
			t.Errorf("bare CR or LF in %q", l)
		}
		if strings.HasPrefix(l, " ") {
			lines[len(lines)-1] += l[1:]
			continue
		}
		lines = append(lines, l)
	}
	unescape := strings.NewReplacer(`\\`, `\`, `\,`, ",", `\;`, ";", `\n`, "\n", `\N`, "\n")
	var cards []map[string]string
	var card map[string]string
	for _, l := range lines {
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("content line without a colon: %q", l)
		}
		switch {
		case l == "BEGIN:VCARD":
			card = map[string]string{}
		case l == "END:VCARD":
			cards = append(cards, card)
			card = nil
		case card == nil:
			t.Fatalf("%q outside a card", l)
		default:
			card[name] = unescape.Replace(value)
		}
	}
	return cards
}

func TestWriteVCards(t *testing.T) {
	id1, _ := passport.ParseHash(testID)
	id2, _ := passport.ParseHash(strings.Repeat("ab", 16))
	contacts := []accounts.Contact{
		{Name: "Alice", Passport: id1},
		// Escapes, and a name long enough to be folded inside a multi-byte character.
		{Name: `Bob; "the builder", \o/ ` + strings.Repeat("é", 40), Passport: id2},
	}
	var buf bytes.Buffer
	if err := accounts.WriteVCards(&buf, contacts, "ASMTP"); err != nil {
		t.Fatal(err)
	}
	cards := parseVCards(t, buf.Bytes())
	if len(cards) != len(contacts) {
		t.Fatalf("%d cards, want %d:\n%s", len(cards), len(contacts), buf.String())
	}
	for i, c := range contacts {
		want := map[string]string{
			"VERSION":             "3.0",
			"FN":                  c.Name,
			"N":                   ";;;;",
			"EMAIL;TYPE=INTERNET": c.Passport.String() + "@asmtp",
			"UID":                 "asmtp-passport-" + c.Passport.String(),
		}
		for k, v := range want {
			if cards[i][k] != v {
				t.Errorf("card %d: %s = %q, want %q", i, k, cards[i][k], v)
			}
		}
		if len(cards[i]) != len(want) {
			t.Errorf("card %d has properties %v, want %v", i, cards[i], want)
		}
	}
}
