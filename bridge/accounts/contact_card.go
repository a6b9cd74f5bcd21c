package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/asmtp/asmtp/asmtp/passport"
)

// ContactCard is the resource name and UID a CardDAV client chose for the
// card of a contact it created. Serving the card under them again is what
// clients expect: Thunderbird fetches a card it uploaded from where it put
// it, and vdirsyncer follows cards by UID.
type ContactCard struct {
	Name string // resource name in the address book, e.g. "<uuid>.vcf"
	UID  string
}

// maxCardField bounds a card's resource name and UID, in bytes.
const maxCardField = 255

// CheckContactCard reports whether a client's resource name and UID can
// be kept: printable ASCII of at most maxCardField bytes; the name of
// letters, digits and ".-_@" ending in ".vcf", not a path.
func CheckContactCard(cc ContactCard) error {
	if len(cc.Name) > maxCardField || len(cc.UID) > maxCardField || cc.UID == "" || !strings.HasSuffix(cc.Name, ".vcf") {
		return fmt.Errorf("card %q (UID %q): want a name ending in .vcf and a UID, each at most %d bytes", cc.Name, cc.UID, maxCardField)
	}
	for _, c := range []byte(cc.Name) {
		if !isAlnum(c) && !strings.ContainsRune(".-_@", rune(c)) {
			return fmt.Errorf("card name %q: %q is not allowed", cc.Name, c)
		}
	}
	for _, c := range []byte(cc.UID) {
		if c < 0x20 || c > 0x7e {
			return fmt.Errorf("card UID %q: control or non-ASCII byte", cc.UID)
		}
	}
	return nil
}

// SetContactCard records the card name and UID a client chose for an
// account's contact.
func (r *Registry) SetContactCard(ctx context.Context, account string, id passport.Hash, cc ContactCard) error {
	if err := CheckContactCard(cc); err != nil {
		return err
	}
	_, err := r.db.ExecContext(ctx, `INSERT INTO contact_cards (account, passport_id, name, uid) VALUES (?, ?, ?, ?)
		ON CONFLICT (account, passport_id) DO UPDATE SET name = excluded.name, uid = excluded.uid`,
		strings.ToLower(account), id[:], cc.Name, cc.UID)
	if err != nil {
		return fmt.Errorf("card of contact %s of %s: %w", id, account, err)
	}
	return nil
}

// ContactCards are the chosen cards of an account's contacts, by passport.
func (r *Registry) ContactCards(ctx context.Context, account string) (map[passport.Hash]ContactCard, error) {
	rows, err := r.db.QueryContext(ctx, "SELECT passport_id, name, uid FROM contact_cards WHERE account = ?", strings.ToLower(account))
	if err != nil {
		return nil, fmt.Errorf("cards of %s: %w", account, err)
	}
	defer rows.Close()
	out := make(map[passport.Hash]ContactCard)
	for rows.Next() {
		var id []byte
		var cc ContactCard
		if err := rows.Scan(&id, &cc.Name, &cc.UID); err != nil {
			return nil, fmt.Errorf("cards of %s: %w", account, err)
		}
		var h passport.Hash
		copy(h[:], id)
		out[h] = cc
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cards of %s: %w", account, err)
	}
	return out, nil
}

// ContactCardByName returns the passport of the account's contact whose
// chosen card is named name, or ErrNoContact.
func (r *Registry) ContactCardByName(ctx context.Context, account, name string) (passport.Hash, ContactCard, error) {
	var id []byte
	cc := ContactCard{Name: name}
	err := r.db.QueryRowContext(ctx, "SELECT passport_id, uid FROM contact_cards WHERE account = ? AND name = ?",
		strings.ToLower(account), name).Scan(&id, &cc.UID)
	var h passport.Hash
	if errors.Is(err, sql.ErrNoRows) {
		return h, cc, ErrNoContact
	}
	if err != nil {
		return h, cc, fmt.Errorf("card %s of %s: %w", name, account, err)
	}
	copy(h[:], id)
	return h, cc, nil
}
