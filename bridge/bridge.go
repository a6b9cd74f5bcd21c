package bridge

import (
	"bytes"
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
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/bridge/carddav"
	"github.com/asmtp/asmtp/bridge/imapserver"
	"github.com/asmtp/asmtp/bridge/inbound"
	"github.com/asmtp/asmtp/bridge/loginlimit"
	"github.com/asmtp/asmtp/bridge/outbound"
	"github.com/asmtp/asmtp/bridge/smtpserver"
	"github.com/asmtp/asmtp/mailstore"
)

// Bridge serves the registry's accounts to mail clients and keeps the node
// in step with the registry: each account's device key is a node user with
// its passport uploaded, and each contact's topic is registered (and its
// passport uploaded, so the node follows its updates).
type Bridge struct {
	cfg    Config
	log    *slog.Logger
	node   *node.Node
	reg    *accounts.Registry
	mail   *mailstore.DB
	imap   *imapserver.Server
	imapLn net.Listener
	smtp   *smtpserver.Server
	smtpLn net.Listener
	// imapsLn and smtpsLn are the implicit-TLS listeners; nil when off.
	imapsLn net.Listener
	smtpsLn net.Listener
	// dav serves the address books; nil when off.
	dav   *carddav.Server
	davLn net.Listener
	out   *outbound.Worker
	// nodeKey unseals the accounts' shared secrets, which seal and open mail.
	nodeKey ed25519.PrivateKey
	workers sync.WaitGroup // the delivery worker, followLoop and the inbound workers (goWorker)

	mu    sync.Mutex
	links map[string]*accountLink // by account name
}

// accountLink is an account's presence on the node.
type accountLink struct {
	session *node.Session
	inbound *inbound.Worker
	// registered are the topics registered by this process; only the Run
	// goroutine (reconcile) touches it.
	registered map[topic.Topic]bool
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
	b := &Bridge{cfg: cfg, log: cfg.Logger, node: n, reg: reg, links: make(map[string]*accountLink), nodeKey: nodeKey}
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
	if b.mail, err = accounts.OpenMailstore(ctx, b.cfg.DataDir); err != nil {
		return err
	}
	b.out = outbound.NewWorker(b.cfg.outbound(nodeKey), b.reg, b.mail, nodeSessions{b})
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
		Store:         b.mail,
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
		Queue:           outbound.NewQueue(b.cfg.Domain, b.reg, b.mail, b.out),
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
// any process (Registry.Changes), so accounts and contacts added with
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
	b.goWorker(func() { b.followLoop(ctx, kick) })
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
			b.reconcile(ctx)
			b.wakeInbound()
			select {
			case kick <- struct{}{}:
			default:
			}
		} else {
			b.retireAll(ctx)
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

// graceStart is when a rotation must have been made for its old topic to
// be still in its grace period.
func (b *Bridge) graceStart() time.Time { return time.Now().Add(-b.cfg.rotationGrace) }

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

// close releases the sessions and databases.
func (b *Bridge) close() {
	b.mu.Lock()
	for _, l := range b.links {
		l.session.Close()
	}
	b.links = nil
	b.mu.Unlock()
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
	if b.mail != nil {
		b.mail.Close()
	}
	b.reg.Close()
}

// reconcile brings the node in line with the registry. Everything it does
// is idempotent; what fails is logged and tried again at the next change.
func (b *Bridge) reconcile(ctx context.Context) {
	accounts, err := b.reg.Accounts(ctx)
	if err != nil {
		b.log.Error("bridge: read accounts", "err", err)
		return
	}
	for _, a := range accounts {
		l, err := b.link(ctx, a)
		if err != nil {
			b.log.Warn("bridge: account not on the node yet", "account", a.Name, "err", err)
			continue
		}
		b.registerContacts(ctx, a.Name, l)
		b.retireTopics(ctx, a.Name, l)
	}
}

// retireAll deregisters the retired topics of the accounts on the node.
func (b *Bridge) retireAll(ctx context.Context) {
	b.mu.Lock()
	links := make(map[string]*accountLink, len(b.links))
	for name, l := range b.links {
		links[name] = l
	}
	b.mu.Unlock()
	for name, l := range links {
		b.retireTopics(ctx, name, l)
	}
}

// link makes the account's device key a node user, attaches it and
// uploads the account's passport (so others can fetch it), once.
func (b *Bridge) link(ctx context.Context, a accounts.Account) (*accountLink, error) {
	b.mu.Lock()
	l := b.links[a.Name]
	b.mu.Unlock()
	if l != nil {
		return l, nil
	}
	b.node.AddUser(a.Device)
	s, err := b.node.Attach(a.Device)
	if err != nil {
		return nil, err
	}
	if _, err := s.PutPassport(ctx, a.Blocks); err != nil {
		s.Close()
		return nil, fmt.Errorf("upload passport: %w", err)
	}
	l = &accountLink{session: s, registered: make(map[topic.Topic]bool), inbound: inbound.NewWorker(b.cfg.inbound(b.nodeKey), a.Name, b.reg, b.mail, s)}
	b.mu.Lock()
	b.links[a.Name] = l
	b.mu.Unlock()
	b.goWorker(func() { l.inbound.Run(ctx) })
	b.out.Wake() // mail queued for the account while it was not on the node
	b.log.Info("bridge: account on the node", "account", a.Name, "address", a.Address(b.cfg.Domain), "device", a.Device)
	return l, nil
}

// registerContacts registers the topics of the account's contacts, and
// uploads their passports so the node applies their updates. Registering
// makes the node fetch what the contact already sent from other nodes.
func (b *Bridge) registerContacts(ctx context.Context, account string, l *accountLink) {
	contacts, err := b.reg.Contacts(ctx, account)
	if err != nil {
		b.log.Error("bridge: read contacts", "account", account, "err", err)
		return
	}
	for _, c := range contacts {
		if c.Pending() || l.registered[c.Topic] {
			continue
		}
		if _, err := l.session.PutPassport(ctx, c.Blocks); err != nil {
			b.log.Warn("bridge: upload contact passport", "account", account, "passport", c.Passport, "err", err)
			continue
		}
		if err := l.session.Register(ctx, c.Topic); err != nil {
			b.log.Warn("bridge: register contact topic", "account", account, "passport", c.Passport, "err", err)
			continue
		}
		l.registered[c.Topic] = true
		b.log.Info("bridge: contact topic registered", "account", account, "passport", c.Passport)
	}
	// A rotated contact's old topic stays registered for its grace period,
	// also across a restart (registering again makes the node catch up on
	// it, fetching what the contact sent there while the node was down).
	rotated, err := b.reg.RotatedContacts(ctx, account, b.graceStart())
	if err != nil {
		b.log.Error("bridge: read rotated contacts", "account", account, "err", err)
		return
	}
	for _, c := range rotated {
		if l.registered[c.Topic] {
			continue
		}
		if err := l.session.Register(ctx, c.Topic); err != nil {
			b.log.Warn("bridge: register a rotated contact's old topic", "account", account, "passport", c.Passport, "err", err)
			continue
		}
		l.registered[c.Topic] = true
		b.log.Info("bridge: rotated contact's old topic registered for its grace period", "account", account, "passport", c.Passport)
	}
}

// retireTopics deregisters the topics of removed contacts, and of
// replaced shared keys once their grace period is over. A topic is
// forgotten only after the node deregistered it, so a crash in between
// deregisters it again at the next start.
func (b *Bridge) retireTopics(ctx context.Context, account string, l *accountLink) {
	topics, err := b.reg.RetiredTopics(ctx, account, b.graceStart())
	if err != nil {
		b.log.Error("bridge: read retired topics", "account", account, "err", err)
		return
	}
	for _, t := range topics {
		if err := l.session.Deregister(ctx, t); err != nil {
			b.log.Warn("bridge: deregister topic", "account", account, "err", err)
			continue
		}
		delete(l.registered, t)
		if err := b.reg.ForgetRetiredTopic(ctx, account, t); err != nil {
			b.log.Error("bridge: forget retired topic", "account", account, "err", err)
		}
	}
}

// followLoop runs follow when kicked (after each reconcile) and every
// RefreshInterval.
func (b *Bridge) followLoop(ctx context.Context, kick <-chan struct{}) {
	t := time.NewTicker(b.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-t.C:
		}
		b.follow(ctx)
	}
}

