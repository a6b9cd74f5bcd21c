package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/asmtp/asmtp/internal/sqlitedb"
)

// defaultMailboxes are created with every account, in one transaction.
var defaultMailboxes = []struct{ name, specialUse string }{
	{Inbox, ""},
	{"Sent", SpecialSent},
	{"Drafts", SpecialDrafts},
	{"Trash", SpecialTrash},
	{"Junk", SpecialJunk},
	{"Archive", SpecialArchive},
}

var specialUses = map[string]bool{
	SpecialSent: true, SpecialDrafts: true, SpecialTrash: true, SpecialJunk: true, SpecialArchive: true,
	`\All`: true, `\Flagged`: true,
}

// CreateAccount creates an account with INBOX, Sent, Drafts, Trash, Junk and
// Archive.
func (db *DB) CreateAccount(ctx context.Context, name string) error {
	if name == "" || len(name) > 255 || !utf8.ValidString(name) {
		return fmt.Errorf("create account %q: invalid name", name)
	}
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		res, err := tx.ExecContext(ctx, "INSERT INTO accounts (name) VALUES (?) ON CONFLICT (name) DO NOTHING", name)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, ErrAccountExists
		}
		id, err := res.LastInsertId()
		if err != nil {
			return nil, err
		}
		for _, mb := range defaultMailboxes {
			if _, err := insertMailbox(ctx, tx, id, mb.name, mb.specialUse, true); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		return fmt.Errorf("create account %q: %w", name, err)
	}
	return nil
}

// AccountExists reports whether the account was created.
func (db *DB) AccountExists(ctx context.Context, name string) (bool, error) {
	_, err := accountID(ctx, db.r, name)
	if errors.Is(err, ErrNoAccount) {
		return false, nil
	}
	return err == nil, err
}

func accountID(ctx context.Context, q querier, name string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, "SELECT id FROM accounts WHERE name = ?", name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNoAccount
	}
	if err != nil {
		return 0, fmt.Errorf("look up account: %w", err)
	}
	return id, nil
}

