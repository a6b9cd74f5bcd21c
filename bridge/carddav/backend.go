package carddav

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/emersion/go-vcard"
	"github.com/emersion/go-webdav"
	"github.com/emersion/go-webdav/carddav"

	"github.com/asmtp/asmtp/asmtp/passport"
)

// Book is the bridge's address books, one per account. Errors wrapping
// ErrNoContact, ErrConflict, ErrInvalid and ErrFull are told to the client as such;
// others are server errors.
type Book interface {
	// Contacts lists the account's contacts.
	Contacts(ctx context.Context, account string) ([]Contact, error)
	// Contact returns the account's contact with passport id.
	Contact(ctx context.Context, account string, id passport.Hash) (Contact, error)
	// ContactByCard returns the account's contact whose card a client
	// named cardName when it created it.
	ContactByCard(ctx context.Context, account, cardName string) (Contact, error)
	// Add adds a contact known by passport id only: the bridge looks its
	// passport up on the network, as `asmtpd-cli contact add --id` does.
	// cardName and cardUID, when not empty, are what the client called
	// the card; the book keeps them if it can.
	Add(ctx context.Context, account, name string, id passport.Hash, cardName, cardUID string) (Contact, error)
	// Rename gives the contact with passport id a new petname.
	Rename(ctx context.Context, account string, id passport.Hash, name string) (Contact, error)
	// Remove removes the contact with passport id.
	Remove(ctx context.Context, account string, id passport.Hash) error
}

var (
	// ErrNoContact: no such contact (404).
	ErrNoContact = errors.New("no such contact")
	// ErrConflict: the name or passport is another contact's (409).
	ErrConflict = errors.New("conflicts with another contact")
	// ErrInvalid: the card's data cannot be a contact (400).
	ErrInvalid = errors.New("invalid contact")
	// ErrFull: the address book takes no more contacts (507).
	ErrFull = errors.New("address book full")
)

// Paths of an account's collections: the principal /dav/<account>/, its
// address book home /dav/<account>/books/ with one address book
// /dav/<account>/books/contacts/, whose cards are <passport-id>.vcf, or
// the name a client gave the card of a contact it created.
const (
	davPrefix = "/dav"
	homeName  = "books"
	bookName  = "contacts"
	cardExt   = ".vcf"
)

// backend is one authenticated account's view of the address books, for
// go-webdav's CardDAV handler: every path outside the account's own is
// not found, so another account's book cannot even be named.
type backend struct {
	s       *Server
	account string
}

var _ carddav.Backend = (*backend)(nil)

func (b *backend) principal() string { return davPrefix + "/" + b.account + "/" }
func (b *backend) home() string      { return b.principal() + homeName + "/" }
func (b *backend) bookPath() string  { return b.home() + bookName + "/" }
func (b *backend) cardPath(c Contact) string {
	if c.CardName != "" {
		return b.bookPath() + c.CardName
	}
	return b.bookPath() + cardName(c.Passport)
}

func notFound(p string) error {
	return webdav.NewHTTPError(http.StatusNotFound, fmt.Errorf("carddav: %s not found", p))
}

func forbidden(what string) error {
	return webdav.NewHTTPError(http.StatusForbidden, fmt.Errorf("carddav: %s: each account has exactly one address book", what))
}

// CurrentUserPrincipal implements webdav.UserPrincipalBackend.
func (b *backend) CurrentUserPrincipal(context.Context) (string, error) { return b.principal(), nil }

// AddressBookHomeSetPath implements carddav.Backend.
func (b *backend) AddressBookHomeSetPath(context.Context) (string, error) { return b.home(), nil }

// ListAddressBooks implements carddav.Backend: the account's one book.
func (b *backend) ListAddressBooks(context.Context) ([]carddav.AddressBook, error) {
	return []carddav.AddressBook{b.book()}, nil
}

func (b *backend) book() carddav.AddressBook {
	return carddav.AddressBook{
		Path:            b.bookPath(),
		Name:            "ASMTP contacts",
		Description:     "The petnames and " + b.s.opts.Domain + " addresses of " + b.account + "'s contacts",
		MaxResourceSize: b.s.opts.MaxCardBytes,
		SupportedAddressData: []carddav.AddressDataType{
			{ContentType: vcard.MIMEType, Version: "4.0"},
			{ContentType: vcard.MIMEType, Version: "3.0"},
		},
	}
}

