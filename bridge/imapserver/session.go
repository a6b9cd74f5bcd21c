package imapserver

import (
	"context"
	"errors"
	"fmt"
	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/bridge/loginlimit"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/asmtp/asmtp/mailstore"
)

// session is one IMAP connection's state. go-imap calls its methods one at a
// time, except Idle, which runs beside the reading of DONE.
type session struct {
	s      *Server
	conn   *imapserver.Conn
	wire   *wireConn
	ctx    context.Context
	cancel context.CancelFunc

	account string     // set by Login
	sel     *selection // set by Select
}

// selection is the selected mailbox of a session.
type selection struct {
	view     *mailboxView
	tracker  *sessionTracker
	readOnly bool
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
	_ imapserver.SessionQResync     = (*session)(nil)
	_ imapserver.SessionCondStore   = (*session)(nil)
)

func (s *Server) newSession(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	wire, ok := conn.NetConn().(*wireConn)
	if !ok {
		return nil, nil, fmt.Errorf("imapserver: connection %T not accepted by this server's listener", conn.NetConn())
	}
	ctx, cancel := context.WithCancel(s.ctx)
	return &session{s: s, conn: conn, wire: wire, ctx: ctx, cancel: cancel}, nil, nil
}

func (ss *session) Close() error {
	ss.unselect()
	ss.cancel()
	return nil
}

func (ss *session) store() mailstore.Store { return ss.s.opts.Store }

// enabled reports whether the client has enabled an extension (ENABLE, or
// for CONDSTORE one of the commands that enable it).
func (ss *session) enabled(c imap.Cap) bool { return ss.conn.EnabledCaps().Has(c) }

// AppendLimit implements imapserver.SessionAppendLimit.
func (ss *session) AppendLimit() uint32 { return ss.s.opts.AppendLimit }

// Login checks the credentials; the Authenticator limits the attempts
// (see package loginlimit). A logged-in connection leaves the group's
// pre-login pool, if there is room among the logged-in ones.
func (ss *session) Login(username, password string) error {
	account, err := ss.s.opts.Authenticator.Authenticate(ss.ctx, username, password, ss.wire.RemoteAddr())
	var busy *loginlimit.BusyError
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		ss.s.log.Info("imap: failed login", "source", loginlimit.Source(ss.wire.RemoteAddr()))
		return imapserver.ErrAuthFailed
	case errors.As(err, &busy):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
			Text: fmt.Sprintf("Too many login attempts, try again in %d s", int(busy.RetryIn.Seconds())+1)}
	case err != nil:
		ss.s.log.Error("imap: authenticator failed", "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Authentication is unavailable"}
	}
	if ok, err := ss.store().AccountExists(ss.ctx, account); err != nil || !ok {
		ss.s.log.Error("imap: authenticated account has no mail store", "account", account, "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Account is not available"}
	}
	if err := ss.s.group.Authenticated(ss.wire.Conn); err != nil {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Too many connections, try again later"}
	}
	ss.account = account
	return nil
}

// storeError turns a mailstore error into the IMAP answer.
func storeError(err error) error {
	if err == nil {
		return nil
	}
	no := func(code imap.ResponseCode, text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	switch {
	case errors.Is(err, mailstore.ErrNoMailbox):
		return no(imap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, mailstore.ErrMailboxExists):
		return no(imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, mailstore.ErrHasChildren):
		return no(imap.ResponseCodeHasChildren, "Mailbox has children, delete them first")
	case errors.Is(err, mailstore.ErrInboxDelete):
		return no(imap.ResponseCodeCannot, "INBOX cannot be deleted")
	case errors.Is(err, mailstore.ErrBadName):
		return no(imap.ResponseCodeCannot, "Invalid mailbox name")
	case errors.Is(err, mailstore.ErrTooManyBoxes):
		return no(imap.ResponseCodeLimit, "Too many mailboxes")
	case errors.Is(err, mailstore.ErrTooBig):
		return no(imap.ResponseCodeTooBig, "Message too big")
	case errors.Is(err, mailstore.ErrTooManyFlags):
		return no(imap.ResponseCodeLimit, "Too many flags")
	case errors.Is(err, mailstore.ErrBusy):
		return no(imap.ResponseCodeUnavailable, "Server busy with other large requests, try again later")
	case errors.Is(err, mailstore.ErrBadFlag):
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Invalid flag"}
	case errors.Is(err, context.Canceled):
		return &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return err
	}
	return fmt.Errorf("mail store: %w", err) // logged by go-imap, NO [SERVERBUG] to the client
}

var errNoMailbox = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such mailbox"}

func (ss *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	ss.unselect()
	mb, err := ss.store().Mailbox(ss.ctx, ss.account, name)
	if err != nil {
		return nil, storeError(err)
	}
	view, err := ss.s.views.acquire(ss.ctx, mb.ID)
	if err != nil {
		return nil, storeError(err)
	}
	data, tracker, err := view.selectData(options.ReadOnly)
	if err != nil {
		ss.s.views.release(view)
		return nil, err
	}
	ss.sel = &selection{view: view, tracker: tracker, readOnly: options.ReadOnly}
	return data, nil
}

func (ss *session) Unselect() error {
	ss.unselect()
	return nil
}

func (ss *session) unselect() {
	if ss.sel == nil {
		return
	}
	ss.sel.tracker.close()
	ss.s.views.release(ss.sel.view)
	ss.sel = nil
}

func (ss *session) Create(name string, options *imap.CreateOptions) error {
	name = strings.TrimRight(name, string(mailstore.Delim)) // "a/" names "a" (RFC 3501, 6.3.3)
	specialUse := ""
	if options != nil && len(options.SpecialUse) > 0 {
		if len(options.SpecialUse) > 1 {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: responseCodeUseAttr, Text: "One special use per mailbox"}
		}
		specialUse = string(options.SpecialUse[0])
	}
	_, err := ss.store().CreateMailbox(ss.ctx, ss.account, name, specialUse)
	if errors.Is(err, mailstore.ErrBadSpecialUse) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: responseCodeUseAttr, Text: "Unsupported special use"}
	}
	return storeError(err)
}

