package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/noise"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
	"github.com/asmtp/asmtp/bridge/mailtext"
	"github.com/asmtp/asmtp/internal/wait"
)

// writer is someone writing to an account from a device attached to the
// account's own node.
type writer struct {
	o      *accountstest.Outsider
	secret keys.SharedSecret
	s      *node.Session
	to     keys.SharedKey
	topic  topic.Topic
}

func newWriter(t testing.TB, st *site, a accounts.Account) *writer {
	t.Helper()
	o := accountstest.NewOutsider(t)
	secret, err := o.Passport.UnsealSharedSecret(o.Device, o.PSK)
	if err != nil {
		t.Fatal(err)
	}
	st.node.AddUser(keys.Public(o.Device))
	s, err := st.node.Attach(keys.Public(o.Device))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	w := &writer{o: o, secret: secret, s: s, to: accountstest.OwnSharedKey(t, a)}
	w.topic = topic.Derive(w.to, o.SharedKey())
	if err := s.Register(context.Background(), w.topic); err != nil {
		t.Fatal(err)
	}
	return w
}

// seal seals msg as message id from w (or as from impostor, if given).
func (w *writer) seal(t testing.TB, id mail.MessageID, msg string) [][]byte {
	t.Helper()
	contents, err := mail.Seal(rand.Reader, w.secret, w.to, id, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return contents
}

// publish publishes contents on w's topic, waiting for a node just
// started to be running.
func (w *writer) publish(t testing.TB, contents ...[]byte) {
	t.Helper()
	for _, c := range contents {
		err := w.s.Publish(context.Background(), w.topic, c)
		for deadline := time.Now().Add(5 * time.Second); errors.Is(err, node.ErrClosed) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			err = w.s.Publish(context.Background(), w.topic, c)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// waitHolder waits until w's node knows another holder of w's topic: what
// w publishes before reaches the recipient's node only at its next
// catch-up.
func (w *writer) waitHolder(t testing.TB) {
	t.Helper()
	wait.Until(t, 30*time.Second, "a holder of the writer's topic", func() bool { return w.s.Holders(w.topic, 1) > 0 })
}

func newID(t testing.TB) mail.MessageID {
	id, err := mail.NewMessageID(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// oneSite runs alice's site alone.
func oneSite(t testing.TB, tweak func(*DeliveryConfig)) (*site, accounts.Account, string) {
	t.Helper()
	s := newSite(t)
	if tweak != nil {
		tweak(&s.delivery)
	}
	a, pw := s.AddAccount(t, "alice")
	s.start()
	return s, a, pw
}

func TestInboundChecksTheSender(t *testing.T) {
	s, alice, _ := oneSite(t, nil)
	carol := newWriter(t, s, alice)
	if _, err := s.Reg.AddContact(context.Background(), "alice", "Carol", carol.o.Passport.Export()); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "carol's topic registered", func() bool { return registered(t, s.node, alice.Device, carol.topic) })

	// Mallory seals to alice and publishes on carol's topic.
	mallory := newWriter(t, s, alice)
	forged := mallory.seal(t, newID(t), "From: Carol <carol@example.org>\r\nSubject: from mallory\r\n\r\nsend money\r\n")
	carol.publish(t, forged...)
	carol.publish(t, carol.seal(t, newID(t), "X-ASMTP-Sender: "+alice.Passport.String()+"\r\nFrom: Alice <"+
		alice.Address("asmtp").String()+">\r\nSubject: from carol\r\n\r\nreally carol\r\n")...)
	wait.Until(t, 10*time.Second, "carol's mail", func() bool { return s.inboxCount("alice") >= 1 })
	time.Sleep(200 * time.Millisecond)
	msgs := s.inbox("alice")
	if len(msgs) != 1 || header(t, msgs[0], "Subject") != "from carol" {
		t.Fatalf("alice's INBOX: %s; want only carol's mail", subjects(t, msgs))
	}
	if from := header(t, msgs[0], "From"); from != `"Carol" <`+carol.o.Passport.ID().String()+"@asmtp>" {
		t.Errorf("From %q, want carol by her petname", from)
	}
	if got := header(t, msgs[0], mailtext.Sender); got != carol.o.Passport.ID().String() {
		t.Errorf("%s %q, want carol's passport (a forged value must not survive)", mailtext.Sender, got)
	}
	if got := header(t, msgs[0], mailtext.OriginalFrom); !strings.Contains(got, "Alice") {
		t.Errorf("%s %q, want what carol wrote", mailtext.OriginalFrom, got)
	}
}

// TestInboundReassembly: chunks in any order, a duplicate, a restart in
// the middle; then replays of the whole message. One copy arrives, byte
// for byte.
func TestInboundReassembly(t *testing.T) {
	s, alice, _ := oneSite(t, nil)
	carol := newWriter(t, s, alice)
	ctx := context.Background()
	if _, err := s.Reg.AddContact(ctx, "alice", "Carol", carol.o.Passport.Export()); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "carol's topic registered", func() bool { return registered(t, s.node, alice.Device, carol.topic) })

	msg := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef", 9000) // 3 chunks
	id := newID(t)
	chunks := carol.seal(t, id, msg)
	if len(chunks) != 3 {
		t.Fatalf("%d chunks, want 3", len(chunks))
	}
	carol.publish(t, chunks[2], chunks[0])
	carol.publish(t, carol.seal(t, id, msg)[2]) // the same chunk sealed again
	sender := carol.o.SharedKey()
	wait.Until(t, 10*time.Second, "two chunks held", func() bool {
		held, err := s.Mail.Chunks(ctx, "alice", sender, id)
		return err == nil && len(held) == 2
	})

	s.stop()
	s.start()
	carol = &writer{o: carol.o, secret: carol.secret, to: carol.to, topic: carol.topic}
	s.node.AddUser(keys.Public(carol.o.Device)) // users added at run time are not kept
	var err error
	if carol.s, err = s.node.Attach(keys.Public(carol.o.Device)); err != nil {
		t.Fatal(err)
	}
	defer carol.s.Close()
	carol.publish(t, chunks[1])
	wait.Until(t, 10*time.Second, "the message", func() bool { return s.inboxCount("alice") == 1 })

	// Replays: the same message sealed again, whole; the same contents.
	carol.publish(t, carol.seal(t, id, msg)...)
	carol.publish(t, chunks...)
	time.Sleep(500 * time.Millisecond)
	msgs := s.inbox("alice")
	if len(msgs) != 1 {
		t.Fatalf("alice has %d copies, want 1", len(msgs))
	}
	if !bytes.Equal(body(msgs[0]), []byte(strings.Repeat("0123456789abcdef", 9000))) {
		t.Error("body changed on the way")
	}
	if held, _ := s.Mail.Chunks(ctx, "alice", sender, id); len(held) != 0 {
		t.Errorf("%d chunks left in the buffer after delivery", len(held))
	}

	// A one-chunk message, sealed and sent twice with the same id.
	small := newID(t)
	carol.publish(t, carol.seal(t, small, "Subject: small\r\n\r\nonce\r\n")...)
	carol.publish(t, carol.seal(t, small, "Subject: small\r\n\r\nonce\r\n")...)
	wait.Until(t, 10*time.Second, "the small message", func() bool { return s.inboxCount("alice") == 2 })
	time.Sleep(500 * time.Millisecond)
	if n := s.inboxCount("alice"); n != 2 {
		t.Fatalf("alice has %d mails after a one-chunk message was sent twice, want 2", n)
	}
}

func TestInboundIncompleteMessageExpires(t *testing.T) {
	s, alice, _ := oneSite(t, func(c *DeliveryConfig) { c.ReassemblyTimeout = 500 * time.Millisecond })
	carol := newWriter(t, s, alice)
	if _, err := s.Reg.AddContact(context.Background(), "alice", "Carol", carol.o.Passport.Export()); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "carol's topic registered", func() bool { return registered(t, s.node, alice.Device, carol.topic) })
	id := newID(t)
	carol.publish(t, carol.seal(t, id, strings.Repeat("x", 100000))[0])
	wait.Until(t, 10*time.Second, "the notice", func() bool { return s.inboxCount("alice") == 1 })
	notice := s.inbox("alice")[0]
	if subj := header(t, notice, "Subject"); !strings.Contains(subj, "Incomplete message from") || !strings.Contains(subj, "Carol") {
		t.Errorf("notice subject %q", subj)
	}
	if !bytes.Contains(notice, []byte("only 1 arrived")) {
		t.Errorf("notice does not say what arrived:\n%s", notice)
	}
	if held, _ := s.Mail.Chunks(context.Background(), "alice", carol.o.SharedKey(), id); len(held) != 0 {
		t.Errorf("%d chunks held after the timeout", len(held))
	}
}

func TestInboundLegacyText(t *testing.T) {
	s, alice, _ := oneSite(t, nil)
	carol := newWriter(t, s, alice)
	if _, err := s.Reg.AddContact(context.Background(), "alice", "Carol", carol.o.Passport.Export()); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "carol's topic registered", func() bool { return registered(t, s.node, alice.Device, carol.topic) })
	sealed, err := noise.Seal(rand.Reader, carol.secret, carol.to, []byte("Hello from v0.1.0\nsecond line"))
	if err != nil {
		t.Fatal(err)
	}
	carol.publish(t, sealed)
	wait.Until(t, 10*time.Second, "the legacy text", func() bool { return s.inboxCount("alice") == 1 })
	m := s.inbox("alice")[0]
	if header(t, m, "Subject") != "Hello from v0.1.0" || !strings.Contains(header(t, m, "From"), "Carol") ||
		header(t, m, mailtext.Sender) != carol.o.Passport.ID().String() {
		t.Errorf("legacy text arrived as:\n%s", m)
	}
}

// Mail that arrived before its sender was in the address book is read
// from the node's store once the contact is added.
func TestInboundReadsWhatCameBeforeTheContact(t *testing.T) {
	s, alice, _ := oneSite(t, nil)
	carol := newWriter(t, s, alice)
	carol.publish(t, carol.seal(t, newID(t), "Subject: early\r\n\r\nbefore you knew me\r\n")...)
	time.Sleep(300 * time.Millisecond)
	if n := s.inboxCount("alice"); n != 0 {
		t.Fatalf("mail from a stranger delivered (%d)", n)
	}
	if _, err := s.Reg.AddContact(context.Background(), "alice", "Carol", carol.o.Passport.Export()); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "the early mail", func() bool { return s.inboxCount("alice") == 1 })
}

func TestSendToSelf(t *testing.T) {
	s, alice, pw := oneSite(t, nil)
	addr := alice.Address("asmtp").String()
	sendMails(t, s, pw, addr, addr, "note to self\n", "to myself")
	wait.Until(t, 10*time.Second, "the mail to self", func() bool { return s.inboxCount("alice") == 1 })
	time.Sleep(300 * time.Millisecond)
	msgs := s.inbox("alice")
	if len(msgs) != 1 || header(t, msgs[0], mailtext.Sender) != alice.Passport.String() || !strings.Contains(header(t, msgs[0], "From"), addr) {
		t.Fatalf("alice's INBOX after writing to herself: %s", subjects(t, msgs))
	}
}
