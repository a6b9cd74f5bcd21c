// Package imapserver serves the mailstore over IMAP to ordinary mail clients
// (Thunderbird, mutt, mbsync) on 127.0.0.1:1143 by default.
//
// It is a thin mapping of go-imap v2's imapserver.Session onto
// mailstore.Store: go-imap parses and writes the protocol; this package turns
// commands into store calls and store changes into unsolicited responses
// (through one shared view per mailbox, view.go). It advertises IMAP4rev1
// with IDLE, UIDPLUS, MOVE, UNSELECT, NAMESPACE, SPECIAL-USE,
// LIST-EXTENDED, LIST-STATUS, ESEARCH, BINARY, LITERAL+, APPENDLIMIT,
// SASL-IR, ENABLE, CONDSTORE, QRESYNC, SORT, ESORT, THREAD=ORDEREDSUBJECT,
// THREAD=REFERENCES, MULTIAPPEND, CATENATE and ID (the last added by
// wire.go, which go-imap lacks; the others go-imap beta.8 lacks are parsed
// by its fork in third_party/go-imap). Mod-sequences come from the store
// (package mailstore's modseq.go), one per change, and are kept in the
// view with the flags, so CHANGEDSINCE, SEARCH MODSEQ and QRESYNC's
// FETCHes read no SQLite; only VANISHED reads the store's tombstones.
//
// SORT and THREAD read sort keys the store cached per message at insert
// (sort.go); the sort order or thread tree of a whole mailbox stays in its
// view until a message is added or expunged. An APPEND of one or more messages
// (MULTIAPPEND), each a literal or built with CATENATE from text and parts
// of this account's messages, is spooled to disk and stored in one
// transaction, all or nothing (append.go). Subscriptions are names: a
// deleted mailbox's subscription stays, listed \NonExistent (list.go).
//
// Message numbers follow each client's view (tracker.go): a message
// expunged by another session stays addressable until the client is sent
// its EXPUNGE (RFC 3501 §7.4.1), though its data is then left out of
// answers. \Recent is held by one session per message, in memory with the
// mailbox's view: a mailbox loaded afresh (after a restart, or once its idle
// view is dropped) has all its messages recent to the next SELECT.
//
// Security defaults: plain text only on loopback addresses (Listen refuses
// anything else without TLS); on other addresses LOGIN needs TLS first;
// the Authenticator limits login attempts (the bridge's uses package
// loginlimit); connections, the time to log in, APPEND size and idle time
// are bounded. Memory is bounded by the store's budget: APPEND is spooled
// to disk as it arrives, SEARCH reads text a message at a time, and large
// FETCH answers are written from a temporary file; a request that cannot
// get its share in time gets NO [UNAVAILABLE]. A session whose selected
// mailbox was deleted gets NO [NONEXISTENT] for every command on it.
package imapserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/bridge/listen"
	"github.com/asmtp/asmtp/mailstore"
)

// DefaultAddr is where the bridge's IMAP server listens unless told otherwise.
const DefaultAddr = "127.0.0.1:1143"

// Defaults for the zero values of Options.
const (
	DefaultAppendLimit    = 25 << 20
	DefaultMaxConnections = 200
	DefaultIdleTimeout    = 30 * time.Minute
)

// Options configure a Server. Store and Authenticator are required.
type Options struct {
	Store         mailstore.Store
	Authenticator auth.Authenticator
	// TLSConfig enables STARTTLS and ServeTLS (implicit TLS); see
	// auth.LoadOrCreateCertificate for a self-signed one.
	TLSConfig *tls.Config
	// AppendLimit is the largest message APPEND accepts, advertised as
	// APPENDLIMIT. At most mailstore.MaxMessageSize.
	AppendLimit uint32
	// MaxConnections bounds logged-in connections; a login beyond it is
	// refused. As many connections that have not logged in may be open;
	// a new one beyond them closes the oldest with BYE (see
	// listen.GroupOptions).
	MaxConnections int
	// PreAuthTimeout closes a connection that has not logged in this long
	// after it connected. Default listen.DefaultPreAuthTimeout.
	PreAuthTimeout time.Duration
	// IdleTimeout closes a connection that sends nothing for this long (also
	// during IDLE; RFC 2177 clients re-issue IDLE every 29 minutes).
	IdleTimeout time.Duration
	// SpoolDir holds the temporary files that large FETCH answers are
	// written from (unlinked at once); os.TempDir() if empty.
	SpoolDir string
	Logger   *slog.Logger
}

