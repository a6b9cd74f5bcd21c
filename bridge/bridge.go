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
	"github.com/asmtp/asmtp/bridge/carddav"
	"github.com/asmtp/asmtp/bridge/imapserver"
	"github.com/asmtp/asmtp/bridge/loginlimit"
	"github.com/asmtp/asmtp/bridge/smtpserver"
	"github.com/asmtp/asmtp/mailstore"
)

// Defaults of Config.
const (
	DefaultIMAPAddr        = imapserver.DefaultAddr // 127.0.0.1:1143
	DefaultSMTPAddr        = "127.0.0.1:1587"
	DefaultCardDAVAddr     = carddav.DefaultAddr // 127.0.0.1:1808
	DefaultRefreshInterval = time.Minute
)

// RotationGrace is how long the topic a contact's shared-key rotation
// replaced stays registered, and mail on it sealed with the old key is
// still taken. Mail the contact sent just before rotating may come late:
// its bridge retries for DefaultRetryWindow (4 days), and a node that was
// offline catches up from peers that keep topic messages for
// node.DefaultRetention (30 days). A week covers the retries and a node
// down for a long weekend or a short trip; a longer grace would keep
// accepting a key the contact may have rotated away from because it
// leaked.
const RotationGrace = 7 * 24 * time.Hour

// Config configures a Bridge. DataDir is required; zero values of the
// other fields mean the defaults.
type Config struct {
	// DataDir holds the registry and the mailstore (DefaultDataDir of the
	// node's storage.path for asmtpd).
	DataDir string
	// Domain of the pseudo-addresses. Default DefaultDomain.
	Domain string
	// IMAPAddr is where mail clients read mail. Default DefaultIMAPAddr.
	IMAPAddr string
	// SMTPAddr is where mail clients send mail. Default DefaultSMTPAddr.
	SMTPAddr string
	// TLS turns on STARTTLS for IMAP and SMTP, with a self-signed
	// certificate made on first use in DataDir (imapserver.CertFile, for
	// clients to import). It is required to listen beyond loopback, and
	// for IMAPSAddr and SMTPSAddr.
	TLS bool
	// IMAPSAddr and SMTPSAddr, when set, are extra ports (993 and 465 by
	// convention) where IMAP and SMTP are served over implicit TLS, with
	// the same certificate. They need TLS, and may be on any address since
	// nothing crosses them in clear text. Empty: off.
	IMAPSAddr string
	SMTPSAddr string
	// CardDAVAddr, when set, is where mail clients sync the accounts'
	// address books (CardDAV, with the IMAP/SMTP logins) and fetch
	// Thunderbird's autoconfig file: DefaultCardDAVAddr for asmtpd.
	// Plain HTTP on loopback; elsewhere it needs TLS and serves HTTPS.
	// Empty: off.
	CardDAVAddr string
	// RefreshInterval is how often pending contacts' passports are looked
	// for and contacts' passports are checked for updates (shared-key
	// rotations). Default DefaultRefreshInterval.
	RefreshInterval time.Duration
	// Delivery tunes the outbound queue and inbound reassembly.
	Delivery DeliveryConfig
	// NamingV1 speaks naming v1 only (PROTOCOL.md §11): every contact on
	// its pair topic, every passport on its passport topic, no cards. The
	// release before naming v2 did this; it is kept to measure v2 against
	// and to run as a v1 peer.
	NamingV1 bool
	// CardWait is how long mail to a new contact waits for the contact's
	// card before the contact is taken for a v1 one (naming.go). Default
	// DefaultCardWait.
	CardWait time.Duration
	// CatchUpDays is how many past days of the accounts' inboxes are
	// caught up from their contacts' nodes on start. Default
	// DefaultCatchUpDays.
	CatchUpDays int
	// Logger receives the bridge's logs. Default slog.Default().
	Logger *slog.Logger

	// rotationGrace replaces RotationGrace, in tests.
	rotationGrace time.Duration
}

