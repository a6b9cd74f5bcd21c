package imapserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/asmtp/asmtp/mailstore"
)

var _ imapserver.SessionMultiAppend = (*session)(nil)

// Bounds of one APPEND command beyond APPENDLIMIT per message: its
// messages are spooled to disk until the command ends, so their number
// and total size are capped.
const (
	maxAppendMessages    = 1000
	maxAppendTotalFactor = 10 // times AppendLimit
)

var errBadURL = &imap.Error{Type: imap.StatusResponseTypeNo, Code: "BADURL",
	Text: "CATENATE URL names no message of this account"}

// BeginAppend starts an APPEND of one or more messages (MULTIAPPEND) to
// mailbox; each is spooled to disk as it arrives, like a plain APPEND, and
// all are stored in one transaction at the end, or none.
func (ss *session) BeginAppend(mailbox string) (imapserver.AppendStager, error) {
	if _, err := ss.store().Mailbox(ss.ctx, ss.account, mailbox); err != nil {
		return nil, appendError(err)
	}
	return &appendStager{ss: ss, mailbox: mailbox}, nil
}

func appendError(err error) error {
	if errors.Is(err, mailstore.ErrNoMailbox) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	return storeError(err)
}

// appendStager is one APPEND command's messages on their way to the store.
type appendStager struct {
	ss      *session
	mailbox string
	spools  []*mailstore.Spool
	total   int64
}

func (a *appendStager) newSpool(options *imap.AppendOptions) (*mailstore.Spool, error) {
	if len(a.spools) >= maxAppendMessages {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: fmt.Sprintf("At most %d messages per APPEND", maxAppendMessages)}
	}
	sp, err := a.ss.store().NewSpool()
	if err != nil {
		return nil, storeError(err)
	}
	sp.Flags, sp.InternalDate = flagStrings(options.Flags), options.Time
	a.spools = append(a.spools, sp)
	return sp, nil
}

// write adds p to the message being staged, within APPENDLIMIT and the
// command's total.
func (a *appendStager) write(sp *mailstore.Spool, r io.Reader) error {
	limit := int64(a.ss.s.opts.AppendLimit)
	room := min(limit-sp.Size(), limit*maxAppendTotalFactor-a.total)
	n, err := io.Copy(sp, io.LimitReader(r, room+1))
	a.total += n
	if err != nil {
		return storeError(err)
	}
	if n > room {
		return storeError(mailstore.ErrTooBig)
	}
	return nil
}

// Stage implements imapserver.AppendStager.
func (a *appendStager) Stage(r imap.LiteralReader, options *imap.AppendOptions) error {
	sp, err := a.newSpool(options)
	if err != nil {
		return err
	}
	return a.write(sp, r)
}

// StageCatenate builds a message from literal text and parts of messages
// of this account named by IMAP URLs (RFC 4469), as Dovecot allows.
func (a *appendStager) StageCatenate(options *imap.AppendOptions, next func() (*imap.CatenatePart, error)) error {
	sp, err := a.newSpool(options)
	if err != nil {
		return err
	}
	for {
		part, err := next()
		if err != nil || part == nil {
			return err
		}
		if part.Text != nil {
			err = a.write(sp, part.Text)
		} else {
			err = a.writeURL(sp, part.URL)
		}
		if err != nil {
			return err
		}
	}
}

// writeURL copies the message or part a URL names, read under the store's
// memory budget.
func (a *appendStager) writeURL(sp *mailstore.Spool, rawURL string) error {
	ref, err := a.ss.parseMessageURL(rawURL)
	if err != nil {
		return err
	}
	var id mailstore.MailboxID
	if ref.selected {
		id = a.ss.sel.view.id
	} else {
		mb, err := a.ss.store().Mailbox(a.ss.ctx, a.ss.account, ref.mailbox)
		if err != nil || ref.uidValidity != 0 && ref.uidValidity != mb.UIDValidity {
			return errBadURL
		}
		id = mb.ID
	}
	err = a.ss.store().WithRaw(a.ss.ctx, id, ref.uid, func(raw []byte) error {
		return a.write(sp, bytes.NewReader(bodySection(raw, ref.section)))
	})
	if errors.Is(err, mailstore.ErrNoMessage) {
		return errBadURL
	}
	return err
}

var errEmptyMessage = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Cannot store an empty message"}

// Commit implements imapserver.AppendStager. Like Dovecot, it refuses the
// whole command if a message is empty.
func (a *appendStager) Commit() (*imap.AppendData, error) {
	for _, sp := range a.spools {
		if sp.Size() == 0 {
			return nil, errEmptyMessage
		}
	}
	added, err := a.ss.store().AppendSpooled(a.ss.originCtx(), a.ss.account, a.mailbox, a.spools)
	if err != nil {
		return nil, appendError(err)
	}
	if len(added) == 0 {
		return nil, nil
	}
	data := &imap.AppendData{UIDValidity: added[0].UIDValidity, UID: added[0].UID}
	if len(added) > 1 {
		for _, ad := range added {
			data.UIDs.AddNum(ad.UID)
		}
	}
	return data, nil
}

