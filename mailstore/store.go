// Package mailstore keeps the bridge's local mail: per-account mailboxes with
// stable UIDs, flags, INTERNALDATE, message bodies and the envelope and body
// structure parsed once at insert, all in one SQLite file.
//
// Both the IMAP server (bridge/imapserver) and the inbound delivery pipeline
// use the [Store] interface; [DB] implements it, over internal/sqlitedb's
// connections, and keeps inbound chunks until their message is complete
// with mailstore/reassembly. Every change is one SQLite
// transaction committed with synchronous=FULL before the call returns, so an
// acknowledged write survives kill -9 and power loss. After each commit the
// store tells the watchers of the changed mailbox (see [DB.Watch]), in commit
// order, so IDLE sessions see new mail without polling.
//
// Bodies are stored as SQLite blobs rather than files: the body, its metadata
// and its UID then commit in one transaction, so a crash can leave neither an
// orphan file nor a row pointing at a missing file, and there is no second
// fsync discipline (file, directory, database) to get right. A body is
// stored in segments of at most 1 MiB (segment.go), written as it is read
// and read back a segment at a time, so that SQLite, which copies every
// value it binds or returns, never holds more than a segment of a message.
//
// Accounts are isolated by construction: calls on a selected mailbox take a
// [MailboxID], which carries its account, can only come from a lookup by
// account and name, and is checked in one place against the mailbox's
// owner; mailbox ids are never reused, so an id kept after its mailbox was
// deleted names nothing.
//
// Memory is bounded by a budget shared by every call that holds a whole
// message or its text (append, delivery, text search, reading a message
// for FETCH; see [DB.SetMemoryBudget]): a call waits for its share and
// fails with [ErrBusy] if it waits too long. [DB.AppendFrom] spools a
// message to a file beside the database while it arrives, so a slow upload
// holds no share; text search and [DB.WithRaw] read on connections that do
// not map the database file.
//
// [DB.AppendSpooled] stores several messages spooled the same way in one
// transaction, all or none (IMAP MULTIAPPEND).
//
// SORT and THREAD (RFC 5256) read keys computed once at insert (base
// subject, first addresses, sent date, Message-ID and References; see
// sortkeys.go) from their own table, so ordering a large mailbox parses no
// message. Subscriptions are names in their own table, kept when their
// mailbox is deleted.
//
// The package opens no sockets and knows nothing about ASMTP. It uses
// go-imap's data types (envelope, body structure, search criteria) because
// its job is to hold mail in the shape IMAP serves it.
package mailstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"
)

// UID is a message's unique identifier within a mailbox. UIDs only grow and
// are never reused within one UIDVALIDITY.
type UID = imap.UID

// Special-use attributes of the mailboxes every account gets (RFC 6154).
const (
	SpecialSent    = `\Sent`
	SpecialDrafts  = `\Drafts`
	SpecialTrash   = `\Trash`
	SpecialJunk    = `\Junk`
	SpecialArchive = `\Archive`
)

// Inbox is the name of the one mailbox whose name is case-insensitive.
const Inbox = "INBOX"

// Delim separates levels of the mailbox hierarchy.
const Delim = '/'

// Limits.
const (
	MaxMessageSize      = 64 << 20 // hard ceiling; the IMAP server advertises a lower APPENDLIMIT
	MaxMailboxNameBytes = 255
	MaxMailboxDepth     = 32
	MaxMailboxes        = 10000 // per account
	MaxFlagsPerMessage  = 64
	MaxKeywordBytes     = 128
)

var (
	ErrNoAccount      = errors.New("mailstore: no such account")
	ErrAccountExists  = errors.New("mailstore: account already exists")
	ErrNoMailbox      = errors.New("mailstore: no such mailbox")
	ErrMailboxExists  = errors.New("mailstore: mailbox already exists")
	ErrHasChildren    = errors.New("mailstore: mailbox has children, delete them first")
	ErrInboxDelete    = errors.New("mailstore: INBOX cannot be deleted")
	ErrBadName        = errors.New("mailstore: invalid mailbox name")
	ErrBadFlag        = errors.New("mailstore: invalid flag")
	ErrBadSpecialUse  = errors.New("mailstore: unsupported special use")
	ErrTooBig         = errors.New("mailstore: message too big")
	ErrTooManyFlags   = errors.New("mailstore: too many flags")
	ErrTooManyBoxes   = errors.New("mailstore: too many mailboxes")
	ErrNotUIDCriteria = errors.New("mailstore: search by sequence number must be converted to UIDs first")
)

