package carddav

import (
	"encoding/xml"
	"strings"
	"testing"

	"github.com/emersion/go-vcard"

	"github.com/asmtp/asmtp/asmtp/passport"
)

func decodeCard(t *testing.T, lines ...string) vcard.Card {
	t.Helper()
	text := "BEGIN:VCARD\r\nVERSION:4.0\r\n" + strings.Join(lines, "\r\n") + "\r\nEND:VCARD\r\n"
	v, err := vcard.NewDecoder(strings.NewReader(text)).Decode()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseCard(t *testing.T) {
	id := passport.Hash{0xab, 0xcd}
	hexID := id.String()
	tests := []struct {
		name     string
		lines    []string
		wantName string
		wantErr  string
	}{
		{"FN and EMAIL", []string{"FN:Bob", "EMAIL:" + hexID + "@asmtp"}, "Bob", ""},
		{"upper case, mailto, other addresses first", []string{"FN: Bob ", "EMAIL:bob@example.org",
			"EMAIL;TYPE=work:mailto:" + strings.ToUpper(hexID) + "@ASMTP"}, "Bob", ""},
		{"structured name only (Thunderbird 3.0 cards)", []string{"N:Smith;Bob;;;", "EMAIL:" + hexID + "@asmtp"}, "Bob Smith", ""},
		{"our property when EMAIL is gone", []string{"FN:Bob", "X-ASMTP-PASSPORT:" + hexID}, "Bob", ""},
		{"no name", []string{"EMAIL:" + hexID + "@asmtp"}, "", "no name"},
		{"another domain only", []string{"FN:Eve", "EMAIL:" + hexID + "@example.org"}, "", "only ASMTP contacts"},
		{"not a passport id", []string{"FN:Eve", "EMAIL:eve@asmtp"}, "", "only ASMTP contacts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, got, err := parseCard(decodeCard(t, tt.lines...), "asmtp")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || name != tt.wantName || got != id {
				t.Fatalf("= %q, %s, %v; want %q, %s", name, got, err, tt.wantName, id)
			}
		})
	}
}

// TestCardRoundTrip: the card served for a contact is read back as the
// same contact, and its ETag follows its text.
func TestCardRoundTrip(t *testing.T) {
	c := Contact{Name: "Ünïcode, with; punctuation", Passport: passport.Hash{1, 2, 3}}
	text, etag, err := encode(card(c, "asmtp"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vcard.NewDecoder(strings.NewReader(string(text))).Decode()
	if err != nil {
		t.Fatal(err)
	}
	name, id, err := parseCard(v, "asmtp")
	if err != nil || name != c.Name || id != c.Passport {
		t.Fatalf("read back %q, %s, %v; want %q, %s\n%s", name, id, err, c.Name, c.Passport, text)
	}
	c.Name = "Other"
	if _, etag2, _ := encode(card(c, "asmtp")); etag2 == etag {
		t.Error("renamed card has the same ETag")
	}
}

func TestAnswerPrivileges(t *testing.T) {
	in := `<?xml version="1.0" encoding="UTF-8"?>
<multistatus xmlns="DAV:"><response xmlns="DAV:"><href>/dav/a/books/contacts/</href><propstat xmlns="DAV:"><prop xmlns="DAV:"><resourcetype xmlns="DAV:"><collection xmlns="DAV:"></collection></resourcetype></prop><status>HTTP/1.1 200 OK</status></propstat><propstat xmlns="DAV:"><prop xmlns="DAV:"><current-user-privilege-set xmlns="DAV:"></current-user-privilege-set></prop><status>HTTP/1.1 404 Not Found</status></propstat></response><response xmlns="DAV:"><href>/dav/a/</href><propstat xmlns="DAV:"><prop xmlns="DAV:"><displayname xmlns="DAV:"></displayname><current-user-privilege-set xmlns="DAV:"></current-user-privilege-set></prop><status>HTTP/1.1 404 Not Found</status></propstat></response></multistatus>`
	b := &backend{account: "a"}
	out, err := answerProperties([]byte(in), func(name xml.Name, href string) (rawElement, bool) {
		if name != privilegeSetName {
			return rawElement{}, false
		}
		return privilegeSet(href, b.bookPath()), true
	})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	book, principal, ok := strings.Cut(s, `<href xmlns="DAV:">/dav/a/</href>`)
	if !ok {
		t.Fatalf("no principal in\n%s", s)
	}
	for _, c := range []struct {
		part, want string
		n          int
	}{
		{book, `<resourcetype xmlns="DAV:"><collection xmlns="DAV:"></collection></resourcetype>`, 1},
		{book, `<privilege xmlns="DAV:"><write xmlns="DAV:"/></privilege>`, 1},
		{book, "404 Not Found", 0},
		{book, "200 OK", 1},
		{principal, `<privilege xmlns="DAV:"><read xmlns="DAV:"/></privilege>`, 1},
		{principal, "<write", 0},
		{principal, `<displayname xmlns="DAV:"></displayname></prop><status xmlns="DAV:">HTTP/1.1 404 Not Found`, 1},
	} {
		if got := strings.Count(c.part, c.want); got != c.n {
			t.Errorf("%d × %s, want %d, in\n%s", got, c.want, c.n, s)
		}
	}
}