// Close implements imapserver.AppendStager.
func (a *appendStager) Close() error {
	for _, sp := range a.spools {
		sp.Close()
	}
	return nil
}

// messageURL is what a CATENATE URL names.
type messageURL struct {
	mailbox     string
	selected    bool // relative to the selected mailbox: mailbox is unused
	uidValidity uint32
	uid         imap.UID
	section     *imap.FetchItemBodySection
}

// parseMessageURL reads the IMAP URLs (RFC 5092) CATENATE takes: absolute
// paths "/mailbox[;UIDVALIDITY=v]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]",
// or ";UID=n..." relative to the selected mailbox. URLs with a server
// part ("imap://...") are refused: only this account's messages are
// reachable.
func (ss *session) parseMessageURL(raw string) (messageURL, error) {
	ref := messageURL{section: &imap.FetchItemBodySection{}}
	rest := raw
	switch {
	case strings.HasPrefix(rest, "/"):
		box, after, ok := strings.Cut(rest[1:], "/;UID=")
		if !ok {
			return ref, errBadURL
		}
		box, validity, hasValidity := strings.Cut(box, ";UIDVALIDITY=")
		name, err := url.PathUnescape(box)
		if err != nil {
			return ref, errBadURL
		}
		ref.mailbox, rest = name, after
		if hasValidity {
			v, err := strconv.ParseUint(validity, 10, 32)
			if err != nil || v == 0 {
				return ref, errBadURL
			}
			ref.uidValidity = uint32(v)
		}
	case strings.HasPrefix(rest, ";UID=") && ss.sel != nil:
		ref.selected, rest = true, rest[len(";UID="):]
	default:
		return ref, errBadURL
	}
	return ref, parseURLTail(&ref, rest)
}

// parseURLTail reads "n[/;SECTION=s][/;PARTIAL=o[.l]]".
func parseURLTail(ref *messageURL, rest string) error {
	fields := strings.Split(rest, "/;")
	uid, err := strconv.ParseUint(fields[0], 10, 32)
	if err != nil || uid == 0 {
		return errBadURL
	}
	ref.uid = imap.UID(uid)
	for _, f := range fields[1:] {
		key, value, _ := strings.Cut(f, "=")
		switch strings.ToUpper(key) {
		case "SECTION":
			if err := parseURLSection(ref.section, value); err != nil {
				return err
			}
		case "PARTIAL":
			off, size, hasSize := strings.Cut(value, ".")
			o, err1 := strconv.ParseInt(off, 10, 64)
			s, err2 := strconv.ParseInt(size, 10, 64)
			if !hasSize {
				s, err2 = 1<<40, nil
			}
			if err1 != nil || err2 != nil || o < 0 || s <= 0 {
				return errBadURL
			}
			ref.section.Partial = &imap.SectionPartial{Offset: o, Size: s}
		default:
			return errBadURL
		}
	}
	return nil
}

// parseURLSection reads a section such as "1.2", "HEADER", "2.MIME",
// "1.TEXT" or "HEADER.FIELDS (FROM TO)", percent-encoded.
func parseURLSection(bs *imap.FetchItemBodySection, s string) error {
	s, err := url.PathUnescape(s)
	if err != nil {
		return errBadURL
	}
	for s != "" {
		num, rest, _ := strings.Cut(s, ".")
		n, err := strconv.Atoi(num)
		if err != nil || n <= 0 {
			break
		}
		bs.Part, s = append(bs.Part, n), rest
	}
	name, list, hasList := strings.Cut(s, " ")
	switch spec := imap.PartSpecifier(strings.ToUpper(name)); {
	case s == "":
	case !hasList && (spec == imap.PartSpecifierHeader || spec == imap.PartSpecifierText ||
		spec == imap.PartSpecifierMIME && len(bs.Part) > 0):
		bs.Specifier = spec
	case hasList && (spec == "HEADER.FIELDS" || spec == "HEADER.FIELDS.NOT"):
		fields := strings.Fields(strings.Trim(list, "()"))
		if len(fields) == 0 || !strings.HasPrefix(list, "(") || !strings.HasSuffix(list, ")") {
			return errBadURL
		}
		bs.Specifier = imap.PartSpecifierHeader
		if spec == "HEADER.FIELDS" {
			bs.HeaderFields = fields
		} else {
			bs.HeaderFieldsNot = fields
		}
	default:
		return errBadURL
	}
	return nil
}
