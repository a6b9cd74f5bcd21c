package bridge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
	"github.com/asmtp/asmtp/internal/wait"
)

// startNode runs a node on 127.0.0.1 with short intervals until the test ends.
func startNode(t testing.TB, dir string, key ed25519.PrivateKey, peers ...node.Peer) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.Key = key
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.StoragePath = filepath.Join(dir, "node.db")
	cfg.KnownPeers = peers
	cfg.GossipInterval = 100 * time.Millisecond
	cfg.PassportTimeout = 2 * time.Second
	cfg.Logger = accountstest.Logger()
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "node", n.Run)
	return n
}

// run calls fn in a goroutine; the test's cleanup cancels its context and
// checks that it returns cleanly.
func run(t testing.TB, what string, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop within 10 s", what)
		}
	})
}

// startBridge runs a node and a bridge over e's data directory; e.Reg
// then plays asmtpd-cli, a separate process writing the same registry.
func startBridge(t testing.TB, e *accountstest.Env, peers ...node.Peer) (*node.Node, *Bridge) {
	t.Helper()
	n := startNode(t, e.Dir, e.NodeKey, peers...)
	// These tests check the v1 paths (pair topics); naming_test.go checks v2.
	b, err := New(Config{DataDir: e.Dir, IMAPAddr: "127.0.0.1:0", SMTPAddr: "127.0.0.1:0", RefreshInterval: 200 * time.Millisecond, Logger: accountstest.Logger(),
		NamingV1: true}, n, e.NodeKey)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "bridge", b.Run)
	return n, b
}

// imapLogin reports whether the IMAP server at addr accepts LOGIN user pw.
func imapLogin(t testing.TB, addr net.Addr, user, pw string) bool {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if greeting, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(greeting, "* OK") {
		t.Fatalf("greeting %q, %v", greeting, err)
	}
	fmt.Fprintf(c, "a1 LOGIN %s %s\r\n", user, pw)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the LOGIN answer: %v", err)
		}
		if strings.HasPrefix(line, "a1 ") {
			return strings.HasPrefix(line, "a1 OK")
		}
	}
}

// registered reports whether user has registered t on n.
func registered(t testing.TB, n *node.Node, user keys.PublicKey, tp topic.Topic) bool {
	t.Helper()
	s, err := n.Attach(user)
	if err != nil {
		return false
	}
	defer s.Close()
	_, err = s.Query(context.Background(), tp, 0)
	return err == nil
}

