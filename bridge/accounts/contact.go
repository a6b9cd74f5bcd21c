package accounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/sqlitedb"
)

// MaxPetnameLen bounds petnames, in characters.
const MaxPetnameLen = 64

// MaxPendingContacts bounds an account's contacts still waiting for their
// passport: each is looked for on the network every RefreshInterval, so
// a client adding addresses without bound would keep the node asking.
const MaxPendingContacts = 100

var (
	// ErrNoContact: the account has no such contact.
	ErrNoContact = errors.New("no such contact")
	// ErrContactExists: the petname or the passport is already in the
	// account's address book.
	ErrContactExists = errors.New("contact already exists")
	// ErrTooManyContacts: the account's address book is full
	// (MaxContacts), or MaxPendingContacts wait for their passport.
	ErrTooManyContacts = errors.New("too many contacts")
)

// MaxContacts bounds an account's address book: every contact is a topic
// the node keeps and a card each client sync lists.
const MaxContacts = 10000

// Contact is an entry of an account's address book: a petname the owner
// chose for a passport. The petname is the only display name the bridge
// ever shows for the passport's address; nothing a sender writes replaces
// it.
//
// A contact added by passport id alone is pending (Blocks nil, SharedKey
// and Topic zero) until the daemon fetches the passport from the network.
type Contact struct {
	Account   string
	Name      string // petname
	Passport  passport.Hash
	Blocks    []byte         // the contact's PassportBlocks; nil while pending
	SharedKey keys.SharedKey // the passport's current shared key
	Topic     topic.Topic    // topic.Derive(account's shared key, SharedKey): where the two write to each other
	AddedAt   time.Time
	UpdatedAt time.Time
}

// Pending reports whether the contact's passport is still to be fetched.
func (c Contact) Pending() bool { return c.Blocks == nil }

// Address is the contact's pseudo-address.
func (c Contact) Address(domain string) Address { return NewAddress(c.Passport, domain) }

// CheckPetname returns the petname without surrounding spaces if it is
// valid: 1 to MaxPetnameLen characters of UTF-8 text without control or
// formatting characters (which could disguise one name as another, or
// break a mail header). Petnames are unique per account regardless of the
// case of ASCII letters.
func CheckPetname(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxPetnameLen {
		return "", fmt.Errorf("contact name %q: want 1 to %d characters of UTF-8 text", name, MaxPetnameLen)
	}
	for _, c := range name {
		if unicode.IsControl(c) || unicode.Is(unicode.Cf, c) {
			return "", fmt.Errorf("contact name %q: control or formatting character %U is not allowed", name, c)
		}
	}
	return name, nil
}

// AddContact adds a contact from its PassportBlocks (an export file). The
// passport is validated and the contact's topic derived at once, so the
// daemon registers the topic as soon as it sees the change.
func (r *Registry) AddContact(ctx context.Context, account, petname string, blocks []byte) (Contact, error) {
	p, err := passport.Import(blocks, time.Now())
	if err != nil {
		return Contact{}, fmt.Errorf("add contact %q: %w", petname, err)
	}
	return r.addContact(ctx, account, petname, p.ID(), p)
}

// AddPendingContact adds a contact known only by passport id; the daemon
// fetches the passport from the network (UpdateContactPassport).
func (r *Registry) AddPendingContact(ctx context.Context, account, petname string, id passport.Hash) (Contact, error) {
	return r.addContact(ctx, account, petname, id, nil)
}

