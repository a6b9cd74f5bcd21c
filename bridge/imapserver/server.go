// Package imapserver serves the mailstore over IMAP to ordinary mail clients
// (Thunderbird, mutt, mbsync) on 127.0.0.1:1143 by default.
//
// It is a thin mapping of go-imap v2's imapserver.Session onto
// mailstore.Store: go-imap parses and writes the protocol; this package turns
// commands into store calls and store changes into unsolicited responses
// (through one shared view per mailbox, view.go). It advertises IMAP4rev1
// with IDLE, UIDPLUS, MOVE, UNSELECT, NAMESPACE, SPECIAL-USE,
// LIST-EXTENDED, LIST-STATUS, ESEARCH, LITERAL+, APPENDLIMIT, SASL-IR,
// ENABLE and ID (the last added by wire.go, which go-imap lacks).
//
// Security defaults: plain text only on loopback addresses (Listen refuses
// anything else without TLS); on other addresses LOGIN needs TLS first;
// failed logins are throttled per source address; connections, APPEND size
// and idle time are bounded.
package imapserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/asmtp/asmtp/bridge/listen"
	"github.com/asmtp/asmtp/bridge/loginlimit"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

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
	Authenticator Authenticator
	// TLSConfig enables STARTTLS and ServeTLS (implicit TLS); see
	// LoadOrCreateCertificate for a self-signed one.
	TLSConfig *tls.Config
	// AppendLimit is the largest message APPEND accepts, advertised as
	// APPENDLIMIT. At most mailstore.MaxMessageSize.
	AppendLimit uint32
	// MaxConnections bounds concurrent connections; more are greeted with
	// BYE and closed.
	MaxConnections int
	// IdleTimeout closes a connection that sends nothing for this long (also
	// during IDLE; RFC 2177 clients re-issue IDLE every 29 minutes).
	IdleTimeout time.Duration
	// Throttle limits failed logins per source address.
	Throttle ThrottleOptions
	Logger   *slog.Logger
}

// Server is the bridge's IMAP server. One Server may serve several
// listeners.
type Server struct {
	opts     Options
	log      *slog.Logger
	views    *viewCache
	throttle *loginlimit.Limiter
	slots    chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc

	mu        sync.Mutex
	servers   []*imapserver.Server
	listeners []net.Listener
	closed    bool
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
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts:     opts,
		log:      opts.Logger,
		views:    &viewCache{store: opts.Store, views: make(map[int64]*mailboxView)},
		throttle: loginlimit.New(opts.Throttle),
		slots:    make(chan struct{}, opts.MaxConnections),
		ctx:      ctx,
		cancel:   cancel,
	}, nil
}

// Listen opens a TCP listener for Serve, refusing a non-loopback address
// unless TLS is configured.
func (s *Server) Listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := listen.Open(addr, s.opts.TLSConfig != nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", "imapserver", err)
	}
	return ln, nil
}

// Serve serves plain IMAP (with STARTTLS if TLS is configured) on ln until
// Close. LOGIN without TLS is allowed only when ln is on a loopback address.
func (s *Server) Serve(ln net.Listener) error {
	loopback := listen.IsLoopback(ln.Addr().String())
	if !loopback && s.opts.TLSConfig == nil {
		return fmt.Errorf("imapserver: refusing to serve %s without TLS", ln.Addr())
	}
	return s.serve(ln, s.newIMAPServer(loopback, s.opts.TLSConfig), false)
}

// ServeTLS serves IMAP over implicit TLS on ln until Close.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.opts.TLSConfig == nil {
		return errors.New("imapserver: ServeTLS needs Options.TLSConfig")
	}
	// The connection go-imap sees is our wrapper around the tls.Conn, so it
	// cannot tell it is encrypted: allow LOGIN, and offer no STARTTLS.
	return s.serve(ln, s.newIMAPServer(true, nil), true)
}

func (s *Server) newIMAPServer(insecureAuth bool, tlsConfig *tls.Config) *imapserver.Server {
	return imapserver.New(&imapserver.Options{
		NewSession:   s.newSession,
		Caps:         capabilities,
		Logger:       slogPrintf{s.log},
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
}

func (s *Server) serve(ln net.Listener, srv *imapserver.Server, implicitTLS bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return errors.New("imapserver: server closed")
	}
	s.servers = append(s.servers, srv)
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	err := srv.Serve(&limitListener{Listener: ln, s: s, implicitTLS: implicitTLS})
	if s.isClosed() {
		return nil
	}
	return err
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops all listeners and connections and the store watches.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	servers, listeners := s.servers, s.listeners
	s.mu.Unlock()
	s.cancel()
	var errs []error
	for _, ln := range listeners { // also those go-imap has not registered yet
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for _, srv := range servers {
		srv.Close()
	}
	s.views.closeAll()
	return errors.Join(errs...)
}

// limitListener wraps accepted connections in wireConn, refusing those over
// MaxConnections with a BYE.
type limitListener struct {
	net.Listener
	s           *Server
	implicitTLS bool
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.s.slots <- struct{}{}:
		default:
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write([]byte("* BYE Too many connections, try again later\r\n"))
			c.Close()
			continue
		}
		if l.implicitTLS {
			c = tls.Server(c, l.s.opts.TLSConfig)
		}
		return newWireConn(c, l.s.opts.IdleTimeout, int64(l.s.opts.AppendLimit), func() { <-l.s.slots }), nil
	}
}

// slogPrintf adapts slog to go-imap's Printf logger.
type slogPrintf struct{ l *slog.Logger }

func (p slogPrintf) Printf(format string, args ...any) {
	p.l.Warn("imap: " + fmt.Sprintf(format, args...))
}
