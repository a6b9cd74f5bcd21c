package bridge

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/bridge/carddav"
	"github.com/asmtp/asmtp/bridge/imapserver"
	"github.com/asmtp/asmtp/bridge/inbound"
	"github.com/asmtp/asmtp/bridge/loginlimit"
	"github.com/asmtp/asmtp/bridge/naming"
	"github.com/asmtp/asmtp/bridge/outbound"
	"github.com/asmtp/asmtp/bridge/presence"
	"github.com/asmtp/asmtp/bridge/smtpserver"
	"github.com/asmtp/asmtp/mailstore"
)

// Bridge serves the registry's accounts to mail clients and keeps the node
// in step with the registry (package presence): each account's device key
// is a node user with its passport uploaded, and each contact's topic is
// registered (and its passport uploaded, so the node follows its updates).
type Bridge struct {
	cfg       Config
	log       *slog.Logger
	reg       *accounts.Registry
	mailstore *mailstore.DB
	imap      *imapserver.Server
	imapLn    net.Listener
	smtp      *smtpserver.Server
	smtpLn    net.Listener
	// imapsLn and smtpsLn are the implicit-TLS listeners; nil when off.
	imapsLn net.Listener
	smtpsLn net.Listener
	// dav serves the address books; nil when off.
	dav   *carddav.Server
	davLn net.Listener
	out   *outbound.Worker
	// nodeKey unseals the accounts' shared secrets, which seal and open mail.
	nodeKey ed25519.PrivateKey
	// roster keeps the node in step with the registry, and has the
	// accounts' node sessions.
	roster  *presence.Roster
	workers sync.WaitGroup // the delivery worker, FollowLoop and the inbound workers (goWorker)
	// node is where the accounts are users: its id and address go in
	// their contact cards.
	node *node.Node

	// naming is the accounts' naming-v2 state; nil with Config.NamingV1.
	naming *naming.Accounts
}

