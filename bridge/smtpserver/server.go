// Package smtpserver is the bridge's mail submission server: mail clients
// (Thunderbird, mutt, swaks, smtplib) hand it outgoing mail on
// 127.0.0.1:1587 by default.
//
// It is a thin mapping of go-smtp's Backend and Session onto a Queue: go-smtp
// speaks the protocol (PIPELINING, 8BITMIME, SMTPUTF8, CHUNKING, SIZE,
// ENHANCEDSTATUSCODES, STARTTLS); this package authenticates the client,
// asks the Queue about each recipient, and hands the message to it. It
// answers 250 to DATA only after Queue.Submit has returned, which must mean
// the message is durably queued.
//
// Logins use an auth.Authenticator, the one the IMAP server has (the same
// account names and bridge passwords, and the same limits on attempts),
// with SASL PLAIN or LOGIN, and are required before MAIL.
//
// Security defaults as for IMAP: plain text only on loopback addresses
// (Listen refuses anything else without TLS, saying why); on other
// addresses AUTH needs STARTTLS first. Connections, the time to log in,
// message size, recipients, line length and idle time are bounded.
package smtpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/bridge/listen"
)

// DefaultAddr is where the submission server listens unless told otherwise.
const DefaultAddr = "127.0.0.1:1587"

// Defaults for the zero values of Options.
const (
	// DefaultMaxMessageBytes is the largest message accepted, advertised
	// as SIZE: the largest message ASMTP carries (asmtp/mail.MaxMessageSize).
	DefaultMaxMessageBytes = 25 << 20
	DefaultMaxRecipients   = 100
	DefaultMaxConnections  = 50
	// DefaultReadTimeout closes a connection that sends no command for
	// this long; a whole DATA transfer must also fit in it.
	DefaultReadTimeout  = 10 * time.Minute
	DefaultWriteTimeout = time.Minute
	// DefaultSubmitTimeout bounds Queue.Submit and Queue.Recipient.
	DefaultSubmitTimeout = time.Minute
)

// MaxLineLength bounds a command or message line. RFC 5321 allows 1000
// octets, but clients send longer lines of 8-bit text and HTML; this is
// large enough for them and still bounds what one read buffers.
const MaxLineLength = 64 << 10

// Queue is where accepted mail goes: the bridge's outbox.
type Queue interface {
	// Recipient checks an RCPT TO address for the logged-in account. A
	// *Rejection refuses it with its reason; another error is a
	// temporary failure.
	Recipient(ctx context.Context, account, address string) error
	// Submit queues the message of size bytes read from msg (a spool
	// file) from account to the recipients Recipient accepted (each
	// once). It should read msg as it stores it rather than hold it whole:
	// the server bounds what it holds itself, not what Submit does. It
	// must return only once the message is durably stored: the client is
	// then told 250. A *Rejection refuses the message for good; another
	// error is a temporary failure.
	Submit(ctx context.Context, account, from string, recipients []string, msg io.Reader, size int64) error
}

// Rejection is a permanent refusal, with a sentence that tells the user what
// is wrong and what to do; mail clients show it in their error dialog.
type Rejection struct {
	Status [3]int // RFC 3463 enhanced status code, e.g. {5, 1, 1}
	Reason string
}

func (r *Rejection) Error() string { return r.Reason }

// Options configure a Server. Authenticator and Queue are required.
type Options struct {
	Authenticator auth.Authenticator
	Queue         Queue
	// Domain names the server in its greeting. Default "localhost".
	Domain string
	// TLSConfig enables STARTTLS and ServeTLS (implicit TLS); see
	// auth.LoadOrCreateCertificate for a self-signed one.
	TLSConfig *tls.Config
	// MaxMessageBytes is the message size limit, advertised as SIZE.
	// Default DefaultMaxMessageBytes. (go-smtp v0.25.1 refuses a message
	// of exactly this size: its data reader fails once the limit is
	// reached, before the final "." line. The largest accepted is one
	// byte less.)
	MaxMessageBytes int64
	// MaxRecipients bounds RCPT TO per message. Default
	// DefaultMaxRecipients.
	MaxRecipients int
	// MaxConnections bounds logged-in connections; AUTH beyond it is
	// refused. As many that have not logged in may be open; a new one
	// beyond them closes the oldest with 421 (see listen.GroupOptions).
	// Default DefaultMaxConnections.
	MaxConnections int
	// PreAuthTimeout closes a connection that has not logged in this long
	// after it connected. Default listen.DefaultPreAuthTimeout.
	PreAuthTimeout time.Duration
	ReadTimeout    time.Duration // default DefaultReadTimeout
	WriteTimeout   time.Duration // default DefaultWriteTimeout
	SubmitTimeout  time.Duration // default DefaultSubmitTimeout
	// SpoolDir holds messages while they arrive, as unlinked files, until
	// Queue.Submit has read them. Default os.TempDir().
	SpoolDir string
	Logger   *slog.Logger
}