func (r *Registry) addContact(ctx context.Context, account, petname string, id passport.Hash, p *passport.Passport) (Contact, error) {
	petname, err := CheckPetname(petname)
	if err != nil {
		return Contact{}, err
	}
	fail := func(err error) (Contact, error) {
		return Contact{}, fmt.Errorf("add contact %q to %s: %w", petname, account, err)
	}
	now := time.Now()
	c := Contact{Account: strings.ToLower(account), Name: petname, Passport: id, AddedAt: unixTime(now.Unix()), UpdatedAt: unixTime(now.Unix())}
	err = r.inTx(ctx, func(tx *sql.Tx) error {
		if p != nil {
			own, err := accountSharedKey(ctx, tx, c.Account)
			if err != nil {
				return err
			}
			if err := c.setPassport(own, p); err != nil {
				return err
			}
		} else if _, err := accountByName(ctx, tx, c.Account); err != nil {
			return err
		}
		if err := checkContactCount(ctx, tx, c.Account, p == nil); err != nil {
			return err
		}
		var other string
		err := tx.QueryRowContext(ctx, "SELECT petname FROM contacts WHERE account = ? AND (passport_id = ? OR petname = ?)",
			c.Account, id[:], petname).Scan(&other)
		if err == nil {
			return fmt.Errorf("%w: %q (passport %s)", ErrContactExists, other, id)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		blocks, sharedKey, topic := c.nullableColumns()
		if _, err := tx.ExecContext(ctx, `INSERT INTO contacts (account, petname, passport_id, passport_blocks, shared_key, topic, added_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, c.Account, c.Name, id[:], blocks, sharedKey, topic, now.Unix(), now.Unix()); err != nil {
			return err
		}
		// A contact removed and added again wants its topic back.
		_, err = tx.ExecContext(ctx, "DELETE FROM retired_topics WHERE account = ? AND topic = ?", c.Account, topic)
		return err
	})
	if err != nil {
		return fail(err)
	}
	return c, nil
}

// checkContactCount refuses one more contact (a pending one if pending)
// over MaxContacts or MaxPendingContacts.
func checkContactCount(ctx context.Context, tx *sql.Tx, account string, pending bool) error {
	var all, waiting int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*), COUNT(*) FILTER (WHERE passport_blocks IS NULL) FROM contacts WHERE account = ?",
		account).Scan(&all, &waiting); err != nil {
		return err
	}
	if all >= MaxContacts {
		return fmt.Errorf("%w: the address book holds %d, the limit; remove some first", ErrTooManyContacts, all)
	}
	if pending && waiting >= MaxPendingContacts {
		return fmt.Errorf("%w: %d contacts are pending (their passports not found on the network yet), the limit; "+
			"wait for them or remove some first", ErrTooManyContacts, waiting)
	}
	return nil
}

// accountSharedKey is the account's current shared key, from its passport.
func accountSharedKey(ctx context.Context, q querier, account string) (keys.SharedKey, error) {
	a, err := accountByName(ctx, q, account)
	if err != nil {
		return keys.SharedKey{}, err
	}
	p, err := passport.Import(a.Blocks, time.Now())
	if err != nil {
		return keys.SharedKey{}, fmt.Errorf("account %s: %w", account, err)
	}
	k, ok := p.SharedKey()
	if !ok {
		return k, fmt.Errorf("account %s: %w", account, passport.ErrNoSharedKey)
	}
	return k, nil
}

// setPassport fills the passport columns, deriving the topic unless the
// shared key is unchanged.
func (c *Contact) setPassport(own keys.SharedKey, p *passport.Passport) error {
	if p.ID() != c.Passport {
		return fmt.Errorf("passport %s is not %s", p.ID(), c.Passport)
	}
	k, ok := p.SharedKey()
	if !ok {
		return fmt.Errorf("passport %s: %w", p.ID(), passport.ErrNoSharedKey)
	}
	if c.Pending() || k != c.SharedKey {
		c.Topic = topic.Derive(own, k)
	}
	c.SharedKey = k
	c.Blocks = p.Export()
	return nil
}

// nullableColumns are the passport columns as stored: NULL while pending.
func (c Contact) nullableColumns() (blocks, sharedKey, topic any) {
	if c.Pending() {
		return nil, nil, nil
	}
	return c.Blocks, c.SharedKey[:], c.Topic[:]
}

const contactColumns = "account, petname, passport_id, passport_blocks, shared_key, topic, added_at, updated_at"

func scanContact(row interface{ Scan(...any) error }) (Contact, error) {
	var c Contact
	var id, sharedKey, t []byte
	var added, updated int64
	if err := row.Scan(&c.Account, &c.Name, &id, &c.Blocks, &sharedKey, &t, &added, &updated); err != nil {
		return c, err
	}
	if len(id) != len(c.Passport) || c.Blocks != nil && (len(sharedKey) != len(c.SharedKey) || len(t) != len(c.Topic)) {
		return c, fmt.Errorf("contact %q of %s: malformed row", c.Name, c.Account)
	}
	copy(c.Passport[:], id)
	copy(c.SharedKey[:], sharedKey)
	copy(c.Topic[:], t)
	c.AddedAt, c.UpdatedAt = unixTime(added), unixTime(updated)
	return c, nil
}

// Contacts lists an account's address book by petname.
func (r *Registry) Contacts(ctx context.Context, account string) ([]Contact, error) {
	account = strings.ToLower(account)
	if _, err := r.Account(ctx, account); err != nil {
		return nil, err
	}
	out, err := sqlitedb.Select(ctx, r.db, scanContact, "SELECT "+contactColumns+" FROM contacts WHERE account = ? ORDER BY petname", account)
	if err != nil {
		return nil, fmt.Errorf("contacts of %s: %w", account, err)
	}
	return out, nil
}

// Contact returns an account's contact with passport id.
func (r *Registry) Contact(ctx context.Context, account string, id passport.Hash) (Contact, error) {
	return r.contact(ctx, r.db, "account = ? AND passport_id = ?", strings.ToLower(account), id[:])
}

// ContactByTopic returns the account's contact whose topic is t: the
// sender of mail arriving on t. (Two local accounts that are each other's
// contacts share a topic, hence the account.)
func (r *Registry) ContactByTopic(ctx context.Context, account string, t topic.Topic) (Contact, error) {
	return r.contact(ctx, r.db, "account = ? AND topic = ?", strings.ToLower(account), t[:])
}

func (r *Registry) contact(ctx context.Context, q querier, where string, args ...any) (Contact, error) {
	c, err := scanContact(q.QueryRowContext(ctx, "SELECT "+contactColumns+" FROM contacts WHERE "+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNoContact
	}
	return c, err
}

// RenameContact gives an account's contact (by petname, any ASCII case)
// a new petname; the address book's names stay unique.
func (r *Registry) RenameContact(ctx context.Context, account, petname, newName string) (Contact, error) {
	account = strings.ToLower(account)
	newName, err := CheckPetname(newName)
	if err != nil {
		return Contact{}, err
	}
	var c Contact
	err = r.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if c, err = r.contact(ctx, tx, "account = ? AND petname = ?", account, strings.TrimSpace(petname)); err != nil {
			return err
		}
		var other string
		err = tx.QueryRowContext(ctx, "SELECT petname FROM contacts WHERE account = ? AND petname = ? AND passport_id <> ?",
			account, newName, c.Passport[:]).Scan(&other)
		if err == nil {
			return fmt.Errorf("%w: %q", ErrContactExists, other)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		c.Name, c.UpdatedAt = newName, unixTime(time.Now().Unix())
		_, err = tx.ExecContext(ctx, "UPDATE contacts SET petname = ?, updated_at = ? WHERE account = ? AND passport_id = ?",
			c.Name, c.UpdatedAt.Unix(), account, c.Passport[:])
		return err
	})
	if err != nil {
		return Contact{}, fmt.Errorf("rename contact %q of %s: %w", petname, account, err)
	}
	return c, nil
}

// RemoveContact removes an account's contact by petname (any ASCII case).
// Its topic is retired: the daemon deregisters it from the node. The
// account's inbox seed is dropped with it, so that a new one is drawn.
func (r *Registry) RemoveContact(ctx context.Context, account, petname string) error {
	account = strings.ToLower(account)
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		c, err := r.contact(ctx, tx, "account = ? AND petname = ?", account, strings.TrimSpace(petname))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM contacts WHERE account = ? AND passport_id = ?", account, c.Passport[:]); err != nil {
			return err
		}
		// The mail of a removed contact is not wanted, whatever key sealed
		// it: topics its rotations left in their grace period go at once
		// too.
		if _, err := tx.ExecContext(ctx, "UPDATE retired_topics SET passport_id = NULL, shared_key = NULL WHERE account = ? AND passport_id = ?",
			account, c.Passport[:]); err != nil {
			return err
		}
		// The removed contact knows the inbox seed: the next InboxSeed
		// draws a new one, which the daemon sends to the remaining
		// contacts (naming v2, PROTOCOL.md §16.3).
		if err := dropInboxSeed(ctx, tx, account); err != nil {
			return err
		}
		return retireTopic(ctx, tx, c)
	})
	if err != nil {
		return fmt.Errorf("remove contact %q of %s: %w", petname, account, err)
	}
	return nil
}

// retireTopic retires a removed contact's topic, to be deregistered at
// once. A grace row for the same topic (which no current contact could
// have) is made immediate.
func retireTopic(ctx context.Context, tx *sql.Tx, c Contact) error {
	if c.Pending() {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO retired_topics (account, topic, retired_at) VALUES (?, ?, ?)
		ON CONFLICT (account, topic) DO UPDATE SET passport_id = NULL, shared_key = NULL`, c.Account, c.Topic[:], time.Now().Unix())
	return err
}

// retireRotatedTopic retires the topic of old, a contact as it was before
// its shared key was replaced, keeping old's shared key so that mail on
// the topic is still taken for the grace period (RotationGrace).
func retireRotatedTopic(ctx context.Context, tx *sql.Tx, old Contact, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO retired_topics (account, topic, passport_id, shared_key, retired_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (account, topic) DO UPDATE SET passport_id = excluded.passport_id, shared_key = excluded.shared_key, retired_at = excluded.retired_at`,
		old.Account, old.Topic[:], old.Passport[:], old.SharedKey[:], now.Unix())
	return err
}

// UpdateContactPassport records a newer copy of a contact's passport
// (PassportBlocks from the node): the first copy of a pending contact, or
// one with blocks the stored copy lacks. The new copy must extend the
// stored one, so a stale or forked copy cannot roll the contact back to
// an old shared key. When the shared key changed, the topic is derived
// again and the old one retired after a grace period (RotationGrace),
// during which mail sealed with the old key is still taken on it. It
// reports whether anything changed.
func (r *Registry) UpdateContactPassport(ctx context.Context, account string, id passport.Hash, blocks []byte) (Contact, bool, error) {
	account = strings.ToLower(account)
	var c Contact
	changed := false
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if c, err = r.contact(ctx, tx, "account = ? AND passport_id = ?", account, id[:]); err != nil {
			return err
		}
		p, err := newerPassport(c, blocks)
		if err != nil || p == nil {
			return err
		}
		own, err := accountSharedKey(ctx, tx, account)
		if err != nil {
			return err
		}
		old := c
		if err := c.setPassport(own, p); err != nil {
			return err
		}
		now := time.Now()
		if !old.Pending() && old.Topic != c.Topic {
			if err := retireRotatedTopic(ctx, tx, old, now); err != nil {
				return err
			}
		}
		c.UpdatedAt = unixTime(now.Unix())
		changed = true
		_, err = tx.ExecContext(ctx, "UPDATE contacts SET passport_blocks = ?, shared_key = ?, topic = ?, updated_at = ? WHERE account = ? AND passport_id = ?",
			c.Blocks, c.SharedKey[:], c.Topic[:], c.UpdatedAt.Unix(), account, id[:])
		return err
	})
	if err != nil {
		return c, false, fmt.Errorf("update passport of contact %s of %s: %w", id, account, err)
	}
	return c, changed, nil
}

// newerPassport returns the passport blocks make for contact c, or nil if
// they add nothing to what c has.
func newerPassport(c Contact, blocks []byte) (*passport.Passport, error) {
	now := time.Now()
	if c.Pending() {
		return passport.Import(blocks, now)
	}
	have, err := passport.Import(c.Blocks, now)
	if err != nil {
		return nil, fmt.Errorf("stored copy: %w", err)
	}
	fresh, err := passport.DecodeBlocks(blocks)
	if err != nil {
		return nil, err
	}
	added, err := have.Merge(fresh, now)
	if err != nil || added == 0 {
		return nil, err
	}
	return have, nil
}

// RetiredTopics lists topics the node should stop keeping for the
// account, that no current contact uses: those of removed contacts, and
// those replaced by a shared-key rotation at or before graceStart (now
// minus the grace period).
func (r *Registry) RetiredTopics(ctx context.Context, account string, graceStart time.Time) ([]topic.Topic, error) {
	account = strings.ToLower(account)
	out, err := sqlitedb.Select(ctx, r.db, scanTopic, `SELECT topic FROM retired_topics WHERE account = ?
		AND (shared_key IS NULL OR retired_at <= ?
			OR passport_id NOT IN (SELECT passport_id FROM contacts WHERE account = ? AND passport_blocks IS NOT NULL))
		AND topic NOT IN (SELECT topic FROM contacts WHERE account = ? AND topic IS NOT NULL)`,
		account, graceStart.Unix(), account, account)
	if err != nil {
		return nil, fmt.Errorf("retired topics of %s: %w", account, err)
	}
	return out, nil
}

// graceColumns are contactColumns for a contact as it was before a
// rotation still in its grace period: its old shared key and topic.
const graceColumns = "c.account, c.petname, c.passport_id, c.passport_blocks, r.shared_key, r.topic, c.added_at, c.updated_at"

// graceWhere selects the rotated topics of account (?) still in their
// grace period, retired after a time (?), and not a current contact's
// topic (?: the account again): mail there must be sealed by the old key.
const graceWhere = `FROM retired_topics r JOIN contacts c ON c.account = r.account AND c.passport_id = r.passport_id
	WHERE r.account = ? AND r.shared_key IS NOT NULL AND r.retired_at > ? AND c.passport_blocks IS NOT NULL
	AND r.topic NOT IN (SELECT topic FROM contacts WHERE account = ? AND topic IS NOT NULL)`

// scanTopic reads a row of one topic column.
func scanTopic(row sqlitedb.Row) (topic.Topic, error) {
	var b []byte
	var t topic.Topic
	err := row.Scan(&b)
	copy(t[:], b)
	return t, err
}

// RotatedContacts lists the account's contacts as they were before a
// shared-key rotation made after graceStart: each with a replaced shared
// key and the topic derived from it, which are still registered and read
// so that mail the contact sealed before rotating is not lost.
func (r *Registry) RotatedContacts(ctx context.Context, account string, graceStart time.Time) ([]Contact, error) {
	account = strings.ToLower(account)
	out, err := sqlitedb.Select(ctx, r.db, scanContact, "SELECT "+graceColumns+" "+graceWhere+" ORDER BY c.petname, r.retired_at",
		account, graceStart.Unix(), account)
	if err != nil {
		return nil, fmt.Errorf("rotated contacts of %s: %w", account, err)
	}
	return out, nil
}

// RotatedContactByTopic returns the contact whose topic before a rotation
// made after graceStart was t, with the shared key it had then: the
// sender of mail still arriving on t. ErrNoContact if there is none.
func (r *Registry) RotatedContactByTopic(ctx context.Context, account string, t topic.Topic, graceStart time.Time) (Contact, error) {
	account = strings.ToLower(account)
	c, err := scanContact(r.db.QueryRowContext(ctx, "SELECT "+graceColumns+" "+graceWhere+" AND r.topic = ?",
		account, graceStart.Unix(), account, t[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNoContact
	}
	if err != nil {
		return c, fmt.Errorf("rotated contact of %s: %w", account, err)
	}
	return c, nil
}

// ForgetRetiredTopic deletes a retired topic once it is deregistered.
func (r *Registry) ForgetRetiredTopic(ctx context.Context, account string, t topic.Topic) error {
	if _, err := r.db.ExecContext(ctx, "DELETE FROM retired_topics WHERE account = ? AND topic = ?", strings.ToLower(account), t[:]); err != nil {
		return fmt.Errorf("forget retired topic of %s: %w", account, err)
	}
	return nil
}
