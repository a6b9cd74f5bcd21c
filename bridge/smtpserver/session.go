package smtpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/bridge/loginlimit"
)

// Replies of the server's own (go-smtp has the protocol's).
var (
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required: log in with your bridge account name (or address) and bridge password"}
	errAuthTemporary = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Temporary authentication failure, try again later"}
	errAuthzid = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Authentication failed: logging in on behalf of another user is not supported"}
	errTooManyConnections = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many connections are logged in, try again later"}
	errNotQueued = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporary failure: the message was not queued and nothing was sent; try again later"}
	errRecipientTemporary = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporary failure checking the recipient; try again later"}
)

// backend makes a session per connection.
type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, conn: c.Conn()}, nil
}

// session is one client connection (go-smtp makes a new one after
// STARTTLS). Its methods are called by the connection's goroutine only.
type session struct {
	s       *Server
	conn    net.Conn // after STARTTLS, the TLS connection
	account string   // set by a successful AUTH
	from    string
	rcpts   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return errAuthzid
			}
			return ss.login(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{authenticate: ss.login}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// login checks credentials through the Authenticator, which limits the
// attempts (see package loginlimit), and moves the connection out of the
// pre-login pool. The password is never logged.
func (ss *session) login(username, password string) error {
	ctx, cancel := context.WithTimeout(ss.s.ctx, ss.s.opts.SubmitTimeout)
	defer cancel()
	account, err := ss.s.opts.Authenticator.Authenticate(ctx, username, password, ss.conn.RemoteAddr())
	var busy *loginlimit.BusyError
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		ss.s.log.Info("smtp: login failed", "user", username, "remote", ss.conn.RemoteAddr())
		return smtp.ErrAuthFailed
	case errors.As(err, &busy):
		return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
			Message: fmt.Sprintf("Too many login attempts, try again in %d s", int(busy.RetryIn.Seconds())+1)}
	case err != nil:
		ss.s.log.Error("smtp: login check failed", "user", username, "err", err)
		return errAuthTemporary
	}
	if err := ss.s.group.Authenticated(ss.conn); err != nil {
		return errTooManyConnections
	}
	ss.account = account
	return nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.account == "" {
		return errAuthRequired
	}
	ss.from, ss.rcpts = from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.account == "" {
		return errAuthRequired
	}
	ctx, cancel := context.WithTimeout(ss.s.ctx, ss.s.opts.SubmitTimeout)
	defer cancel()
	if err := ss.s.opts.Queue.Recipient(ctx, ss.account, to); err != nil {
		return ss.reply(err, 550, errRecipientTemporary, "recipient "+to)
	}
	if !slices.ContainsFunc(ss.rcpts, func(r string) bool { return strings.EqualFold(r, to) }) {
		ss.rcpts = append(ss.rcpts, to)
	}
	return nil
}

// Data spools the message to a file, so that clients sending large
// messages at once hold disk, not memory, then hands the file to
// Queue.Submit, which reads it as it stores it.
func (ss *session) Data(r io.Reader) error {
	if ss.account == "" {
		return errAuthRequired
	}
	spool, size, err := ss.s.spool(r)
	if err != nil {
		return err
	}
	defer spool.Close()
	ctx, cancel := context.WithTimeout(ss.s.ctx, ss.s.opts.SubmitTimeout)
	defer cancel()
	if err := ss.s.opts.Queue.Submit(ctx, ss.account, ss.from, ss.rcpts, io.NewSectionReader(spool, 0, size), size); err != nil {
		return ss.reply(err, 554, errNotQueued, "message")
	}
	ss.s.log.Info("smtp: message queued", "account", ss.account, "recipients", len(ss.rcpts), "bytes", size)
	return nil
}

// reply turns a Queue error into the SMTP reply: a Rejection's reason
// with code, anything else the temporary failure tmp (logged).
func (ss *session) reply(err error, code int, tmp *smtp.SMTPError, what string) error {
	var rej *Rejection
	if errors.As(err, &rej) {
		return &smtp.SMTPError{Code: code, EnhancedCode: rej.Status, Message: rej.Reason}
	}
	ss.s.log.Error("smtp: "+what+" not accepted", "account", ss.account, "err", err)
	return tmp
}

func (ss *session) Reset() { ss.from, ss.rcpts = "", nil }

func (ss *session) Logout() error { return nil }

// loginServer is the server side of SASL LOGIN (draft-murchison-sasl-login),
// which go-sasl lacks: user name and password each as a response, to the
// challenges "Username:" and "Password:". Outlook and older Thunderbird
// versions still use it.
type loginServer struct {
	authenticate func(username, password string) error
	asked        bool // "Username:" was sent
	username     *string
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch {
	case l.username == nil && response == nil && !l.asked:
		l.asked = true
		return []byte("Username:"), false, nil
	case l.username == nil:
		u := string(response)
		l.username = &u
		return []byte("Password:"), false, nil
	}
	return nil, true, l.authenticate(*l.username, string(response))
}
