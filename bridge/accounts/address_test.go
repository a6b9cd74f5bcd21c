package accounts_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/accounts"
)

const testID = "00112233445566778899aabbccddeeff"

func TestParseAddress(t *testing.T) {
	id, err := passport.ParseHash(testID)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", accounts.MaxDomainLen)
	for _, c := range []struct {
		name, in, domain string
		ok               bool
		foreign          bool // the error wraps accounts.ErrNotASMTPAddress
	}{
		{"canonical", testID + "@asmtp", "asmtp", true, false},
		{"upper-case id and domain", strings.ToUpper(testID) + "@ASMTP", "asmtp", true, false},
		{"configured domain in other case", testID + "@mail.example", "Mail.Example", true, false},
		{"longest domain", testID + "@" + long, long, true, false},
		{"other domain", testID + "@example.org", "asmtp", false, true},
		{"short id", testID[2:] + "@asmtp", "asmtp", false, true},
		{"non-hex id", strings.Repeat("g", 32) + "@asmtp", "asmtp", false, true},
		{"plain name", "alice@asmtp", "asmtp", false, true},
		{"no @", testID, "asmtp", false, false},
		{"empty", "", "asmtp", false, false},
		{"local part over 64", strings.Repeat("a", 65) + "@asmtp", "asmtp", false, false},
		{"whole over 254", testID + "@" + long + "a", long + "a", false, false},
		{"display name form", "Alice <" + testID + "@asmtp>", "asmtp", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := accounts.ParseAddress(c.in, c.domain)
			if (err == nil) != c.ok {
				t.Fatalf("accounts.ParseAddress(%q, %q) = %v, %v; want ok=%v", c.in, c.domain, a, err, c.ok)
			}
			if !c.ok {
				if got := errors.Is(err, accounts.ErrNotASMTPAddress); got != c.foreign {
					t.Errorf("error %v: wraps accounts.ErrNotASMTPAddress = %v, want %v", err, got, c.foreign)
				}
				return
			}
			if a.Passport != id {
				t.Errorf("passport = %s, want %s", a.Passport, id)
			}
			if want := testID + "@" + strings.ToLower(c.domain); a.String() != want {
				t.Errorf("String() = %q, want %q", a, want)
			}
		})
	}
}

func TestCheckDomain(t *testing.T) {
	for _, c := range []struct {
		domain string
		ok     bool
	}{
		{"asmtp", true},
		{"mail.example.org", true},
		{"x-1.example", true},
		{strings.Repeat("a", 63) + ".b", true},
		{strings.Repeat("a.", (accounts.MaxDomainLen-1)/2) + "b", true}, // accounts.MaxDomainLen (odd) characters
		{strings.Repeat("a.", (accounts.MaxDomainLen+1)/2) + "b", false},
		{"", false},
		{strings.Repeat("a", 64), false},
		{"-a.example", false},
		{"a-.example", false},
		{"a..example", false},
		{".example", false},
		{"exa mple", false},
		{"exämple", false},
		{"a@b", false},
	} {
		if err := accounts.CheckDomain(c.domain); (err == nil) != c.ok {
			t.Errorf("accounts.CheckDomain(%q) = %v, want ok=%v", c.domain, err, c.ok)
		}
	}
}

func TestContactMailAddress(t *testing.T) {
	id, _ := passport.ParseHash(testID)
	for _, c := range []struct{ name, want string }{
		{"Alice", `"Alice" <` + testID + `@asmtp>`},
		{`Bob "the builder", Jr.`, `"Bob \"the builder\", Jr." <` + testID + `@asmtp>`},
		{"Zoë", `=?utf-8?q?Zo=C3=AB?= <` + testID + `@asmtp>`},
	} {
		got := accounts.Contact{Name: c.name, Passport: id}.MailAddress("ASMTP").String()
		if got != c.want {
			t.Errorf("MailAddress(%q) = %s, want %s", c.name, got, c.want)
		}
	}
}
