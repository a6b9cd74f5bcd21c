package listen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Server is a protocol library's server (go-imap's imapserver.Server,
// go-smtp's smtp.Server) as a Group runs it.
type Server interface {
	Serve(net.Listener) error
	Close() error
}

// GroupOptions configure a Group.
type GroupOptions struct {
	// Name starts the group's errors, e.g. "imapserver".
	Name string
	// DefaultAddr is what Listen("") opens.
	DefaultAddr string
	// TLSConfig, when set, enables ServeTLS and lets Listen and Serve go
	// beyond loopback (the servers then offer STARTTLS there).
	TLSConfig *tls.Config
	// MaxConnections bounds the logged-in connections across all the
	// group's listeners; at least 1. A login beyond it is refused with
	// ErrTooManyConnections.
	MaxConnections int
	// MaxUnauthenticated bounds the connections that have not logged in
	// (Authenticated not called); a new connection beyond it closes the
	// oldest of them. Default MaxConnections.
	MaxUnauthenticated int
	// PreAuthTimeout closes a connection that has not logged in this long
	// after it was accepted. Default DefaultPreAuthTimeout.
	PreAuthTimeout time.Duration
	// Refusal is written, in the protocol's words, to a plain-text
	// connection closed to make room for a newer one.
	Refusal string
}

// DefaultPreAuthTimeout is long enough for a client to connect, negotiate
// TLS and log in, even with a slow password check, and short enough that
// idle strangers do not hold connections for long.
const DefaultPreAuthTimeout = 30 * time.Second

// Group is what the bridge's IMAP and SMTP servers share around their
// protocol libraries: the rule on where plain text may be served, the
// listeners they serve, one bound on concurrent connections across all of
// them, a context for the sessions' work, and a Close that stops it all.
type Group struct {
	opts   GroupOptions
	conns  *connTable
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	servers   []Server
	listeners []net.Listener
	closed    bool
}

// NewGroup returns a Group; opts.MaxConnections below 1 counts as 1.
func NewGroup(opts GroupOptions) *Group {
	opts.MaxConnections = max(opts.MaxConnections, 1)
	if opts.MaxUnauthenticated <= 0 {
		opts.MaxUnauthenticated = opts.MaxConnections
	}
	if opts.PreAuthTimeout <= 0 {
		opts.PreAuthTimeout = DefaultPreAuthTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{
		opts:   opts,
		conns:  &connTable{maxAuth: opts.MaxConnections, maxUnauth: opts.MaxUnauthenticated, preAuth: opts.PreAuthTimeout},
		ctx:    ctx,
		cancel: cancel,
	}
}

// Authenticated moves c, a connection the group's listener accepted
// (possibly wrapped), to the logged-in connections: its pre-login deadline
// no longer applies and it is never closed to make room. It returns
// ErrTooManyConnections when MaxConnections are logged in already; the
// login should then be refused.
func (g *Group) Authenticated(c net.Conn) error {
	sc, ok := slotOf(c)
	if !ok {
		return fmt.Errorf("%s: connection %T was not accepted by this group", g.opts.Name, c)
	}
	return g.conns.login(sc)
}

// Context is done once Close is called: the sessions' work stops with it.
func (g *Group) Context() context.Context { return g.ctx }

// Listen opens a TCP listener for Serve or ServeTLS on addr (DefaultAddr if
// empty), refusing a non-loopback address unless the group has TLS.
func (g *Group) Listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = g.opts.DefaultAddr
	}
	ln, err := Open(addr, g.opts.TLSConfig != nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.opts.Name, err)
	}
	return ln, nil
}