// MailboxID names one mailbox of one account, stable across renames. Only
// the store makes them, from a lookup by account and name, and every call
// that takes one checks, in one place (ownedMailbox), that the mailbox still
// exists and belongs to that account. Mailbox row ids are never reused (see
// the mailbox_ids counter in db.go), so an ID kept by a session after its
// mailbox was deleted names nothing rather than a newer mailbox, possibly of
// another account.
type MailboxID struct {
	account string
	row     int64
}

// Account is the account the mailbox belongs to.
func (id MailboxID) Account() string { return id.account }

func (id MailboxID) String() string { return fmt.Sprintf("%q/%d", id.account, id.row) }

// Store is the narrow interface the IMAP server and the delivery pipeline
// share. Mailboxes are named by account and name for account-level calls and
// by MailboxID for calls on a selected mailbox.
type Store interface {
	CreateAccount(ctx context.Context, name string) error
	AccountExists(ctx context.Context, name string) (bool, error)

	Mailboxes(ctx context.Context, account string) ([]Mailbox, error)
	Mailbox(ctx context.Context, account, name string) (Mailbox, error)
	CreateMailbox(ctx context.Context, account, name, specialUse string) (Mailbox, error)
	DeleteMailbox(ctx context.Context, account, name string) error
	RenameMailbox(ctx context.Context, account, oldName, newName string) error
	SetSubscribed(ctx context.Context, account, name string, subscribed bool) error
	Subscriptions(ctx context.Context, account string) ([]string, error)
	Status(ctx context.Context, account, name string) (MailboxStatus, error)

	// Append stores a message and returns where it went.
	Append(ctx context.Context, account, mailbox string, raw []byte, flags []string, internalDate time.Time) (Appended, error)
	// AppendFrom is Append for a message of size bytes read from r; the
	// store spools it to disk as it arrives.
	AppendFrom(ctx context.Context, account, mailbox string, r io.Reader, size int64, flags []string, internalDate time.Time) (Appended, error)
	// NewSpool and AppendSpooled store several messages, written to disk
	// first, in one transaction: all or none.
	NewSpool() (*Spool, error)
	AppendSpooled(ctx context.Context, account, mailbox string, msgs []*Spool) ([]Appended, error)
	// Deliver is Append for callers that need only the UID.
	Deliver(ctx context.Context, account, mailbox string, raw []byte, flags []string, internalDate time.Time) (UID, error)

	Watch(ctx context.Context, mailbox MailboxID, fn func(Change)) (Snapshot, func(), error)
	Fetch(ctx context.Context, mailbox MailboxID, uids []UID, fn func(MessageMeta) error) error
	// FetchItems is Fetch reading only the cached columns in items.
	FetchItems(ctx context.Context, mailbox MailboxID, uids []UID, items MetaItems, fn func(MessageMeta) error) error
	Raw(ctx context.Context, mailbox MailboxID, uid UID) ([]byte, error)
	// WithRaw is Raw for large messages: fn gets the message under the
	// store's memory budget, which it holds until fn returns.
	WithRaw(ctx context.Context, mailbox MailboxID, uid UID, fn func(raw []byte) error) error
	Search(ctx context.Context, mailbox MailboxID, criteria *imap.SearchCriteria) ([]UID, error)
	// Sort and Thread are SORT and THREAD (RFC 5256) on the messages
	// matching criteria, which take UIDs as in Search.
	Sort(ctx context.Context, mailbox MailboxID, criteria *imap.SearchCriteria, keys []imap.SortCriterion) ([]UID, error)
	Thread(ctx context.Context, mailbox MailboxID, criteria *imap.SearchCriteria, algorithm imap.ThreadAlgorithm) ([]Thread, error)
	StoreFlags(ctx context.Context, mailbox MailboxID, uids []UID, op imap.StoreFlagsOp, flags []string) error
	// StoreFlagsUnchangedSince is StoreFlags leaving alone, and returning,
	// the messages changed after mod-sequence unchangedSince (if not 0).
	StoreFlagsUnchangedSince(ctx context.Context, mailbox MailboxID, uids []UID, op imap.StoreFlagsOp, flags []string, unchangedSince uint64) ([]UID, error)
	// Copy and Move take dest from the account of the source mailbox.
	Copy(ctx context.Context, mailbox MailboxID, uids []UID, dest string) (Copied, error)
	Move(ctx context.Context, mailbox MailboxID, uids []UID, dest string) (Copied, error)
	Expunge(ctx context.Context, mailbox MailboxID, uids []UID) ([]UID, error)
	// Vanished returns the UIDs expunged after mod-sequence since
	// (ascending) and whether that answer is complete; see modseq.go.
	Vanished(ctx context.Context, mailbox MailboxID, since uint64) ([]UID, bool, error)
}