// GetAddressBook implements carddav.Backend.
func (b *backend) GetAddressBook(_ context.Context, p string) (*carddav.AddressBook, error) {
	if cleanDir(p) != b.bookPath() {
		return nil, notFound(p)
	}
	ab := b.book()
	return &ab, nil
}

// CreateAddressBook implements carddav.Backend: refused.
func (b *backend) CreateAddressBook(context.Context, *carddav.AddressBook) error {
	return forbidden("cannot create an address book")
}

// DeleteAddressBook implements carddav.Backend: refused.
func (b *backend) DeleteAddressBook(context.Context, string) error {
	return forbidden("cannot delete the address book")
}

// cardFile is the card's resource name in a path of this account's book.
func (b *backend) cardFile(p string) (string, error) {
	dir, file := path.Split(path.Clean(p))
	if dir != b.bookPath() || !strings.HasSuffix(file, cardExt) {
		return "", notFound(p)
	}
	return file, nil
}

// contactAt is the contact whose card is at p: <passport-id>.vcf, or the
// name a client gave the card. Errors wrap ErrNoContact when there is none.
func (b *backend) contactAt(ctx context.Context, p string) (Contact, error) {
	file, err := b.cardFile(p)
	if err != nil {
		return Contact{}, err
	}
	if id, err := passport.ParseHash(strings.TrimSuffix(file, cardExt)); err == nil {
		c, err := b.s.opts.Book.Contact(ctx, b.account, id)
		if !errors.Is(err, ErrNoContact) {
			return c, err
		}
	}
	return b.s.opts.Book.ContactByCard(ctx, b.account, file)
}

// object is c as the address object the handler serves.
func (b *backend) object(c Contact) (carddav.AddressObject, error) {
	v := card(c, b.s.opts.Domain)
	text, etag, err := encode(v)
	if err != nil {
		return carddav.AddressObject{}, err
	}
	return carddav.AddressObject{
		Path:          b.cardPath(c),
		ModTime:       c.UpdatedAt,
		ContentLength: int64(len(text)),
		ETag:          etag,
		Card:          v,
	}, nil
}

// GetAddressObject implements carddav.Backend.
func (b *backend) GetAddressObject(ctx context.Context, p string, _ *carddav.AddressDataRequest) (*carddav.AddressObject, error) {
	c, err := b.contactAt(ctx, p)
	if err != nil {
		return nil, bookError(err)
	}
	ao, err := b.object(c)
	return &ao, err
}

// ListAddressObjects implements carddav.Backend.
func (b *backend) ListAddressObjects(ctx context.Context, p string, _ *carddav.AddressDataRequest) ([]carddav.AddressObject, error) {
	if cleanDir(p) != b.bookPath() {
		return nil, notFound(p)
	}
	contacts, err := b.s.opts.Book.Contacts(ctx, b.account)
	if err != nil {
		return nil, bookError(err)
	}
	out := make([]carddav.AddressObject, 0, len(contacts))
	for _, c := range contacts {
		ao, err := b.object(c)
		if err != nil {
			return nil, err
		}
		out = append(out, ao)
	}
	return out, nil
}

// QueryAddressObjects implements carddav.Backend (addressbook-query).
func (b *backend) QueryAddressObjects(ctx context.Context, p string, q *carddav.AddressBookQuery) ([]carddav.AddressObject, error) {
	all, err := b.ListAddressObjects(ctx, p, &q.DataRequest)
	if err != nil {
		return nil, err
	}
	return carddav.Filter(q, all)
}

