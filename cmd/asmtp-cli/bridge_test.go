package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/mail"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/mailtext"
	"github.com/asmtp/asmtp/bridge/outbound"
	"github.com/asmtp/asmtp/internal/wait"
)

// bridgeTestNodeConfig is a node on loopback with fast gossip; the query
// rate peers allow is raised as much, as in the bridge's own tests (the
// node paces its catch-up queries per gossip round, which would otherwise
// exceed the default rate and get it quarantined by its peers).
func bridgeTestNodeConfig(t *testing.T, key ed25519.PrivateKey, users []keys.PublicKey, peers ...node.Peer) node.Config {
	cfg := node.DefaultConfig()
	cfg.Key = key
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.StoragePath = filepath.Join(t.TempDir(), "node.db")
	cfg.Users = users
	cfg.KnownPeers = peers
	cfg.GossipInterval = 100 * time.Millisecond
	cfg.PersistInterval = 500 * time.Millisecond
	cfg.PassportTimeout = 2 * time.Second
	cfg.QueryRate, cfg.QueryBurst = 100*node.DefaultQueryRate, 100*node.DefaultQueryBurst
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("ASMTP_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

// runInTest runs fn in a goroutine until the test's cleanup cancels it.
func runInTest(t *testing.T, what string, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Logf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Logf("%s: still shutting down after 10 s", what)
		}
	})
}

// fetchInbox returns the raw messages in user's INBOX, read over IMAP.
func fetchInbox(t *testing.T, addr, user, pw string) [][]byte {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatalf("IMAP login: %v", err)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("IMAP select: %v", err)
	}
	if sel.NumMessages == 0 {
		c.Logout().Wait()
		return nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(seqRange(sel.NumMessages)...), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("IMAP fetch: %v", err)
	}
	var out [][]byte
	for _, m := range msgs {
		out = append(out, m.FindBodySection(section))
	}
	c.Logout().Wait()
	return out
}

func seqRange(n uint32) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = uint32(i + 1)
	}
	return s
}

// bridgeWorld is node A with a bridge and its account carol, and node C
// with dave, an asmtp-cli user; carol and dave hold each other's
// passport.
type bridgeWorld struct {
	reg          *accounts.Registry
	br           *bridge.Bridge
	nodeA, nodeC *node.Node
	carol        accounts.Account
	carolPW      string
	dave         *device
	davePassport string
	daveContact  accounts.Contact // dave as carol's contact
}