var _ Store = (*DB)(nil)

// Mailbox describes one mailbox.
type Mailbox struct {
	ID          MailboxID
	Account     string
	Name        string
	SpecialUse  string // one of the Special* constants, or ""
	UIDValidity uint32
	UIDNext     UID
	Subscribed  bool
	// HighestModSeq is the mod-sequence of the mailbox's latest change
	// (RFC 7162 HIGHESTMODSEQ); see modseq.go.
	HighestModSeq uint64
}

// MailboxStatus is a Mailbox with its counters.
type MailboxStatus struct {
	Mailbox
	Messages uint32
	Unseen   uint32
	Deleted  uint32
	Size     int64
}

// Appended tells where Append put a message.
type Appended struct {
	MailboxID   MailboxID
	UIDValidity uint32
	UID         UID
}

// Copied tells where Copy or Move put messages: SourceUIDs[i] became
// DestUIDs[i] in the destination mailbox.
type Copied struct {
	UIDValidity uint32
	SourceUIDs  []UID
	DestUIDs    []UID
}

// MessageMeta is the cached metadata of one message. The envelope and body
// structure are decoded only when asked for (Envelope, BodyStructure).
type MessageMeta struct {
	UID          UID
	Flags        []string
	InternalDate time.Time
	Size         int64

	envelope, structure []byte
	decodedEnvelope     *imap.Envelope     // set by Detach
	decodedStructure    imap.BodyStructure // set by Detach
}

// Snapshot is the state of a mailbox when a watch started: UIDs ascending,
// Flags[i] belonging to UIDs[i].
type Snapshot struct {
	Mailbox Mailbox
	UIDs    []UID
	Flags   [][]string
	ModSeqs []uint64 // the mod-sequence of each message's last change
}

// ChangeKind says what a Change did.
type ChangeKind int

const (
	ChangeAppended       ChangeKind = iota + 1 // messages added (UIDs, Flags)
	ChangeFlags                                // flags replaced (UIDs, Flags)
	ChangeExpunged                             // messages removed (UIDs)
	ChangeMailboxDeleted                       // the mailbox is gone; no more changes follow
)

// Change is one committed change to a watched mailbox.
type Change struct {
	Kind  ChangeKind
	UIDs  []UID      // ascending
	Flags [][]string // for ChangeAppended and ChangeFlags, parallel to UIDs
	// ModSeq is the mod-sequence the change gave its messages (and, for
	// ChangeExpunged, their tombstones); the mailbox's new HIGHESTMODSEQ.
	ModSeq uint64
	// Origin is the value given to WithOrigin in the context of the call
	// that made the change, so a session can skip echoing its own changes.
	Origin any
}

type originKey struct{}

// WithOrigin marks the changes made with ctx as coming from origin.
func WithOrigin(ctx context.Context, origin any) context.Context {
	return context.WithValue(ctx, originKey{}, origin)
}

func originOf(ctx context.Context) any {
	return ctx.Value(originKey{})
}