// Server is the bridge's IMAP server. One Server may serve several
// listeners.
type Server struct {
	opts  Options
	log   *slog.Logger
	views *viewCache
	group *listen.Group
	ctx   context.Context // done at Close
}

// New checks opts and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || opts.Authenticator == nil {
		return nil, errors.New("imapserver: Options.Store and Options.Authenticator are required")
	}
	if opts.AppendLimit == 0 {
		opts.AppendLimit = DefaultAppendLimit
	}
	if opts.AppendLimit > mailstore.MaxMessageSize {
		return nil, fmt.Errorf("imapserver: AppendLimit %d exceeds the store's maximum %d", opts.AppendLimit, mailstore.MaxMessageSize)
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	group := listen.NewGroup(listen.GroupOptions{
		Name:           "imapserver",
		DefaultAddr:    DefaultAddr,
		TLSConfig:      opts.TLSConfig,
		MaxConnections: opts.MaxConnections,
		PreAuthTimeout: opts.PreAuthTimeout,
		Refusal:        "* BYE Too many connections, closing the oldest\r\n",
	})
	return &Server{
		opts:  opts,
		log:   opts.Logger,
		views: &viewCache{store: opts.Store, views: make(map[mailstore.MailboxID]*mailboxView)},
		group: group,
		ctx:   group.Context(),
	}, nil
}

// Listen opens a TCP listener for Serve or ServeTLS, refusing a
// non-loopback address unless TLS is configured.
func (s *Server) Listen(addr string) (net.Listener, error) { return s.group.Listen(addr) }

// Serve serves plain IMAP (with STARTTLS if TLS is configured) on ln until
// Close. LOGIN without TLS is allowed only when ln is on a loopback address.
func (s *Server) Serve(ln net.Listener) error {
	return s.group.Serve(ln, func(loopback bool) listen.Server {
		return s.newIMAPServer(loopback, s.opts.TLSConfig)
	}, s.wire)
}

// ServeTLS serves IMAP over implicit TLS on ln until Close, on any address.
func (s *Server) ServeTLS(ln net.Listener) error {
	// The connection go-imap sees is our wrapper around the tls.Conn, so it
	// cannot tell it is encrypted: allow LOGIN, and offer no STARTTLS.
	return s.group.ServeTLS(ln, s.newIMAPServer(true, nil), s.wire)
}

// wire puts go-imap's view of a connection in a wireConn.
func (s *Server) wire(c net.Conn) net.Conn {
	return newWireConn(c, s.opts.IdleTimeout, int64(s.opts.AppendLimit))
}

func (s *Server) newIMAPServer(insecureAuth bool, tlsConfig *tls.Config) *imapserver.Server {
	return imapserver.New(&imapserver.Options{
		NewSession:   s.newSession,
		Caps:         capabilities,
		Logger:       listen.Log{Logger: s.log, Prefix: "imap: "},
		TLSConfig:    tlsConfig,
		InsecureAuth: insecureAuth,
	})
}

var capabilities = imap.CapSet{
	imap.CapIMAP4rev1:        {},
	imap.CapIdle:             {},
	imap.CapUIDPlus:          {},
	imap.CapMove:             {},
	imap.CapUnselect:         {},
	imap.CapNamespace:        {},
	imap.CapSpecialUse:       {},
	imap.CapListExtended:     {},
	imap.CapListStatus:       {},
	imap.CapESearch:          {},
	imap.CapLiteralPlus:      {},
	imap.CapSASLIR:           {},
	imap.CapEnable:           {},
	imap.CapChildren:         {},
	imap.CapStatusSize:       {},
	imap.CapCreateSpecialUse: {},
	imap.CapBinary:           {},
	imap.CapSort:             {},
	imap.CapESort:            {},
	imap.CapMultiAppend:      {},
	imap.CapCatenate:         {},
	imap.Cap("THREAD=" + imap.ThreadOrderedSubject): {},
	imap.Cap("THREAD=" + imap.ThreadReferences):     {},
	imap.CapCondStore: {},
	imap.CapQResync:   {},
}

// Close stops all listeners and connections and the store watches.
func (s *Server) Close() error {
	err := s.group.Close()
	s.views.closeAll()
	return err
}