// Server is the submission server. One Server may serve several listeners.
type Server struct {
	opts  Options
	log   *slog.Logger
	group *listen.Group
	ctx   context.Context // done at Close
}

// New checks opts and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Authenticator == nil || opts.Queue == nil {
		return nil, errors.New("smtpserver: Options.Authenticator and Options.Queue are required")
	}
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = DefaultMaxRecipients
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.SubmitTimeout <= 0 {
		opts.SubmitTimeout = DefaultSubmitTimeout
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = os.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	group := listen.NewGroup(listen.GroupOptions{
		Name:           "smtpserver",
		DefaultAddr:    DefaultAddr,
		TLSConfig:      opts.TLSConfig,
		MaxConnections: opts.MaxConnections,
		PreAuthTimeout: opts.PreAuthTimeout,
		Refusal:        "421 4.7.0 Too many connections, closing the oldest\r\n",
	})
	return &Server{opts: opts, log: opts.Logger, group: group, ctx: group.Context()}, nil
}

// Listen opens a TCP listener for Serve or ServeTLS, refusing a
// non-loopback address unless TLS is configured.
func (s *Server) Listen(addr string) (net.Listener, error) { return s.group.Listen(addr) }

// Serve serves SMTP (with STARTTLS if TLS is configured) on ln until Close.
// AUTH without TLS is allowed only when ln is on a loopback address.
func (s *Server) Serve(ln net.Listener) error {
	return s.group.Serve(ln, func(loopback bool) listen.Server { return s.newSMTPServer(loopback) }, nil)
}

// ServeTLS serves SMTP over implicit TLS on ln until Close, on any address.
func (s *Server) ServeTLS(ln net.Listener) error {
	// go-smtp sees the *tls.Conn itself, so it knows AUTH is protected.
	return s.group.ServeTLS(ln, s.newSMTPServer(false), nil)
}

func (s *Server) newSMTPServer(insecureAuth bool) *smtp.Server {
	srv := smtp.NewServer(backend{s})
	srv.Domain = s.opts.Domain
	srv.TLSConfig = s.opts.TLSConfig
	srv.AllowInsecureAuth = insecureAuth
	srv.MaxMessageBytes = s.opts.MaxMessageBytes
	srv.MaxRecipients = s.opts.MaxRecipients
	srv.MaxLineLength = MaxLineLength
	srv.ReadTimeout = s.opts.ReadTimeout
	srv.WriteTimeout = s.opts.WriteTimeout
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = listen.Log{Logger: s.log, Prefix: "smtp: "}
	return srv
}

// spool copies a message from DATA (or BDAT) into an unlinked file in
// SpoolDir: a crash leaves nothing behind, and nothing was acknowledged.
// Errors from r are go-smtp's own (552 for a message over SIZE); others are
// a temporary failure.
func (s *Server) spool(r io.Reader) (*os.File, int64, error) {
	f, err := os.CreateTemp(s.opts.SpoolDir, "smtp-data-*")
	if err != nil {
		s.log.Error("smtp: spool file", "err", err)
		return nil, 0, errNotQueued
	}
	os.Remove(f.Name())
	n, err := io.Copy(f, r)
	var werr *os.PathError
	switch {
	case errors.As(err, &werr) && werr.Path == f.Name():
		s.log.Error("smtp: spooling a message", "err", err)
		err = errNotQueued
	case err != nil:
		// go-smtp's own, such as 552 for a message over SIZE
	default:
		return f, n, nil
	}
	f.Close()
	return nil, 0, err
}

// Close stops all listeners and connections; submissions in progress are
// cancelled (and so not acknowledged).
func (s *Server) Close() error { return s.group.Close() }
