package bridge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/smtpserver"
	"github.com/asmtp/asmtp/mailstore"
)

// MaxMessageSize is the largest message the bridge sends or receives,
// advertised by the submission server as SIZE: what the ASMTP mail payload
// carries (asmtp/mail.MaxMessageSize, 25 MiB).
const MaxMessageSize = mail.MaxMessageSize

// submissionQueue is the smtpserver.Queue of a Bridge: it checks recipients
// against the address book and puts accepted mail in the outbox.
type submissionQueue struct{ b *Bridge }

var _ smtpserver.Queue = submissionQueue{}

// Recipient accepts "<passport id>@<domain>" and "<petname>@<domain>" for a
// contact of the account's address book; anything else is refused with a
// sentence for the user.
func (q submissionQueue) Recipient(ctx context.Context, account, address string) error {
	_, err := q.b.resolveRecipient(ctx, account, address)
	return err
}

// Submit writes the copy every recipient gets (Bcc removed, Date and
// Message-ID added when missing) to the outbox with one entry per
// recipient, each with its own message id kept for every retry. Only the
// header is read into memory, to be edited; the body goes from msg to the
// outbox as it is read. It returns once the outbox transaction is durably
// committed, and wakes the delivery worker.
func (q submissionQueue) Submit(ctx context.Context, account, from string, recipients []string, msg io.Reader, size int64) error {
	if size > MaxMessageSize {
		return errTooBig(size)
	}
	br := bufio.NewReader(msg)
	head, err := readHead(br)
	if errors.Is(err, errHeadTooLarge) {
		return &smtpserver.Rejection{Status: [3]int{5, 6, 0},
			Reason: fmt.Sprintf("The message header is over %d KiB; send less in the header (long lists of recipients belong in the envelope)", maxHeadBytes>>10)}
	}
	if err != nil {
		return fmt.Errorf("read the message header: %w", err)
	}
	head = q.b.outgoingCopy(head, size-int64(len(head)), time.Now())
	sub := mailstore.Submission{Account: account, From: from, Message: io.MultiReader(bytes.NewReader(head), br)}
	seen := make(map[passport.Hash]bool)
	for _, r := range recipients {
		id, err := q.b.resolveRecipient(ctx, account, r)
		if err != nil {
			return err
		}
		if seen[id] { // two spellings of one address
			continue
		}
		seen[id] = true
		mid, err := mail.NewMessageID(rand.Reader)
		if err != nil {
			return err
		}
		sub.Recipients = append(sub.Recipients, mailstore.OutboxRecipient{Passport: id, Address: strings.ToLower(r), MessageID: mid})
	}
	if _, err := q.b.mail.Enqueue(ctx, sub, time.Now()); err != nil {
		if errors.Is(err, mailstore.ErrTooBig) {
			return errTooBig(size)
		}
		return err
	}
	q.b.out.wake()
	return nil
}

// errTooBig refuses a message of size bytes for good.
func errTooBig(size int64) error {
	return &smtpserver.Rejection{Status: [3]int{5, 3, 4},
		Reason: fmt.Sprintf("The message is %d bytes; ASMTP carries at most %d", size, MaxMessageSize)}
}

// resolveRecipient finds the passport an RCPT TO address names for
// account. Refusals are *smtpserver.Rejection with a sentence that says
// what to write instead.
func (b *Bridge) resolveRecipient(ctx context.Context, account, address string) (passport.Hash, error) {
	domain := b.cfg.Domain
	at := strings.LastIndexByte(address, '@')
	if at <= 0 || at == len(address)-1 {
		return passport.Hash{}, &smtpserver.Rejection{Status: [3]int{5, 1, 3},
			Reason: fmt.Sprintf("%q is not a mail address: ASMTP addresses look like <passport id>@%s", address, domain)}
	}
	local, dom := address[:at], address[at+1:]
	if !strings.EqualFold(dom, domain) {
		return passport.Hash{}, &smtpserver.Rejection{Status: [3]int{5, 1, 2},
			Reason: fmt.Sprintf("%s is not an ASMTP address: this bridge delivers only to addresses at %s, no mail leaves for %s", address, domain, dom)}
	}
	if a, err := ParseAddress(address, domain); err == nil {
		return a.Passport, nil
	}
	contacts, err := b.reg.Contacts(ctx, account)
	if err != nil {
		return passport.Hash{}, err
	}
	for _, c := range contacts {
		if strings.EqualFold(c.Name, local) {
			return c.Passport, nil
		}
	}
	return passport.Hash{}, &smtpserver.Rejection{Status: [3]int{5, 1, 1},
		Reason: fmt.Sprintf("No contact named %q in your address book: write to the 32-hex passport id at %s, or add the contact first (asmtpd-cli contact add)", local, domain)}
}

// outgoingCopy is the header every recipient gets, from head (see
// splitHead) of a message whose body is bodySize bytes: without Bcc and
// Resent-Bcc fields (each recipient has an envelope of its own, so Bcc
// recipients are not revealed to anyone), and with a Date and a Message-ID
// when the client gave none (RFC 6409 §8.2-8.3), as long as the message
// still fits. Everything else is kept byte for byte.
func (b *Bridge) outgoingCopy(head []byte, bodySize int64, now time.Time) []byte {
	fields, rest := splitMessage(head)
	fields = withoutFields(fields, "Bcc", "Resent-Bcc")
	var added []headerField
	if !hasField(fields, "Date") {
		added = append(added, newField("Date", now.UTC().Format(time.RFC1123Z)))
	}
	if !hasField(fields, "Message-ID") {
		var id [16]byte
		rand.Read(id[:])
		added = append(added, newField("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+b.cfg.Domain+">"))
	}
	if out := joinMessage(append(added, fields...), rest); int64(len(out))+bodySize <= MaxMessageSize {
		return out
	}
	return joinMessage(fields, rest)
}

// errUnknownPassport: the recipient's passport is neither in the address
// book nor found on the network.
var errUnknownPassport = errors.New("passport not found on the ASMTP network")