// insertMailbox creates one mailbox with a fresh UIDVALIDITY: the larger of
// the current time and the account's previous UIDVALIDITY plus one, so a
// mailbox deleted and created again never reuses one.
func insertMailbox(ctx context.Context, tx *sql.Tx, accountID int64, name, specialUse string, subscribed bool) (int64, error) {
	var uidValidity int64
	err := tx.QueryRowContext(ctx, `UPDATE accounts SET last_uid_validity = max(last_uid_validity + 1, ?)
		WHERE id = ? RETURNING last_uid_validity`, time.Now().Unix(), accountID).Scan(&uidValidity)
	if err != nil {
		return 0, fmt.Errorf("allocate UIDVALIDITY: %w", err)
	}
	if uidValidity > 1<<32-1 {
		return 0, fmt.Errorf("UIDVALIDITY space exhausted")
	}
	var exists bool
	err = tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM mailboxes WHERE account_id = ? AND name = ?)", accountID, name).Scan(&exists)
	if err != nil {
		return 0, fmt.Errorf("insert mailbox %q: %w", name, err)
	}
	if exists {
		return 0, ErrMailboxExists
	}
	var id int64
	if err := tx.QueryRowContext(ctx, "UPDATE mailbox_ids SET last = last + 1 RETURNING last").Scan(&id); err != nil {
		return 0, fmt.Errorf("allocate mailbox id: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO mailboxes (id, account_id, name, special_use, uid_validity)
		VALUES (?, ?, ?, ?, ?)`, id, accountID, name, specialUse, uidValidity)
	if err != nil {
		return 0, fmt.Errorf("insert mailbox %q: %w", name, err)
	}
	if subscribed {
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)", accountID, name); err != nil {
			return 0, fmt.Errorf("subscribe %q: %w", name, err)
		}
	}
	return id, nil
}

// NormalizeName returns the canonical form of a mailbox name (INBOX in any
// case becomes INBOX, also as the first level of a hierarchy), or ErrBadName.
func NormalizeName(name string) (string, error) {
	first, rest, hasRest := strings.Cut(name, string(Delim))
	if strings.EqualFold(first, Inbox) {
		name = Inbox
		if hasRest {
			name += string(Delim) + rest
		}
	}
	if name == "" || len(name) > MaxMailboxNameBytes || !utf8.ValidString(name) ||
		name[0] == Delim || name[len(name)-1] == Delim || strings.Contains(name, "//") ||
		strings.Count(name, string(Delim)) >= MaxMailboxDepth {
		return "", ErrBadName
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '*' || r == '%' {
			return "", ErrBadName
		}
	}
	return name, nil
}

const mailboxColumns = "m.id, a.name, m.name, m.special_use, m.uid_validity, m.uid_next, " +
	"EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = m.account_id AND s.name = m.name), m.highest_modseq"

func scanMailbox(row interface{ Scan(...any) error }) (Mailbox, error) {
	var mb Mailbox
	err := row.Scan(&mb.ID.row, &mb.Account, &mb.Name, &mb.SpecialUse, &mb.UIDValidity, &mb.UIDNext, &mb.Subscribed, &mb.HighestModSeq)
	mb.ID.account = mb.Account
	return mb, err
}

func mailboxByName(ctx context.Context, q querier, account, name string) (Mailbox, error) {
	name, err := NormalizeName(name)
	if err != nil {
		return Mailbox{}, ErrNoMailbox
	}
	mb, err := scanMailbox(q.QueryRowContext(ctx, "SELECT "+mailboxColumns+
		" FROM mailboxes m JOIN accounts a ON a.id = m.account_id WHERE a.name = ? AND m.name = ?", account, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, ErrNoMailbox
	}
	if err != nil {
		return Mailbox{}, fmt.Errorf("look up mailbox: %w", err)
	}
	return mb, nil
}

// ownedMailbox is the one check every call taking a MailboxID makes: the
// mailbox exists and belongs to the ID's account; otherwise ErrNoMailbox.
// Reads that run outside the write transaction may race a delete, but ids
// are never reused, so a mailbox deleted meanwhile only reads as empty.
func ownedMailbox(ctx context.Context, q querier, id MailboxID) (Mailbox, error) {
	if id.account == "" {
		return Mailbox{}, ErrNoMailbox
	}
	mb, err := scanMailbox(q.QueryRowContext(ctx, "SELECT "+mailboxColumns+
		" FROM mailboxes m JOIN accounts a ON a.id = m.account_id WHERE m.id = ? AND a.name = ?", id.row, id.account))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, ErrNoMailbox
	}
	if err != nil {
		return Mailbox{}, fmt.Errorf("look up mailbox %s: %w", id, err)
	}
	return mb, nil
}

// Mailboxes lists an account's mailboxes ordered by name.
func (db *DB) Mailboxes(ctx context.Context, account string) ([]Mailbox, error) {
	if _, err := accountID(ctx, db.r, account); err != nil {
		return nil, fmt.Errorf("list mailboxes of %q: %w", account, err)
	}
	l, err := sqlitedb.Select(ctx, db.r, scanMailbox, "SELECT "+mailboxColumns+
		" FROM mailboxes m JOIN accounts a ON a.id = m.account_id WHERE a.name = ? ORDER BY m.name", account)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes of %q: %w", account, err)
	}
	return l, nil
}

// Mailbox looks up one mailbox by name.
func (db *DB) Mailbox(ctx context.Context, account, name string) (Mailbox, error) {
	return mailboxByName(ctx, db.r, account, name)
}

// CreateMailbox creates a mailbox and any missing parents, unsubscribed (as
// IMAP CREATE does; the account's own mailboxes start subscribed).
// specialUse is "" or a special-use attribute such as SpecialSent.
func (db *DB) CreateMailbox(ctx context.Context, account, name, specialUse string) (Mailbox, error) {
	name, err := NormalizeName(name)
	if err != nil {
		return Mailbox{}, fmt.Errorf("create mailbox: %w", err)
	}
	if specialUse != "" && !specialUses[specialUse] {
		return Mailbox{}, fmt.Errorf("create mailbox %q: %w %q", name, ErrBadSpecialUse, specialUse)
	}
	id := MailboxID{account: account}
	err = db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		acct, err := accountID(ctx, tx, account)
		if err != nil {
			return nil, err
		}
		if err := checkMailboxCount(ctx, tx, acct); err != nil {
			return nil, err
		}
		if err := createParents(ctx, tx, acct, name); err != nil {
			return nil, err
		}
		id.row, err = insertMailbox(ctx, tx, acct, name, specialUse, false)
		return nil, err
	})
	if err != nil {
		return Mailbox{}, fmt.Errorf("create mailbox %q: %w", name, err)
	}
	return ownedMailbox(ctx, db.r, id)
}

func checkMailboxCount(ctx context.Context, tx *sql.Tx, accountID int64) error {
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM mailboxes WHERE account_id = ?", accountID).Scan(&n); err != nil {
		return err
	}
	if n >= MaxMailboxes {
		return ErrTooManyBoxes
	}
	return nil
}

// createParents creates the missing levels above name ("a" and "a/b" for
// "a/b/c"), so the hierarchy never has holes.
func createParents(ctx context.Context, tx *sql.Tx, accountID int64, name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] != Delim {
			continue
		}
		_, err := insertMailbox(ctx, tx, accountID, name[:i], "", false)
		if err != nil && !errors.Is(err, ErrMailboxExists) {
			return err
		}
	}
	return nil
}

// DeleteMailbox deletes a mailbox and its messages. INBOX and mailboxes with
// children cannot be deleted.
func (db *DB) DeleteMailbox(ctx context.Context, account, name string) error {
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		mb, err := mailboxByName(ctx, tx, account, name)
		if err != nil {
			return nil, err
		}
		if mb.Name == Inbox {
			return nil, ErrInboxDelete
		}
		var children int
		err = tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE account_id = (SELECT account_id FROM mailboxes WHERE id = ?)
			AND substr(name, 1, length(?) + 1) = ? || '/'`, mb.ID.row, mb.Name, mb.Name).Scan(&children)
		if err != nil {
			return nil, err
		}
		if children > 0 {
			return nil, ErrHasChildren
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM mailboxes WHERE id = ?", mb.ID.row); err != nil {
			return nil, err
		}
		return []change{{mailboxID: mb.ID.row, Change: Change{Kind: ChangeMailboxDeleted}}}, nil
	})
	if err != nil {
		return fmt.Errorf("delete mailbox %q: %w", name, err)
	}
	return nil
}