// PutAddressObject implements carddav.Backend. A card put at a new path
// adds the contact its address names, keeping the client's name for the
// card and its UID; a card put at a contact's path renames it. Everything
// but the name and address is dropped: the bridge's address book keeps
// petnames only.
func (b *backend) PutAddressObject(ctx context.Context, p string, v vcard.Card, opts *carddav.PutAddressObjectOptions) (*carddav.AddressObject, error) {
	file, err := b.cardFile(p)
	if err != nil {
		return nil, err
	}
	name, id, err := parseCard(v, b.s.opts.Domain)
	if err != nil {
		return nil, webdav.NewHTTPError(http.StatusBadRequest, err)
	}
	at, err := b.contactAt(ctx, p)
	if err != nil && !errors.Is(err, ErrNoContact) {
		return nil, bookError(err)
	}
	var atPath *Contact
	if err == nil {
		atPath = &at
	}
	if err := b.checkPut(ctx, p, id, atPath, opts); err != nil {
		return nil, err
	}
	var c Contact
	switch {
	case atPath == nil:
		clientName, clientUID := clientCard(file, v, id)
		c, err = b.s.opts.Book.Add(ctx, b.account, name, id, clientName, clientUID)
	case at.Name != name:
		c, err = b.s.opts.Book.Rename(ctx, b.account, id, name)
	default:
		c = at
	}
	if err != nil {
		return nil, bookError(err)
	}
	ao, err := b.object(c)
	return &ao, err
}

// clientCard is the name and UID the client gave a new card, or "" where
// they are the defaults.
func clientCard(file string, v vcard.Card, id passport.Hash) (string, string) {
	u := v.Value(vcard.FieldUID)
	if file == cardName(id) && (u == "" || u == uid(id)) {
		return "", ""
	}
	if u == "" {
		u = uid(id)
	}
	return file, u
}

// checkPut applies If-Match and If-None-Match to the contact at path p
// (at, nil if none), and refuses a card whose address is not at's (a
// contact's address is its passport, which cannot change) or is another
// card's.
func (b *backend) checkPut(ctx context.Context, p string, id passport.Hash, at *Contact, opts *carddav.PutAddressObjectOptions) error {
	if at == nil {
		if opts.IfMatch.IsSet() {
			return webdav.NewHTTPError(http.StatusPreconditionFailed, fmt.Errorf("carddav: %s does not exist", p))
		}
		other, err := b.s.opts.Book.Contact(ctx, b.account, id)
		if err == nil {
			status := http.StatusConflict
			if opts.IfNoneMatch.IsWildcard() {
				status = http.StatusPreconditionFailed
			}
			return webdav.NewHTTPError(status, fmt.Errorf("carddav: %s is already the contact %q, card %s: %w",
				id, other.Name, b.cardPath(other), ErrConflict))
		}
		if !errors.Is(err, ErrNoContact) {
			return bookError(err)
		}
		return nil
	}
	if at.Passport != id {
		return webdav.NewHTTPError(http.StatusConflict,
			fmt.Errorf("carddav: %s is the card of passport %s; an address cannot change: add a new contact instead", p, at.Passport))
	}
	if opts.IfNoneMatch.IsWildcard() {
		return webdav.NewHTTPError(http.StatusPreconditionFailed, fmt.Errorf("carddav: %s exists: %w", p, ErrConflict))
	}
	if opts.IfMatch.IsSet() && !opts.IfMatch.IsWildcard() {
		want, err := opts.IfMatch.ETag()
		if err != nil {
			return webdav.NewHTTPError(http.StatusBadRequest, err)
		}
		ao, err := b.object(*at)
		if err != nil {
			return err
		}
		if ao.ETag != want {
			return webdav.NewHTTPError(http.StatusPreconditionFailed, fmt.Errorf("carddav: %s changed on the server", p))
		}
	}
	return nil
}

// DeleteAddressObject implements carddav.Backend: the contact is removed.
func (b *backend) DeleteAddressObject(ctx context.Context, p string) error {
	c, err := b.contactAt(ctx, p)
	if err != nil {
		return bookError(err)
	}
	return bookError(b.s.opts.Book.Remove(ctx, b.account, c.Passport))
}

// bookError is err with the HTTP status that tells the client what
// happened.
func bookError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNoContact):
		return webdav.NewHTTPError(http.StatusNotFound, err)
	case errors.Is(err, ErrConflict):
		return webdav.NewHTTPError(http.StatusConflict, err)
	case errors.Is(err, ErrInvalid):
		return webdav.NewHTTPError(http.StatusBadRequest, err)
	case errors.Is(err, ErrFull):
		return webdav.NewHTTPError(http.StatusInsufficientStorage, err)
	}
	return err
}

// cleanDir is p cleaned, with the trailing slash of a collection.
func cleanDir(p string) string { return strings.TrimSuffix(path.Clean(p), "/") + "/" }