// DefaultConfig is the configuration with every default, for dataDir.
func DefaultConfig(dataDir string) Config {
	c := Config{DataDir: dataDir}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	if c.IMAPAddr == "" {
		c.IMAPAddr = DefaultIMAPAddr
	}
	if c.SMTPAddr == "" {
		c.SMTPAddr = DefaultSMTPAddr
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.CardWait <= 0 {
		c.CardWait = DefaultCardWait
	}
	if c.CatchUpDays <= 0 {
		c.CatchUpDays = DefaultCatchUpDays
	}
	if c.rotationGrace <= 0 {
		c.rotationGrace = RotationGrace
	}
	c.Delivery.setDefaults()
}

// Bridge serves the registry's accounts to mail clients and keeps the node
// in step with the registry: each account's device key is a node user with
// its passport uploaded, and each contact's topic is registered (and its
// passport uploaded, so the node follows its updates).
type Bridge struct {
	cfg    Config
	log    *slog.Logger
	node   *node.Node
	reg    *Registry
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
	out   *deliverer
	// nodeKey unseals the accounts' shared secrets, which seal and open mail.
	nodeKey ed25519.PrivateKey
	workers sync.WaitGroup // inbound workers

	mu    sync.Mutex
	links map[string]*accountLink // by account name
}

// accountLink is an account's presence on the node.
type accountLink struct {
	session *node.Session
	inbound *inboundWorker
	// registered are the topics registered by this process; only the Run
	// goroutine (reconcile) touches it.
	registered map[topic.Topic]bool
	// naming is the account's naming-v2 state, set by the first
	// reconcile (naming.go).
	naming *accountNaming
}

// naming is the account's naming-v2 state, nil before its first
// reconcile.
func (b *Bridge) naming(account string) *accountNaming {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l := b.links[account]; l != nil {
		return l.naming
	}
	return nil
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
	if err := CheckDomain(cfg.Domain); err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	if (cfg.IMAPSAddr != "" || cfg.SMTPSAddr != "") && !cfg.TLS {
		// TLS is what makes the certificate, and says the operator means
		// clients to use one: implicit TLS alone would be half configured.
		return nil, errors.New("bridge: implicit TLS (Config.IMAPSAddr, Config.SMTPSAddr) needs Config.TLS")
	}
	ctx := context.Background()
	reg, err := OpenRegistry(ctx, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	b := &Bridge{cfg: cfg, log: cfg.Logger, node: n, reg: reg, links: make(map[string]*accountLink), nodeKey: nodeKey}
	b.out = newDeliverer(b)
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
	if b.mail, err = OpenMailstore(ctx, b.cfg.DataDir); err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if b.cfg.TLS {
		cert, path, err := imapserver.LoadOrCreateCertificate(b.cfg.DataDir,
			listenHosts(b.cfg.IMAPAddr, b.cfg.SMTPAddr, b.cfg.IMAPSAddr, b.cfg.SMTPSAddr)...)
		if err != nil {
			return err
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		b.log.Info("bridge TLS: STARTTLS on IMAP and SMTP", "certificate", path)
	}
	// One Authenticator, so IMAP, SMTP and CardDAV logins share its limits.
	auth := NewAuthenticator(b.reg, b.cfg.Domain, loginlimit.Options{})
	b.imap, err = imapserver.New(imapserver.Options{
		Store:         b.mail,
		Authenticator: auth,
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
		Authenticator:   auth,
		Queue:           submissionQueue{b},
		Domain:          b.cfg.Domain,
		MaxMessageBytes: MaxMessageSize,
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
	return b.openCardDAV(tlsConfig, auth)
}

// openCardDAV makes the CardDAV server and binds its listener, when
// configured.
func (b *Bridge) openCardDAV(tlsConfig *tls.Config, auth *Authenticator) error {
	if b.cfg.CardDAVAddr == "" {
		return nil
	}
	var err error
	b.dav, err = carddav.New(carddav.Options{
		Authenticator: auth,
		Book:          addressBook{b.reg},
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
	// Each Serve returns once, with nil only after Close: anything
	// received before stop means a server failed.
	served := make(chan error, len(serves))
	for _, serve := range serves {
		go func() { served <- serve() }()
	}
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		b.out.run(ctx)
	}()
	followed := make(chan struct{})
	kick := make(chan struct{}, 1)
	go func() {
		defer close(followed)
		b.followLoop(ctx, kick)
	}()
	// stop stops everything and waits for the serving goroutines still
	// running.
	stop := func(serving int) {
		cancel()
		b.imap.Close()
		b.smtp.Close()
		if b.dav != nil {
			b.dav.Close()
		}
		for range serving {
			<-served
		}
		<-followed
		<-delivered
		b.workers.Wait()
	}

	changes := b.reg.Changes(ctx)
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
	b.log.Info("bridge started", append(started, "domain", b.cfg.Domain)...)
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
			stop(len(serves))
			return nil
		case err := <-served:
			stop(len(serves) - 1)
			return fmt.Errorf("bridge: mail server stopped: %w", err)
		case <-changes:
			changed = true
		case <-graceTick.C:
			changed = false
		}
	}
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
		if !b.cfg.NamingV1 {
			b.reconcileNaming(ctx, a, l)
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
		if a, err := b.reg.Account(ctx, name); err == nil && !b.cfg.NamingV1 {
			b.reconcileNaming(ctx, a, l) // the day's inbox, cards not answered
		}
	}
}

// link makes the account's device key a node user, attaches it and
// uploads the account's passport (so others can fetch it), once.
func (b *Bridge) link(ctx context.Context, a Account) (*accountLink, error) {
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
	if err := b.keepPassport(ctx, s, a.Blocks); err != nil {
		s.Close()
		return nil, fmt.Errorf("upload passport: %w", err)
	}
	l = &accountLink{session: s, registered: make(map[topic.Topic]bool), inbound: newInboundWorker(b, a.Name, s)}
	b.mu.Lock()
	b.links[a.Name] = l
	b.mu.Unlock()
	b.workers.Add(1)
	go func() {
		defer b.workers.Done()
		l.inbound.run(ctx)
	}()
	b.out.wake() // mail queued for the account while it was not on the node
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
	namings, err := b.reg.Namings(ctx, account)
	if err != nil {
		b.log.Error("bridge: read contact naming", "account", account, "err", err)
		return
	}
	for _, c := range contacts {
		// Only a v1 contact has a pair topic and a passport topic (§16.8).
		if c.Pending() || l.registered[c.Topic] || b.schemeOf(namings[c.Passport]) != SchemeV1 {
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
		if l.registered[c.Topic] || b.schemeOf(namings[c.Passport]) != SchemeV1 {
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