// RenameMailbox renames a mailbox and its children, keeping their IDs,
// UIDVALIDITY and UIDs. Renaming INBOX moves its messages to a new mailbox
// and leaves INBOX empty (RFC 3501, 6.3.5).
func (db *DB) RenameMailbox(ctx context.Context, account, oldName, newName string) error {
	newName, err := NormalizeName(newName)
	if err != nil {
		return fmt.Errorf("rename mailbox %q: new name: %w", oldName, err)
	}
	err = db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		src, err := mailboxByName(ctx, tx, account, oldName)
		if err != nil {
			return nil, err
		}
		if _, err := mailboxByName(ctx, tx, account, newName); err == nil {
			return nil, ErrMailboxExists
		} else if !errors.Is(err, ErrNoMailbox) {
			return nil, err
		}
		if strings.HasPrefix(newName, src.Name+string(Delim)) {
			return nil, ErrBadName
		}
		acct, err := accountID(ctx, tx, account)
		if err != nil {
			return nil, err
		}
		if err := createParents(ctx, tx, acct, newName); err != nil {
			return nil, err
		}
		if src.Name == Inbox {
			return renameInbox(ctx, tx, acct, src, newName)
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, name FROM mailboxes WHERE account_id = ?
			AND substr(name, 1, length(?) + 1) = ? || '/'`, acct, src.Name, src.Name)
		if err != nil {
			return nil, err
		}
		renames := map[int64]string{src.ID.row: newName}
		for rows.Next() {
			var id int64
			var name string
			if err := rows.Scan(&id, &name); err != nil {
				rows.Close()
				return nil, err
			}
			renames[id] = newName + name[len(src.Name):]
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		for id, name := range renames {
			if _, err := NormalizeName(name); err != nil {
				return nil, err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE mailboxes SET name = ? WHERE id = ?", name, id); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		return fmt.Errorf("rename mailbox %q to %q: %w", oldName, newName, err)
	}
	return nil
}

func renameInbox(ctx context.Context, tx *sql.Tx, accountID int64, inbox Mailbox, newName string) ([]change, error) {
	destID, err := insertMailbox(ctx, tx, accountID, newName, "", false)
	if err != nil {
		return nil, err
	}
	uids, err := allUIDs(ctx, tx, inbox.ID.row)
	if err != nil {
		return nil, err
	}
	_, moved, err := moveMessages(ctx, tx, inbox.ID.row, uids, destID)
	if err != nil {
		return nil, err
	}
	if len(uids) == 0 {
		return nil, nil
	}
	// The new mailbox's change only stamps the moved messages with its
	// mod-sequences (stampModSeqs); no one can watch a mailbox this new.
	return []change{
		{mailboxID: inbox.ID.row, Change: Change{Kind: ChangeExpunged, UIDs: uids}},
		{mailboxID: destID, Change: Change{Kind: ChangeAppended, UIDs: moved}},
	}, nil
}

// SetSubscribed subscribes to an existing mailbox, or unsubscribes from a
// name whether or not a mailbox has it (it may have been deleted) and
// whether or not it was subscribed, as Dovecot does. Subscriptions are
// names: they stay when their mailbox is deleted or renamed.
func (db *DB) SetSubscribed(ctx context.Context, account, name string, subscribed bool) error {
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		acct, err := accountID(ctx, tx, account)
		if err != nil {
			return nil, err
		}
		if !subscribed {
			return nil, unsubscribe(ctx, tx, acct, name)
		}
		mb, err := mailboxByName(ctx, tx, account, name)
		if err != nil {
			return nil, err
		}
		_, err = tx.ExecContext(ctx, "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)", acct, mb.Name)
		return nil, err
	})
	if err != nil {
		return fmt.Errorf("subscribe %q: %w", name, err)
	}
	return nil
}

func unsubscribe(ctx context.Context, tx *sql.Tx, accountID int64, name string) error {
	name, err := NormalizeName(name)
	if err != nil {
		return ErrNoMailbox
	}
	_, err = tx.ExecContext(ctx, "DELETE FROM subscriptions WHERE account_id = ? AND name = ?", accountID, name)
	return err
}

// Subscriptions lists an account's subscribed names, ordered, including
// those whose mailbox no longer exists.
func (db *DB) Subscriptions(ctx context.Context, account string) ([]string, error) {
	names, err := sqlitedb.Select(ctx, db.r, func(row sqlitedb.Row) (string, error) {
		var name string
		return name, row.Scan(&name)
	}, `SELECT s.name FROM subscriptions s JOIN accounts a ON a.id = s.account_id
		WHERE a.name = ? ORDER BY s.name`, account)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions of %q: %w", account, err)
	}
	return names, nil
}

// Status returns a mailbox with its message counters.
func (db *DB) Status(ctx context.Context, account, name string) (MailboxStatus, error) {
	mb, err := mailboxByName(ctx, db.r, account, name)
	if err != nil {
		return MailboxStatus{}, fmt.Errorf("status %q: %w", name, err)
	}
	st := MailboxStatus{Mailbox: mb}
	err = db.r.QueryRowContext(ctx, `SELECT count(*),
			coalesce(sum(instr(m.flags, '\Seen') = 0), 0),
			coalesce(sum(instr(m.flags, '\Deleted') > 0), 0),
			coalesce(sum(b.size), 0)
		FROM messages m JOIN bodies b ON b.id = m.body_id WHERE m.mailbox_id = ?`, mb.ID.row).
		Scan(&st.Messages, &st.Unseen, &st.Deleted, &st.Size)
	if err != nil {
		return MailboxStatus{}, fmt.Errorf("status %q: %w", name, err)
	}
	return st, nil
}