// follow fetches each contact's passport from the node, which asks the
// network for the ones it lacks (pending contacts) and applies the updates
// published on the topics of those it has. A copy that extends the stored
// one is recorded; the registry change then makes reconcile register the
// new topic (the old one is kept for RotationGrace). It runs beside
// reconcile because fetching from the network may take
// Config.PassportTimeout of the node per contact.
func (b *Bridge) follow(ctx context.Context) {
	b.mu.Lock()
	sessions := make(map[string]*node.Session, len(b.links))
	for name, l := range b.links {
		sessions[name] = l.session
	}
	b.mu.Unlock()
	for account, s := range sessions {
		contacts, err := b.reg.Contacts(ctx, account)
		if err != nil {
			b.log.Error("bridge: read contacts", "account", account, "err", err)
			continue
		}
		for _, c := range contacts {
			blocks, err := s.GetPassport(ctx, c.Passport)
			if err != nil {
				b.log.Debug("bridge: contact passport not available", "account", account, "passport", c.Passport, "err", err)
				continue
			}
			if bytes.Equal(blocks, c.Blocks) {
				continue
			}
			updated, changed, err := b.reg.UpdateContactPassport(ctx, account, c.Passport, blocks)
			switch {
			case err != nil:
				b.log.Warn("bridge: contact passport not taken", "account", account, "passport", c.Passport, "err", err)
			case changed && c.Pending():
				b.log.Info("bridge: contact passport fetched", "account", account, "passport", c.Passport)
			case changed && updated.SharedKey != c.SharedKey:
				b.log.Info("bridge: contact rotated its shared key", "account", account, "passport", c.Passport)
			}
		}
	}
}

// session is the account's node session, or nil before it is attached.
func (b *Bridge) session(account string) *node.Session {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l := b.links[account]; l != nil {
		return l.session
	}
	return nil
}

// nodeSessions gives the delivery worker the accounts' node sessions.
type nodeSessions struct{ b *Bridge }

// Publisher implements outbound.Sessions: a nil interface, not a nil
// *node.Session in one, while the account is not on the node.
func (n nodeSessions) Publisher(account string) outbound.Publisher {
	if s := n.b.session(account); s != nil {
		return s
	}
	return nil
}

// wakeInbound tells every account's inbound worker that topics may have
// been registered.
func (b *Bridge) wakeInbound() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.links {
		l.inbound.Wake()
	}
}
