package carddav

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-vcard"

	"github.com/asmtp/asmtp/asmtp/passport"
)

// PassportField is the vCard property naming the contact's passport id
// (32 hex characters). EMAIL says the same under the bridge's domain; the
// property of our own keeps the id when a client rewrites or drops EMAIL.
const PassportField = "X-ASMTP-PASSPORT"

// Contact is an address book entry as the CardDAV server sees it.
type Contact struct {
	Name      string // petname: the card's FN
	Passport  passport.Hash
	UpdatedAt time.Time
	// CardName and CardUID are the resource name and UID a client gave
	// the card when it created the contact; empty for <passport-id>.vcf
	// and UID asmtp-passport-<passport-id>.
	CardName, CardUID string
}

// uid is a card's default UID: the same as the vCard export's
// (bridge.WriteVCards), so a card imported from a file and one synced
// here are the same card.
func uid(id passport.Hash) string { return "asmtp-passport-" + id.String() }

// cardName is a card's default resource name.
func cardName(id passport.Hash) string { return id.String() + cardExt }

// card is c as a vCard 4.0: FN the petname, EMAIL the pseudo-address
// under domain, the passport id in PassportField.
func card(c Contact, domain string) vcard.Card {
	v := make(vcard.Card)
	v.SetValue(vcard.FieldVersion, "4.0")
	if c.CardUID != "" {
		v.SetValue(vcard.FieldUID, c.CardUID)
	} else {
		v.SetValue(vcard.FieldUID, uid(c.Passport))
	}
	v.SetValue(vcard.FieldFormattedName, c.Name)
	v.SetValue(vcard.FieldEmail, c.Passport.String()+"@"+domain)
	v.SetValue(PassportField, c.Passport.String())
	if !c.UpdatedAt.IsZero() {
		v.SetRevision(c.UpdatedAt)
	}
	return v
}

// encode is the card's text and its ETag: a hash of the text, so the ETag
// changes exactly when what a client would download does.
func encode(v vcard.Card) ([]byte, string, error) {
	var buf bytes.Buffer
	if err := vcard.NewEncoder(&buf).Encode(v); err != nil {
		return nil, "", fmt.Errorf("encode vCard: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:12]), nil
}

// errBadCard is a card that cannot be a contact; the client is told why.
var errBadCard = errors.New("card")

// parseCard reads what a client's card means to the address book: the
// petname (FN, else the structured name) and the passport of its first
// EMAIL under domain (else PassportField).
func parseCard(v vcard.Card, domain string) (name string, id passport.Hash, err error) {
	name = strings.TrimSpace(v.PreferredValue(vcard.FieldFormattedName))
	if name == "" {
		if n := v.Name(); n != nil {
			name = strings.TrimSpace(strings.Join(strings.Fields(n.GivenName+" "+n.FamilyName), " "))
		}
	}
	if name == "" {
		return "", id, fmt.Errorf("%w: no name (FN): the name is the contact's petname", errBadCard)
	}
	for _, email := range v.Values(vcard.FieldEmail) {
		local, dom, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(email, "mailto:")), "@")
		if !ok || !strings.EqualFold(dom, domain) {
			continue
		}
		if id, err = passport.ParseHash(strings.ToLower(local)); err == nil {
			return name, id, nil
		}
	}
	if p := v.Value(PassportField); p != "" {
		if id, err = passport.ParseHash(strings.ToLower(strings.TrimSpace(p))); err == nil {
			return name, id, nil
		}
	}
	return "", id, fmt.Errorf("%w: no <passport-id>@%s address (EMAIL): only ASMTP contacts can be kept", errBadCard, domain)
}
