package accounts

import (
	"bufio"
	"io"
	"strings"
	"unicode/utf8"
)

// maxVCardLine is RFC 2426's line length before folding, in octets.
const maxVCardLine = 75

// WriteVCards writes the contacts as vCard 3.0 (RFC 2426): FN is the
// petname and EMAIL the pseudo-address under domain; N is empty, since a
// petname is not a structured name; UID names the passport, so importing
// the file again updates cards instead of duplicating them.
//
// Version 3.0 rather than 4.0: Thunderbird imports both (from 102 on it
// stores cards as 4.0), but older Thunderbird releases, mutt's and
// abook's converters and most other address books read 3.0 reliably,
// and these cards use nothing 4.0 adds.
func WriteVCards(w io.Writer, contacts []Contact, domain string) error {
	bw := bufio.NewWriter(w)
	for _, c := range contacts {
		for _, line := range []string{
			"BEGIN:VCARD",
			"VERSION:3.0",
			"UID:asmtp-passport-" + c.Passport.String(),
			"FN:" + escapeVCardText(c.Name),
			"N:;;;;",
			"EMAIL;TYPE=INTERNET:" + NewAddress(c.Passport, domain).String(),
			"END:VCARD",
		} {
			writeFolded(bw, line)
		}
	}
	return bw.Flush()
}

// escapeVCardText escapes a TEXT value (RFC 2426 §4).
func escapeVCardText(s string) string {
	return strings.NewReplacer(`\`, `\\`, ",", `\,`, ";", `\;`, "\n", `\n`).Replace(s)
}

// writeFolded writes one content line, folded into lines of at most
// maxVCardLine octets (continuations start with a space), never inside a
// UTF-8 sequence, each ended by CRLF.
func writeFolded(w *bufio.Writer, line string) {
	limit := maxVCardLine
	for len(line) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		w.WriteString(line[:cut])
		w.WriteString("\r\n ")
		line = line[cut:]
		limit = maxVCardLine - 1 // the leading space counts
	}
	w.WriteString(line)
	w.WriteString("\r\n")
}