func (ss *session) Delete(name string) error {
	return storeError(ss.store().DeleteMailbox(ss.ctx, ss.account, name))
}

func (ss *session) Rename(oldName, newName string, _ *imap.RenameOptions) error {
	return storeError(ss.store().RenameMailbox(ss.ctx, ss.account, oldName, strings.TrimRight(newName, string(mailstore.Delim))))
}

func (ss *session) Subscribe(name string) error {
	return storeError(ss.store().SetSubscribed(ss.ctx, ss.account, name, true))
}

func (ss *session) Unsubscribe(name string) error {
	return storeError(ss.store().SetSubscribed(ss.ctx, ss.account, name, false))
}

func (ss *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Delim: mailstore.Delim}}}, nil
}

func (ss *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	st, err := ss.store().Status(ss.ctx, ss.account, name)
	if err != nil {
		return nil, storeError(err)
	}
	data := &imap.StatusData{Mailbox: st.Name}
	if options.NumMessages {
		data.NumMessages = &st.Messages
	}
	if options.UIDNext {
		data.UIDNext = st.UIDNext
	}
	if options.UIDValidity {
		data.UIDValidity = st.UIDValidity
	}
	if options.NumUnseen {
		data.NumUnseen = &st.Unseen
	}
	if options.NumDeleted {
		data.NumDeleted = &st.Deleted
	}
	if options.Size {
		data.Size = &st.Size
	}
	if options.NumRecent {
		n := ss.s.views.numRecent(st.ID, st.Messages)
		data.NumRecent = &n
	}
	if options.AppendLimit {
		limit := ss.s.opts.AppendLimit
		data.AppendLimit = &limit
	}
	if options.HighestModSeq {
		data.HighestModSeq = st.HighestModSeq
	}
	return data, nil
}

// Append hands the literal to the store as it arrives: the store spools it
// to disk and parses it under its memory budget, so concurrent large
// APPENDs cost disk, not memory. go-imap calls it only for sessions
// without BeginAppend (append.go), which takes every APPEND here.
func (ss *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	if r.Size() > int64(ss.s.opts.AppendLimit) {
		return nil, storeError(mailstore.ErrTooBig)
	}
	a, err := ss.store().AppendFrom(ss.originCtx(), ss.account, mailbox, r, r.Size(), flagStrings(options.Flags), options.Time)
	if errors.Is(err, mailstore.ErrNoMailbox) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	if err != nil {
		return nil, storeError(err)
	}
	return &imap.AppendData{UID: a.UID, UIDValidity: a.UIDValidity}, nil
}

func flagStrings(flags []imap.Flag) []string {
	out := make([]string, len(flags))
	for i, f := range flags {
		out[i] = string(f)
	}
	return out
}

// originCtx marks the store changes a command makes as this session's, so
// that the view gives messages it adds to the selected mailbox \Recent in
// this session, as Dovecot does.
func (ss *session) originCtx() context.Context {
	if ss.sel == nil {
		return ss.ctx
	}
	return mailstore.WithOrigin(ss.ctx, ss.sel.tracker)
}

// Poll writes the selected mailbox's pending updates, batched.
func (ss *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if ss.sel == nil {
		return nil
	}
	ss.wire.hold()
	defer ss.wire.release()
	return ss.pollSelected(w, allowExpunge)
}

// Idle writes updates as they arrive until stop is closed. The store tells
// the view within the committing call, so a delivery reaches an idling
// client after one SQLite commit and one write.
func (ss *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if ss.sel == nil {
		return nil
	}
	return ss.sel.tracker.idle(stop, func() error { return ss.pollSelected(w, true) })
}

// responseCodeUseAttr is RFC 6154's code for an unsupported special use.
const responseCodeUseAttr imap.ResponseCode = "USEATTR"
