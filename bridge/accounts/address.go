package accounts

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/asmtp/asmtp/asmtp/passport"
)

// DefaultDomain is the domain of pseudo-addresses unless configured.
const DefaultDomain = "asmtp"

// RFC 5321 §4.5.3.1 size limits. A pseudo-address's local part is always
// 32 characters, so only the domain can push an address over the limit.
const (
	maxLocalPart = 64
	maxPath      = 254 // 256-octet forward-path minus its angle brackets
	maxLabel     = 63
	// MaxDomainLen is the longest domain that leaves room for a 32-character
	// local part and the "@" within maxPath.
	MaxDomainLen = maxPath - 2*passport.HashSize - 1
)

// ErrNotASMTPAddress is returned by ParseAddress for a well-formed address
// whose domain is not the bridge's.
var ErrNotASMTPAddress = errors.New("not an ASMTP address")

// Address is the pseudo e-mail address of a passport:
// "<32 lowercase hex passport id>@<domain>". It says nothing about the
// person; the address book (Contact.Name) gives the display name.
type Address struct {
	Passport passport.Hash
	Domain   string // lower case
}

// NewAddress is the address of passport id under domain (case folded).
func NewAddress(id passport.Hash, domain string) Address {
	return Address{Passport: id, Domain: strings.ToLower(domain)}
}

// String is the address in its canonical, lower-case form.
func (a Address) String() string { return a.Passport.String() + "@" + a.Domain }

// ParseAddress parses an addr-spec such as "0123…cdef@asmtp" (no display
// name, no angle brackets). Letters may be of either case; the domain must
// be domain, else the error wraps ErrNotASMTPAddress.
func ParseAddress(s, domain string) (Address, error) {
	if len(s) > maxPath {
		return Address{}, fmt.Errorf("address of %d characters: the limit is %d", len(s), maxPath)
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return Address{}, fmt.Errorf("address %q has no @", s)
	}
	local, dom := s[:at], s[at+1:]
	if len(local) > maxLocalPart {
		return Address{}, fmt.Errorf("address %q: local part of %d characters: the limit is %d", s, len(local), maxLocalPart)
	}
	if !strings.EqualFold(dom, domain) {
		return Address{}, fmt.Errorf("address %q: domain is not %s: %w", s, domain, ErrNotASMTPAddress)
	}
	id, err := passport.ParseHash(local)
	if err != nil {
		return Address{}, fmt.Errorf("address %q: local part is not a 32-hex passport id: %w", s, ErrNotASMTPAddress)
	}
	return NewAddress(id, domain), nil
}

// CheckDomain checks a configured pseudo-address domain: dot-separated
// labels of letters, digits and inner hyphens, 1 to 63 characters each, at
// most MaxDomainLen in all. A single label such as "asmtp" is allowed: the
// domain is never looked up in the DNS.
func CheckDomain(domain string) error {
	if domain == "" || len(domain) > MaxDomainLen {
		return fmt.Errorf("domain %q: want 1 to %d characters", domain, MaxDomainLen)
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > maxLabel || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("domain %q: label %q must have 1 to %d characters and not begin or end with '-'", domain, label, maxLabel)
		}
		for _, c := range []byte(label) {
			if !isAlnum(c) && c != '-' {
				return fmt.Errorf("domain %q: %q is not allowed (letters, digits, '-' and '.')", domain, c)
			}
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// MailAddress is the contact as a mail header address: the petname from
// the address book as display name (quoted or RFC 2047-encoded as needed by
// String) and the contact's pseudo-address.
func (c Contact) MailAddress(domain string) *mail.Address {
	return &mail.Address{Name: c.Name, Address: NewAddress(c.Passport, domain).String()}
}