// startBridgeWorld starts the nodes and the bridge (speaking only naming
// v1 when namingV1) and introduces carol and dave.
func startBridgeWorld(t *testing.T, namingV1 bool) *bridgeWorld {
	ctx := context.Background()
	// Node A with a bridge and its account carol.
	bridgeDir := t.TempDir()
	nodeKeyA := newNodeKey(t)
	reg, err := accounts.OpenRegistry(ctx, bridgeDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	store, err := accounts.OpenMailstore(ctx, bridgeDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	w := &bridgeWorld{}
	carol, carolPW, err := reg.CreateAccount(ctx, store, nodeKeyA, "carol", "")
	if err != nil {
		t.Fatal(err)
	}
	nodeA, err := node.New(bridgeTestNodeConfig(t, nodeKeyA, nil))
	if err != nil {
		t.Fatal(err)
	}
	runInTest(t, "node A", nodeA.Run)
	br, err := bridge.New(bridge.Config{DataDir: bridgeDir, IMAPAddr: "127.0.0.1:0", SMTPAddr: "127.0.0.1:0",
		RefreshInterval: 200 * time.Millisecond, NamingV1: namingV1,
		Delivery: bridge.DeliveryConfig{Pacing: outbound.Pacing{RetryWindow: 20 * time.Second, FirstRetry: 200 * time.Millisecond,
			MaxRetry: time.Second, LookupInterval: 20 * time.Millisecond}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nodeA, nodeKeyA)
	if err != nil {
		t.Fatal(err)
	}
	runInTest(t, "bridge", br.Run)

	// Node C with dave, an asmtp-cli user.
	dave := newDevice(t, "dave")
	daveKey, davePassport := dave.identity()
	nodeC, err := node.New(bridgeTestNodeConfig(t, newNodeKey(t), []keys.PublicKey{daveKey},
		node.Peer{ID: nodeA.ID(), Address: nodeA.Addr().String()}))
	if err != nil {
		t.Fatal(err)
	}
	runInTest(t, "node C", nodeC.Run)
	dave.env[envRemoteAddress] = nodeC.Addr().String()
	dave.env[envRemoteID] = nodeC.ID().String()

	// Passports: carol's from the registry, dave's from --export-passport.
	carolFile := filepath.Join(t.TempDir(), "carol.passport")
	if err := os.WriteFile(carolFile, carol.Blocks, 0o600); err != nil {
		t.Fatal(err)
	}
	daveFile := filepath.Join(t.TempDir(), "dave.passport")
	dave.must("--export-passport", daveFile)
	daveBlocks, err := os.ReadFile(daveFile)
	if err != nil {
		t.Fatal(err)
	}
	daveContact, err := reg.AddContact(ctx, "carol", "Dave", daveBlocks)
	if err != nil {
		t.Fatalf("carol adds dave's exported passport: %v", err)
	}
	if daveContact.Passport.String() != davePassport {
		t.Fatalf("the bridge reads dave's passport as %s, asmtp-cli says %s", daveContact.Passport, davePassport)
	}
	dave.must("--import-passport", carolFile, "--name", "carol")
	carolID := carol.Passport.String()
	if contacts := dave.must("contacts"); contacts != "carol "+carolID+" 0 awaiting-card\n" {
		t.Fatalf("dave's contacts = %q", contacts)
	}
	*w = bridgeWorld{reg: reg, br: br, nodeA: nodeA, nodeC: nodeC, carol: carol, carolPW: carolPW,
		dave: dave, davePassport: davePassport, daveContact: daveContact}
	return w

}

// An asmtp-cli user (dave, a user of node C) and a bridge account (carol,
// on node A's bridge) exchange mail both ways on naming v2: carol's mail,
// sent with an SMTP client, shows in dave's sync and read with its subject
// and body; dave's reaches carol's INBOX, read with an IMAP client, from
// dave's pseudo-address under carol's petname for him.
func TestBridgeAccountAndCLIUser(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	w := startBridgeWorld(t, false)
	reg, nodeC, dave, daveContact := w.reg, w.nodeC, w.dave, w.daveContact

	// Naming v2 both ways, with no fallback to the pair topic (CardWait
	// is the default day): the bridge sends carol's card to dave's intro
	// bucket, dave's sync sends his to carol's; each side takes the
	// other's and answers it. Both then see the other as a v2 contact.
	awaitV2(t, dave, "carol")
	wait.Until(t, 30*time.Second, "the bridge to take dave's card", func() bool {
		n, err := reg.ContactNaming(ctx, "carol", daveContact.Passport)
		if err != nil {
			t.Fatal(err)
		}
		return n.Scheme == accounts.SchemeV2
	})
	if n, _ := reg.ContactNaming(ctx, "carol", daveContact.Passport); n.Card == nil || n.Card.Node != nodeC.ID() || n.Card.Addr != nodeC.Addr().String() {
		t.Fatalf("carol's record of dave's card: %+v, want node C %s at %s", n.Card, nodeC.ID(), nodeC.Addr())
	}
	t.Logf("set up in %v", time.Since(start).Round(time.Millisecond))
	exchangeMail(t, w)
	if contacts := dave.must("contacts"); contacts != "carol "+w.carol.Passport.String()+" 1 v2\n" {
		t.Errorf("dave's contacts = %q", contacts)
	}

	// Neither node's gossip shows the pair: no pair topic, no passport
	// topic of carol or dave (§16.8: only a v1 contact shows them).
	for name, n := range map[string]*node.Node{"A": w.nodeA, "C": nodeC} {
		for _, sub := range n.Gossip().Subscriptions {
			switch sub.Topic {
			case daveContact.Topic, topic.ForPassport(w.carol.Passport), topic.ForPassport(daveContact.Passport):
				t.Errorf("node %s's gossip lists %s", name, sub.Topic)
			}
		}
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// An asmtp-cli user whose contact never answers its card (a bridge that
// speaks only naming v1) takes it for a v1 contact after --card-wait:
// `contacts` says v1, and mail goes both ways on the pair topic.
func TestCLIFallsBackToV1(t *testing.T) {
	w := startBridgeWorld(t, true)
	wait.Until(t, 30*time.Second, "dave to take carol for a v1 contact", func() bool {
		w.dave.must("--card-wait", "1s", "sync")
		return strings.HasSuffix(w.dave.must("contacts"), " v1\n")
	})
	// The bridge registers the pair topic once it sees the contact: wait
	// for carol's node to know dave's holds it, or what it publishes
	// before would reach dave's node only at its next catch-up.
	var holders *node.Session
	wait.Until(t, 30*time.Second, "node A to know a holder of carol's topic with dave", func() bool {
		var err error
		if holders == nil { // the bridge adds carol's user to the node as it starts
			if holders, err = w.nodeA.Attach(w.carol.Device); err != nil {
				holders = nil
				return false
			}
		}
		return holders.Holders(w.daveContact.Topic, 1) > 0
	})
	holders.Close()
	exchangeMail(t, w)
	if contacts := w.dave.must("contacts"); contacts != "carol "+w.carol.Passport.String()+" 1 v1\n" {
		t.Errorf("dave's contacts = %q", contacts)
	}
}

// exchangeMail sends carol's mail to dave and dave's answer to carol, and
// checks what each reads.
func exchangeMail(t *testing.T, w *bridgeWorld) {
	carol, carolPW, dave, davePassport, br := w.carol, w.carolPW, w.dave, w.davePassport, w.br
	carolID := carol.Passport.String()
	// Carol → dave over the bridge's SMTP with AUTH PLAIN.
	sent := time.Now()
	carolAddr, daveAddr := carol.Address("asmtp").String(), davePassport+"@asmtp"
	msg := "From: Carol <" + carolAddr + ">\r\nTo: Dave <" + daveAddr + ">\r\nSubject: Lunch on Friday\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nShall we meet at noon? — Carol\r\n"
	smtpAddr := br.SMTPAddr().String()
	if err := smtp.SendMail(smtpAddr, smtp.PlainAuth("", "carol", carolPW, "127.0.0.1"), carolAddr, []string{daveAddr}, []byte(msg)); err != nil {
		t.Fatalf("SMTP: %v", err)
	}
	var got string
	wait.Until(t, 20*time.Second, "carol's mail in dave's sync", func() bool {
		got = dave.must("sync")
		return got != ""
	})
	t.Logf("carol → dave: SMTP to dave's sync in %v", time.Since(sent).Round(time.Millisecond))
	if !regexp.MustCompile(`^\S+ carol Lunch on Friday\n$`).MatchString(got) {
		t.Fatalf("dave's sync printed %q, want one line <time> carol Lunch on Friday", got)
	}
	list := strings.Fields(dave.must("list", "--from", "carol"))
	if len(list) < 1 {
		t.Fatalf("dave's list: %q", list)
	}
	shown := dave.must("read", list[0])
	for _, want := range []string{"From:     carol <" + carolID + "@asmtp> (sender verified by key)", "Subject:  Lunch on Friday", "Shall we meet at noon? — Carol"} {
		if !strings.Contains(shown, want) {
			t.Errorf("dave's read lacks %q:\n%s", want, shown)
		}
	}

	// Dave → carol with asmtp-cli send; carol reads it over IMAP.
	mailFile := writeFile(t, "reply.eml", "From: Dave <dave@example.com>\r\nSubject: Re: Lunch on Friday\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\nNoon is fine. Dave\r\n")
	sent = time.Now()
	if out := dave.must("send", "--to", "carol", "--file", mailFile); !strings.HasPrefix(out, "sent ") {
		t.Fatalf("send printed %q", out)
	}
	imapAddr := br.IMAPAddr().String()
	var inbox [][]byte
	wait.Until(t, 20*time.Second, "dave's mail in carol's INBOX", func() bool {
		inbox = fetchInbox(t, imapAddr, "carol", carolPW)
		return len(inbox) > 0
	})
	t.Logf("dave → carol: send to IMAP INBOX in %v", time.Since(sent).Round(time.Millisecond))
	if len(inbox) != 1 {
		t.Fatalf("carol's INBOX has %d messages, want 1", len(inbox))
	}
	m, err := mail.ReadMessage(bytes.NewReader(inbox[0]))
	if err != nil {
		t.Fatalf("carol's message does not parse: %v\n%s", err, inbox[0])
	}
	from, err := mail.ParseAddress(m.Header.Get("From"))
	if err != nil {
		t.Fatalf("From %q: %v", m.Header.Get("From"), err)
	}
	if from.Address != daveAddr || from.Name != "Dave" {
		t.Errorf("From: %q, want \"Dave\" <%s>\n%s", m.Header.Get("From"), daveAddr, inbox[0])
	}
	if s := m.Header.Get(mailtext.Sender); s != davePassport {
		t.Errorf("%s: %q, want %s", mailtext.Sender, s, davePassport)
	}
	if s := m.Header.Get("Subject"); s != "Re: Lunch on Friday" {
		t.Errorf("Subject: %q", s)
	}
	if b, _ := io.ReadAll(m.Body); !strings.Contains(string(b), "Noon is fine. Dave") {
		t.Errorf("body %q", b)
	}
	// asmtp-cli already put dave's pseudo-address in From; the file's
	// own From does not travel.
	if strings.Contains(string(inbox[0]), "dave@example.com") {
		t.Errorf("the file's From travelled:\n%s", inbox[0])
	}
}
