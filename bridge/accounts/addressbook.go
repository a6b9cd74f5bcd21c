package accounts

import (
	"context"
	"errors"
	"fmt"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/carddav"
)

// AddressBook is the registry's address books as the CardDAV server
// serves them (a carddav.Book).
type AddressBook struct{ reg *Registry }

var _ carddav.Book = AddressBook{}

// NewAddressBook serves reg's address books.
func NewAddressBook(reg *Registry) AddressBook { return AddressBook{reg} }

func davContact(c Contact, cc ContactCard) carddav.Contact {
	return carddav.Contact{Name: c.Name, Passport: c.Passport, UpdatedAt: c.UpdatedAt, CardName: cc.Name, CardUID: cc.UID}
}

// davError marks the registry's errors with the CardDAV server's kinds.
func davError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNoContact):
		return fmt.Errorf("%w: %w", carddav.ErrNoContact, err)
	case errors.Is(err, ErrContactExists):
		return fmt.Errorf("%w: %w", carddav.ErrConflict, err)
	case errors.Is(err, ErrTooManyContacts):
		return fmt.Errorf("%w: %w", carddav.ErrFull, err)
	}
	return err
}

func (b AddressBook) Contacts(ctx context.Context, account string) ([]carddav.Contact, error) {
	contacts, err := b.reg.Contacts(ctx, account)
	if err != nil {
		return nil, davError(err)
	}
	cards, err := b.reg.ContactCards(ctx, account)
	if err != nil {
		return nil, err
	}
	out := make([]carddav.Contact, len(contacts))
	for i, c := range contacts {
		out[i] = davContact(c, cards[c.Passport])
	}
	return out, nil
}

func (b AddressBook) Contact(ctx context.Context, account string, id passport.Hash) (carddav.Contact, error) {
	c, err := b.reg.Contact(ctx, account, id)
	if err != nil {
		return carddav.Contact{}, davError(err)
	}
	return b.withCard(ctx, account, c)
}

// withCard is c with the card a client chose for it, if any.
func (b AddressBook) withCard(ctx context.Context, account string, c Contact) (carddav.Contact, error) {
	cards, err := b.reg.ContactCards(ctx, account)
	if err != nil {
		return carddav.Contact{}, err
	}
	return davContact(c, cards[c.Passport]), nil
}

func (b AddressBook) ContactByCard(ctx context.Context, account, cardName string) (carddav.Contact, error) {
	id, cc, err := b.reg.ContactCardByName(ctx, account, cardName)
	if err != nil {
		return carddav.Contact{}, davError(err)
	}
	c, err := b.reg.Contact(ctx, account, id)
	return davContact(c, cc), davError(err)
}

// Add adds a pending contact: the daemon's next follow looks the passport
// up on the network, as for `asmtpd-cli contact add --id`.
// The client's name and UID for the card are kept when they are sane;
// otherwise the card is served under the defaults, which clients follow.
func (b AddressBook) Add(ctx context.Context, account, name string, id passport.Hash, cardName, cardUID string) (carddav.Contact, error) {
	if _, err := CheckPetname(name); err != nil {
		return carddav.Contact{}, fmt.Errorf("%w: %w", carddav.ErrInvalid, err)
	}
	c, err := b.reg.AddPendingContact(ctx, account, name, id)
	if err != nil {
		return carddav.Contact{}, davError(err)
	}
	cc := ContactCard{Name: cardName, UID: cardUID}
	if cardName == "" || CheckContactCard(cc) != nil || b.reg.SetContactCard(ctx, account, id, cc) != nil {
		cc = ContactCard{}
	}
	return davContact(c, cc), nil
}

func (b AddressBook) Rename(ctx context.Context, account string, id passport.Hash, name string) (carddav.Contact, error) {
	if _, err := CheckPetname(name); err != nil {
		return carddav.Contact{}, fmt.Errorf("%w: %w", carddav.ErrInvalid, err)
	}
	old, err := b.reg.Contact(ctx, account, id)
	if err != nil {
		return carddav.Contact{}, davError(err)
	}
	c, err := b.reg.RenameContact(ctx, account, old.Name, name)
	if err != nil {
		return carddav.Contact{}, davError(err)
	}
	return b.withCard(ctx, account, c)
}

func (b AddressBook) Remove(ctx context.Context, account string, id passport.Hash) error {
	c, err := b.reg.Contact(ctx, account, id)
	if err != nil {
		return davError(err)
	}
	return davError(b.reg.RemoveContact(ctx, account, c.Name))
}