func TestBridgeFollowsTheRegistry(t *testing.T) {
	e := accountstest.NewEnv(t)
	ctx := context.Background()
	n, b := startBridge(t, e)

	alice, pw := e.AddAccount(t, "alice")
	if !imapLogin(t, b.IMAPAddr(), "alice", pw) || !imapLogin(t, b.IMAPAddr(), alice.Address("asmtp").String(), pw) {
		t.Fatal("IMAP login refused by name or address")
	}
	if imapLogin(t, b.IMAPAddr(), "alice", pw+"x") {
		t.Fatal("IMAP login with a wrong password accepted")
	}
	wait.Until(t, 15*time.Second, "alice's passport on the node", func() bool {
		s, err := n.Attach(alice.Device)
		if err != nil {
			return false
		}
		defer s.Close()
		blocks, err := s.GetPassport(ctx, alice.Passport)
		return err == nil && bytes.Equal(blocks, alice.Blocks)
	})

	carol := accountstest.NewOutsider(t)
	c, err := e.Reg.AddContact(ctx, "alice", "Carol", carol.Passport.Export())
	if err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 15*time.Second, "carol's topic registered", func() bool { return registered(t, n, alice.Device, c.Topic) })

	// A contact added by id is resolved from the node (here: bob is
	// another account of the bridge, whose passport it uploaded).
	bob, _ := e.AddAccount(t, "bob")
	if _, err := e.Reg.AddPendingContact(ctx, "alice", "Bob", bob.Passport); err != nil {
		t.Fatal(err)
	}
	var pendingTopic topic.Topic
	wait.Until(t, 15*time.Second, "bob's passport fetched", func() bool {
		got, err := e.Reg.Contact(ctx, "alice", bob.Passport)
		pendingTopic = got.Topic
		return err == nil && !got.Pending()
	})
	wait.Until(t, 15*time.Second, "bob's topic registered", func() bool { return registered(t, n, alice.Device, pendingTopic) })

	// Carol rotates her shared key; the update reaches the node (as it
	// would on her passport topic) and the bridge follows it.
	carol.Rotate(t)
	s, err := n.Attach(alice.Device)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.PutPassport(ctx, carol.Passport.Export()); err != nil {
		t.Fatal(err)
	}
	var rotated accounts.Contact
	wait.Until(t, 15*time.Second, "carol's new shared key taken", func() bool {
		rotated, err = e.Reg.Contact(ctx, "alice", carol.Passport.ID())
		return err == nil && rotated.SharedKey == carol.SharedKey()
	})
	wait.Until(t, 15*time.Second, "carol's new topic registered", func() bool { return registered(t, n, alice.Device, rotated.Topic) })
	// The old one is kept for the grace period (RotationGrace).
	time.Sleep(time.Second) // a few reconciles and refreshes
	if !registered(t, n, alice.Device, c.Topic) {
		t.Fatal("carol's old topic dropped within its grace period")
	}

	// Removing her drops both at once, grace or not.
	if err := e.Reg.RemoveContact(ctx, "alice", "Carol"); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 15*time.Second, "carol's topics dropped after removal", func() bool {
		return !registered(t, n, alice.Device, rotated.Topic) && !registered(t, n, alice.Device, c.Topic)
	})
	wait.Until(t, 15*time.Second, "the retired topics forgotten", func() bool {
		retired, err := e.Reg.RetiredTopics(ctx, "alice", time.Now().Add(time.Hour))
		return err == nil && len(retired) == 0
	})
}

// Adding a contact fetches what the contact sent before, from the
// contact's node; a contact added by id gets its passport from there too.
func TestContactAcrossNodes(t *testing.T) {
	ctx := context.Background()
	// Carol's home node, with Carol's device as its user.
	carol := accountstest.NewOutsider(t)
	carolNode := startNode(t, t.TempDir(), accountstest.NodeKey(t))
	carolNode.AddUser(keys.Public(carol.Device))
	cs, err := carolNode.Attach(keys.Public(carol.Device))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.PutPassport(ctx, carol.Passport.Export()); err != nil {
		t.Fatal(err)
	}

	e := accountstest.NewEnv(t)
	n, _ := startBridge(t, e, node.Peer{ID: carolNode.ID(), Address: carolNode.Addr().String()})
	alice, _ := e.AddAccount(t, "alice")

	// Carol wrote to Alice before Alice knew her.
	shared := topic.Derive(accountstest.OwnSharedKey(t, alice), carol.SharedKey())
	if err := cs.Register(ctx, shared); err != nil {
		t.Fatal(err)
	}
	if err := cs.Publish(ctx, shared, []byte("sealed mail from carol")); err != nil {
		t.Fatal(err)
	}

	if _, err := e.Reg.AddPendingContact(ctx, "alice", "Carol", carol.Passport.ID()); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 15*time.Second, "carol's passport fetched from her node", func() bool {
		c, err := e.Reg.Contact(ctx, "alice", carol.Passport.ID())
		return err == nil && !c.Pending() && c.Topic == shared
	})
	wait.Until(t, 15*time.Second, "carol's earlier message fetched", func() bool {
		s, err := n.Attach(alice.Device)
		if err != nil {
			return false
		}
		defer s.Close()
		got, err := s.Query(ctx, shared, 0)
		return err == nil && len(got) == 1 && string(got[0].Content) == "sealed mail from carol"
	})
}

func TestNewRefusesAnotherNodeKey(t *testing.T) {
	e := accountstest.NewEnv(t)
	e.AddAccount(t, "alice")
	_, err := New(Config{DataDir: e.Dir, IMAPAddr: "127.0.0.1:0"}, nil, accountstest.NodeKey(t))
	if !errors.Is(err, accounts.ErrWrongNodeKey) {
		t.Fatalf("New with another node key: %v, want accounts.ErrWrongNodeKey", err)
	}
}
