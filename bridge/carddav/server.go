// Package carddav serves the bridge's address books to mail clients over
// CardDAV (RFC 6352), with go-webdav, beside IMAP and SMTP: one book per
// account, at /dav/<account>/books/contacts/, every contact a vCard 4.0
// whose FN is the petname and EMAIL the pseudo-address, with the
// passport id in X-ASMTP-PASSPORT. A card a client creates or edits adds
// or renames a contact; deleting it removes the contact.
//
// Logins are the bridge's (HTTP Basic with the IMAP/SMTP username and
// password) and are throttled per source address like theirs. The same
// port serves Thunderbird's autoconfig file (config-v1.1.xml) without a
// login, since it holds only ports and the username rule. Like IMAP and
// SMTP, it serves plain text on loopback only; beyond loopback it needs a
// TLS configuration and serves HTTPS.
package carddav

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-webdav/carddav"

	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/bridge/listen"
	"github.com/asmtp/asmtp/bridge/loginlimit"
)

// Defaults of Options.
const (
	DefaultAddr           = "127.0.0.1:1808"
	DefaultMaxConnections = 64
	// DefaultMaxCardBytes bounds an uploaded vCard: a petname and an
	// address need a few hundred bytes; a client's card with a photo is
	// refused rather than read into memory.
	DefaultMaxCardBytes = 64 << 10
	// DefaultTimeout bounds reading a request and writing its answer.
	DefaultTimeout = 30 * time.Second
	// maxHeaderBytes bounds a request's header.
	maxHeaderBytes = 16 << 10
	// maxQueryBytes bounds the body of the other requests (PROPFIND,
	// REPORT): an addressbook-multiget of thousands of cards fits.
	maxQueryBytes = 1 << 20
)

// Options configure a Server. Authenticator and Book are required.
type Options struct {
	Authenticator auth.Authenticator
	Book          Book
	// Domain of the pseudo-addresses. Required.
	Domain string
	// Autoconfig is what the config-v1.1.xml it serves says.
	Autoconfig Autoconfig
	// TLSConfig lets the server listen beyond loopback, serving HTTPS there.
	TLSConfig *tls.Config
	// MaxConnections bounds concurrent connections; more are closed.
	// Default DefaultMaxConnections.
	MaxConnections int
	// MaxCardBytes bounds a request body. Default DefaultMaxCardBytes.
	MaxCardBytes int64
	// Timeout bounds each request. Default DefaultTimeout.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Server is the CardDAV and autoconfig HTTP server.
type Server struct {
	opts  Options
	log   *slog.Logger
	group *listen.Group
	http  *http.Server
}

// New checks opts and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Authenticator == nil || opts.Book == nil || opts.Domain == "" {
		return nil, errors.New("carddav: Options.Authenticator, Options.Book and Options.Domain are required")
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.MaxCardBytes <= 0 {
		opts.MaxCardBytes = DefaultMaxCardBytes
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, log: opts.Logger}
	s.group = listen.NewGroup(listen.GroupOptions{
		Name:           "carddav",
		DefaultAddr:    DefaultAddr,
		TLSConfig:      opts.TLSConfig,
		MaxConnections: opts.MaxConnections,
		Refusal:        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
	})
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: opts.Timeout,
		ReadTimeout:       opts.Timeout,
		WriteTimeout:      opts.Timeout,
		IdleTimeout:       2 * opts.Timeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return s.group.Context() },
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Listen opens a TCP listener for Serve, refusing a non-loopback address
// unless TLS is configured.
func (s *Server) Listen(addr string) (net.Listener, error) { return s.group.Listen(addr) }

// Serve serves on ln until Close: plain HTTP on loopback, HTTPS elsewhere
// (which needs Options.TLSConfig). HTTP has no STARTTLS, so a port beyond
// loopback is TLS from the first byte.
func (s *Server) Serve(ln net.Listener) error {
	if listen.IsLoopback(ln.Addr().String()) {
		return s.group.Serve(ln, func(bool) listen.Server { return httpServer{s.http} }, nil)
	}
	return s.group.ServeTLS(ln, httpServer{s.http}, nil)
}

