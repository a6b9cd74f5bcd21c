package outbound

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/mailtext"
	"github.com/asmtp/asmtp/bridge/smtpserver"
	"github.com/asmtp/asmtp/mailstore"
)

// MaxMessageSize is the largest message the bridge sends or receives,
// advertised by the submission server as SIZE: what the ASMTP mail payload
// carries (asmtp/mail.MaxMessageSize, 25 MiB).
const MaxMessageSize = mail.MaxMessageSize

// Queue is the smtpserver.Queue of the bridge: it checks recipients
// against the address book and puts accepted mail in the outbox for the
// Worker.
type Queue struct {
	domain string
	dir    Directory
	outbox Outbox
	worker *Worker
}

var _ smtpserver.Queue = (*Queue)(nil)

// NewQueue queues mail for worker, which it wakes; domain is the
// pseudo-address domain.
func NewQueue(domain string, dir Directory, outbox Outbox, worker *Worker) *Queue {
	return &Queue{domain: domain, dir: dir, outbox: outbox, worker: worker}
}

// Recipient accepts "<passport id>@<domain>" and "<petname>@<domain>" for a
// contact of the account's address book; anything else is refused with a
// sentence for the user.
func (q *Queue) Recipient(ctx context.Context, account, address string) error {
	_, err := q.resolveRecipient(ctx, account, address)
	return err
}

// Submit writes the copy every recipient gets (Bcc removed, Date and
// Message-ID added when missing) to the outbox with one entry per
// recipient, each with its own message id kept for every retry. Only the
// header is read into memory, to be edited; the body goes from msg to the
// outbox as it is read. It returns once the outbox transaction is durably
// committed, and wakes the delivery worker.
func (q *Queue) Submit(ctx context.Context, account, from string, recipients []string, msg io.Reader, size int64) error {
	if size > MaxMessageSize {
		return errTooBig(size)
	}
	br := bufio.NewReader(msg)
	head, err := mailtext.ReadHead(br)
	if errors.Is(err, mailtext.ErrHeadTooLarge) {
		return &smtpserver.Rejection{Status: [3]int{5, 6, 0},
			Reason: fmt.Sprintf("The message header is over %d KiB; send less in the header (long lists of recipients belong in the envelope)", mailtext.MaxHeadBytes>>10)}
	}
	if err != nil {
		return fmt.Errorf("read the message header: %w", err)
	}
	head = mailtext.OutgoingCopy(head, size-int64(len(head)), time.Now(), q.domain)
	sub := mailstore.Submission{Account: account, From: from, Message: io.MultiReader(bytes.NewReader(head), br)}
	seen := make(map[passport.Hash]bool)
	for _, r := range recipients {
		id, err := q.resolveRecipient(ctx, account, r)
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
	if _, err := q.outbox.Enqueue(ctx, sub, time.Now()); err != nil {
		if errors.Is(err, mailstore.ErrTooBig) {
			return errTooBig(size)
		}
		return err
	}
	q.worker.Wake()
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
func (q *Queue) resolveRecipient(ctx context.Context, account, address string) (passport.Hash, error) {
	domain := q.domain
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
	if a, err := accounts.ParseAddress(address, domain); err == nil {
		return a.Passport, nil
	}
	contacts, err := q.dir.Contacts(ctx, account)
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

// errUnknownPassport: the recipient's passport is neither in the address
// book nor found on the network.
var errUnknownPassport = errors.New("passport not found on the ASMTP network")