// Serve serves plain text on ln until Close, with the server newServer
// makes; loopback tells it whether ln is on a loopback address, where
// logins may go without TLS. Beyond loopback it refuses to serve unless the
// group has TLS, for STARTTLS. wrap, if not nil, wraps each connection
// before the server sees it.
func (g *Group) Serve(ln net.Listener, newServer func(loopback bool) Server, wrap func(net.Conn) net.Conn) error {
	loopback := IsLoopback(ln.Addr().String())
	if !loopback && g.opts.TLSConfig == nil {
		return fmt.Errorf("%s: refusing to serve %s without TLS", g.opts.Name, ln.Addr())
	}
	return g.serve(ln, newServer(loopback), nil, wrap)
}

// ServeTLS serves implicit TLS on ln with srv until Close; wrap, if not
// nil, wraps each connection once TLS is on it. Any address is allowed,
// since nothing crosses the network in clear text.
func (g *Group) ServeTLS(ln net.Listener, srv Server, wrap func(net.Conn) net.Conn) error {
	if g.opts.TLSConfig == nil {
		return fmt.Errorf("%s: ServeTLS needs Options.TLSConfig", g.opts.Name)
	}
	return g.serve(ln, srv, g.opts.TLSConfig, wrap)
}

func (g *Group) serve(ln net.Listener, srv Server, tlsConfig *tls.Config, wrap func(net.Conn) net.Conn) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		ln.Close()
		return fmt.Errorf("%s: server closed", g.opts.Name)
	}
	g.servers = append(g.servers, srv)
	g.listeners = append(g.listeners, ln)
	g.mu.Unlock()
	l := &limitListener{Listener: ln, conns: g.conns, tls: tlsConfig, wrap: wrap}
	if tlsConfig == nil {
		// On an implicit-TLS port a plain-text refusal would only be
		// garbled TLS to the client: close those silently.
		l.refusal = []byte(g.opts.Refusal)
	}
	err := srv.Serve(l)
	if g.isClosed() {
		return nil
	}
	return fmt.Errorf("%s: serve %s: %w", g.opts.Name, ln.Addr(), err)
}

func (g *Group) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// Close cancels Context, then stops all listeners (also those a server has
// not taken up yet) and servers, which close their connections. Later
// calls do nothing.
func (g *Group) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	servers, listeners := g.servers, g.listeners
	g.mu.Unlock()
	g.cancel()
	var errs []error
	for _, ln := range listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("%s: close %s: %w", g.opts.Name, ln.Addr(), err))
		}
	}
	for _, srv := range servers {
		// Each server is closed once, and the listeners it would report on
		// are closed already.
		if err := srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("%s: close: %w", g.opts.Name, err))
		}
	}
	return errors.Join(errs...)
}

// limitListener counts each connection it accepts in conns, closing the
// oldest that has not logged in when there are too many, and sets its
// pre-login deadline. With tls set it then starts TLS on the connection,
// and wrap (if set) wraps the result.
type limitListener struct {
	net.Listener
	conns   *connTable
	refusal []byte
	tls     *tls.Config
	wrap    func(net.Conn) net.Conn
}

func (l *limitListener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sc := &slotConn{Conn: raw, table: l.conns, refusal: l.refusal, deadline: time.Now().Add(l.conns.preAuth)}
	if evicted := l.conns.admit(sc); evicted != nil {
		go evicted.evict()
	}
	raw.SetReadDeadline(sc.deadline)
	var c net.Conn = sc
	if l.tls != nil {
		c = tls.Server(c, l.tls)
	}
	if l.wrap != nil {
		c = l.wrap(c)
	}
	return c, nil
}

// Log adapts slog to the protocol libraries' Printf/Println loggers; their
// messages are warnings (connection and protocol errors).
type Log struct {
	Logger *slog.Logger
	Prefix string // e.g. "imap: "
}

// Printf logs a formatted warning.
func (l Log) Printf(format string, args ...any) {
	l.Logger.Warn(l.Prefix + fmt.Sprintf(format, args...))
}

// Println logs a warning.
func (l Log) Println(args ...any) { l.Logger.Warn(l.Prefix + fmt.Sprint(args...)) }