// Close stops the listeners and closes the connections.
func (s *Server) Close() error { return s.group.Close() }

// httpServer is an http.Server as a listen.Server.
type httpServer struct{ *http.Server }

func (h httpServer) Serve(ln net.Listener) error {
	err := h.Server.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// routes: the autoconfig file without a login, everything else (CardDAV,
// /.well-known/carddav) with one.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	autoconfig := http.HandlerFunc(s.serveAutoconfig)
	for _, p := range AutoconfigPaths {
		mux.Handle(p, autoconfig)
	}
	mux.Handle("/", http.HandlerFunc(s.serveDAV))
	return mux
}

// serveDAV authenticates the request and serves the account's address
// book.
func (s *Server) serveDAV(w http.ResponseWriter, r *http.Request) {
	account, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	// go-webdav answers a PROPFIND on another principal with an empty
	// multistatus; nothing under another account's path is served at all.
	if p := path.Clean(r.URL.Path); strings.HasPrefix(p, davPrefix+"/") && p != davPrefix+"/"+account &&
		!strings.HasPrefix(p, davPrefix+"/"+account+"/") {
		http.Error(w, "Not found", http.StatusNotFound)
		return
	}
	limit := int64(maxQueryBytes)
	if r.Method == http.MethodPut {
		limit = s.opts.MaxCardBytes
	}
	if r.ContentLength > limit {
		http.Error(w, fmt.Sprintf("The request is over %d bytes; a contact's card is a name and an address", limit),
			http.StatusRequestEntityTooLarge)
		return
	}
	if r.ContentLength != 0 {
		// Not around an empty body: go-webdav tells one by a zero-length
		// Read returning io.EOF, which MaxBytesReader does not.
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	b := &backend{s: s, account: account}
	h := &carddav.Handler{Backend: b, Prefix: davPrefix}
	if r.Method == "PROPFIND" {
		serveWithAnswers(w, r, h, b.answer(r.Context()))
		return
	}
	h.ServeHTTP(w, r)
}

// authenticate checks the request's Basic credentials, answering 401 when
// they do not open an account, or 429 when the Authenticator's limits
// refused to check them (it is the one IMAP and SMTP share).
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	user, password, ok := r.BasicAuth()
	if !ok {
		challenge(w)
		return "", false
	}
	account, err := s.opts.Authenticator.Authenticate(r.Context(), user, password, remoteAddr(r))
	var busy *loginlimit.BusyError
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		s.log.Info("carddav: failed login", "source", loginlimit.Source(remoteAddr(r)))
		challenge(w)
		return "", false
	case errors.As(err, &busy):
		w.Header().Set("Retry-After", strconv.Itoa(int(busy.RetryIn.Seconds())+1))
		http.Error(w, "Too many login attempts, try again later", http.StatusTooManyRequests)
		return "", false
	case err != nil:
		s.log.Error("carddav: authenticator failed", "err", err)
		http.Error(w, "Authentication is unavailable", http.StatusServiceUnavailable)
		return "", false
	}
	return account, true
}

func challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="ASMTP bridge", charset="UTF-8"`)
	http.Error(w, "Log in with the bridge's username and password", http.StatusUnauthorized)
}

// remoteAddr is the request's client address as a net.Addr.
func remoteAddr(r *http.Request) net.Addr {
	addr, err := net.ResolveTCPAddr("tcp", r.RemoteAddr)
	if err != nil {
		return nil
	}
	return addr
}

// URL is the address clients are given for the server listening on addr.
func URL(addr string, tls bool) string {
	scheme := "http"
	if tls && !listen.IsLoopback(addr) {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s/", scheme, addr)
}