// New opens the registry and the mailstore in cfg.DataDir, checks that
// nodeKey is the key the account secrets were sealed with (a wrong key
// password fails here, with ErrWrongNodeKey), and binds the IMAP and SMTP
// listeners (and the implicit-TLS ones, when configured).
// Run serves; the node n must run too (node.Run), beside it.
func New(cfg Config, n *node.Node, nodeKey ed25519.PrivateKey) (*Bridge, error) {
	cfg.setDefaults()
	if cfg.DataDir == "" {
		return nil, errors.New("bridge: Config.DataDir is required")
	}
	if err := accounts.CheckDomain(cfg.Domain); err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	if (cfg.IMAPSAddr != "" || cfg.SMTPSAddr != "") && !cfg.TLS {
		// TLS is what makes the certificate, and says the operator means
		// clients to use one: implicit TLS alone would be half configured.
		return nil, errors.New("bridge: implicit TLS (Config.IMAPSAddr, Config.SMTPSAddr) needs Config.TLS")
	}
	ctx := context.Background()
	reg, err := accounts.OpenRegistry(ctx, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	b := &Bridge{cfg: cfg, log: cfg.Logger, reg: reg, nodeKey: nodeKey, node: n}
	pcfg := presence.Config{Domain: cfg.Domain, RefreshInterval: cfg.RefreshInterval,
		RotationGrace: cfg.rotationGrace, Attached: b.attached, NamingV1: cfg.NamingV1, Logger: cfg.Logger}
	if !cfg.NamingV1 {
		b.naming = naming.New(naming.Config{CardWait: cfg.CardWait, CatchUpDays: cfg.CatchUpDays, NodeKey: nodeKey,
			WakeOutbound: b.wakeOutbound, Logger: cfg.Logger}, reg, n)
		pcfg.Reconciled = b.naming.Reconciled
	}
	b.roster = presence.New(pcfg, reg, n)
	if err := b.open(ctx, nodeKey); err != nil {
		b.close()
		return nil, fmt.Errorf("bridge: %w", err)
	}
	return b, nil
}

func (b *Bridge) open(ctx context.Context, nodeKey ed25519.PrivateKey) error {
	if err := b.reg.CheckNodeKey(ctx, nodeKey); err != nil {
		return err
	}
	var err error
	if b.mailstore, err = accounts.OpenMailstore(ctx, b.cfg.DataDir); err != nil {
		return err
	}
	b.out = outbound.NewWorker(b.cfg.outbound(nodeKey), b.reg, b.mailstore, nodeSessions{b.roster})
	var tlsConfig *tls.Config
	if b.cfg.TLS {
		cert, path, err := auth.LoadOrCreateCertificate(b.cfg.DataDir,
			listenHosts(b.cfg.IMAPAddr, b.cfg.SMTPAddr, b.cfg.IMAPSAddr, b.cfg.SMTPSAddr)...)
		if err != nil {
			return err
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		b.log.Info("bridge TLS: STARTTLS on IMAP and SMTP", "certificate", path)
	}
	// One Authenticator, so IMAP, SMTP and CardDAV logins share its limits.
	logins := accounts.NewAuthenticator(b.reg, b.cfg.Domain, loginlimit.Options{})
	b.imap, err = imapserver.New(imapserver.Options{
		Store:         b.mailstore,
		Authenticator: logins,
		TLSConfig:     tlsConfig,
		SpoolDir:      b.cfg.DataDir,
		Logger:        b.log,
	})
	if err != nil {
		return err
	}
	if b.imapLn, err = b.imap.Listen(b.cfg.IMAPAddr); err != nil {
		return err
	}
	if b.imapsLn, err = listenIfSet(b.imap.Listen, b.cfg.IMAPSAddr); err != nil {
		return err
	}
	b.smtp, err = smtpserver.New(smtpserver.Options{
		Authenticator:   logins,
		Queue:           outbound.NewQueue(b.cfg.Domain, b.reg, b.mailstore, b.out),
		Domain:          b.cfg.Domain,
		MaxMessageBytes: outbound.MaxMessageSize,
		SpoolDir:        b.cfg.DataDir, // on disk: the temporary directory may be memory
		TLSConfig:       tlsConfig,
		Logger:          b.log,
	})
	if err != nil {
		return err
	}
	if b.smtpLn, err = b.smtp.Listen(b.cfg.SMTPAddr); err != nil {
		return err
	}
	if b.smtpsLn, err = listenIfSet(b.smtp.Listen, b.cfg.SMTPSAddr); err != nil {
		return err
	}
	return b.openCardDAV(tlsConfig, logins)
}

// openCardDAV makes the CardDAV server and binds its listener, when
// configured.
func (b *Bridge) openCardDAV(tlsConfig *tls.Config, logins *accounts.Authenticator) error {
	if b.cfg.CardDAVAddr == "" {
		return nil
	}
	var err error
	b.dav, err = carddav.New(carddav.Options{
		Authenticator: logins,
		Book:          accounts.NewAddressBook(b.reg),
		Domain:        b.cfg.Domain,
		Autoconfig: carddav.Autoconfig{
			IMAPAddr: b.cfg.IMAPAddr, SMTPAddr: b.cfg.SMTPAddr,
			IMAPSAddr: b.cfg.IMAPSAddr, SMTPSAddr: b.cfg.SMTPSAddr,
			STARTTLS: b.cfg.TLS, CardDAVAddr: b.cfg.CardDAVAddr,
		},
		TLSConfig: tlsConfig,
		Logger:    b.log,
	})
	if err != nil {
		return err
	}
	b.davLn, err = b.dav.Listen(b.cfg.CardDAVAddr)
	return err
}

// listenIfSet opens addr with listen, unless addr is empty (the port is
// off).
func listenIfSet(listen func(string) (net.Listener, error), addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	return listen(addr)
}

// SMTPAddr is the address the SMTP submission server listens on.
func (b *Bridge) SMTPAddr() net.Addr { return b.smtpLn.Addr() }

// IMAPAddr is the address the IMAP server listens on.
func (b *Bridge) IMAPAddr() net.Addr { return b.imapLn.Addr() }

// IMAPSAddr is the address of the implicit-TLS IMAP port, nil when off.
func (b *Bridge) IMAPSAddr() net.Addr { return addrOf(b.imapsLn) }

// SMTPSAddr is the address of the implicit-TLS SMTP port, nil when off.
func (b *Bridge) SMTPSAddr() net.Addr { return addrOf(b.smtpsLn) }

// CardDAVAddr is the address of the CardDAV server, nil when off.
func (b *Bridge) CardDAVAddr() net.Addr { return addrOf(b.davLn) }

func addrOf(ln net.Listener) net.Addr {
	if ln == nil {
		return nil
	}
	return ln.Addr()
}

// Run serves IMAP and keeps the node in step with the registry until ctx
// is done, then closes everything. It reacts to registry changes made by
// any process (accounts.Registry.Changes), so accounts and contacts added with
// asmtpd-cli take effect without a restart.
func (b *Bridge) Run(ctx context.Context) error {
	defer b.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Each Serve returns once, with nil only after Close: anything
	// received before stop means a server failed.
	serves := b.serves()
	served := make(chan error, len(serves))
	for _, serve := range serves {
		go func() { served <- serve() }()
	}
	kick := make(chan struct{}, 1)
	b.goWorker(func() { b.out.Run(ctx) })
	b.goWorker(func() { b.roster.FollowLoop(ctx, kick) })
	changes := b.reg.Changes(ctx)
	b.log.Info("bridge started", b.listening()...)
	err := b.keepInStep(ctx, changes, served, kick)

	// Stop everything and wait for the goroutines still running.
	cancel()
	b.imap.Close()
	b.smtp.Close()
	if b.dav != nil {
		b.dav.Close()
	}
	serving := len(serves)
	if err != nil {
		serving-- // the one that failed has returned
	}
	for range serving {
		<-served
	}
	b.workers.Wait()
	return err
}

// keepInStep reconciles the node with the registry at start and at each
// change, and retires topics whose grace period ended, until ctx is done
// (nil) or a server fails.
func (b *Bridge) keepInStep(ctx context.Context, changes <-chan struct{}, served <-chan error, kick chan<- struct{}) error {
	// Rotated topics come to the end of their grace period without any
	// registry change: they are looked for every RefreshInterval.
	graceTick := time.NewTicker(b.cfg.RefreshInterval)
	defer graceTick.Stop()
	changed := true
	for {
		if changed {
			b.roster.Reconcile(ctx)
			b.roster.WakeAll()
			select {
			case kick <- struct{}{}:
			default:
			}
		} else {
			b.roster.RetireAll(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-served:
			return fmt.Errorf("bridge: mail server stopped: %w", err)
		case <-changes:
			changed = true
		case <-graceTick.C:
			changed = false
		}
	}
}

// serves are the Serve calls of the servers and ports that are on.
func (b *Bridge) serves() []func() error {
	serves := []func() error{
		func() error { return b.imap.Serve(b.imapLn) },
		func() error { return b.smtp.Serve(b.smtpLn) },
	}
	if b.imapsLn != nil {
		serves = append(serves, func() error { return b.imap.ServeTLS(b.imapsLn) })
	}
	if b.smtpsLn != nil {
		serves = append(serves, func() error { return b.smtp.ServeTLS(b.smtpsLn) })
	}
	if b.davLn != nil {
		serves = append(serves, func() error { return b.dav.Serve(b.davLn) })
	}
	return serves
}

// listening is what "bridge started" logs: the addresses served, and the
// domain.
func (b *Bridge) listening() []any {
	started := []any{"imap", b.imapLn.Addr(), "smtp", b.smtpLn.Addr()}
	if b.imapsLn != nil {
		started = append(started, "imaps", b.imapsLn.Addr())
	}
	if b.smtpsLn != nil {
		started = append(started, "smtps", b.smtpsLn.Addr())
	}
	if b.davLn != nil {
		started = append(started, "carddav", b.davLn.Addr())
	}
	return append(started, "domain", b.cfg.Domain)
}

// goWorker runs fn on a goroutine that Run waits for before it returns.
func (b *Bridge) goWorker(fn func()) {
	b.workers.Add(1)
	go func() {
		defer b.workers.Done()
		fn()
	}()
}

// close releases the sessions and databases.
func (b *Bridge) close() {
	b.roster.Close()
	if b.imap != nil {
		b.imap.Close()
	}
	if b.smtp != nil {
		b.smtp.Close()
	}
	if b.dav != nil {
		b.dav.Close()
	}
	for _, ln := range []net.Listener{b.imapLn, b.smtpLn, b.imapsLn, b.smtpsLn, b.davLn} { // also when never served
		if ln != nil {
			ln.Close()
		}
	}
	if b.mailstore != nil {
		b.mailstore.Close()
	}
	b.reg.Close()
}

// nodeSessions gives the delivery worker the accounts' node sessions.
type nodeSessions struct{ roster *presence.Roster }

// Publisher implements outbound.Sessions: a nil interface, not a nil
// *node.Session in one, while the account is not on the node.
func (n nodeSessions) Publisher(account string) outbound.Publisher {
	if s := n.roster.Session(account); s != nil {
		return s
	}
	return nil
}

// attached starts the inbound worker of an account that came on the node
// (presence.Config.Attached), and wakes the delivery worker for the mail
// queued while it was not.
func (b *Bridge) attached(ctx context.Context, a accounts.Account, s *node.Session) (wake func()) {
	icfg := b.cfg.inbound(b.nodeKey)
	if b.naming != nil {
		if n := b.naming.Start(ctx, a, s); n != nil {
			icfg.Naming = n
		}
	}
	in := inbound.NewWorker(icfg, a.Name, b.reg, b.mailstore, s)
	b.goWorker(func() { in.Run(ctx) })
	b.out.Wake()
	return in.Wake
}

// wakeOutbound wakes the delivery worker, once it is open.
func (b *Bridge) wakeOutbound() {
	if b.out != nil {
		b.out.Wake()
	}
}

// listenHosts are the hosts of addrs, for the certificate's names.
func listenHosts(addrs ...string) []string {
	var hosts []string
	for _, a := range addrs {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}
