package bridge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/mailtext"
	"github.com/asmtp/asmtp/internal/wait"
)

// rotateWriter makes w's owner rotate its shared key, hands the new
// passport to the account's node (as its passport topic would) and waits
// for the bridge to follow it. It returns a writer that still seals with
// the old key on the old topic; w seals with the new key on the new topic.
// rotatedContact adds carol as a contact of a, waits for her topic, then
// rotates her shared key; it returns carol as she is now and as she was.
func rotatedContact(t testing.TB, s *site, a accounts.Account) (carol, old *writer) {
	t.Helper()
	carol = newWriter(t, s, a)
	if _, err := s.Reg.AddContact(context.Background(), a.Name, "Carol", carol.o.Passport.Export()); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "carol's topic registered", func() bool { return registered(t, s.node, a.Device, carol.topic) })
	return carol, rotateWriter(t, s, a, carol)
}

func rotateWriter(t testing.TB, s *site, a accounts.Account, w *writer) *writer {
	t.Helper()
	ctx := context.Background()
	old := *w
	w.o.Rotate(t)
	secret, err := w.o.Passport.UnsealSharedSecret(w.o.Device, w.o.PSK)
	if err != nil {
		t.Fatal(err)
	}
	w.secret = secret
	w.topic = topic.Derive(w.to, w.o.SharedKey())
	if err := w.s.Register(ctx, w.topic); err != nil {
		t.Fatal(err)
	}
	as, err := s.node.Attach(a.Device)
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	if _, err := as.PutPassport(ctx, w.o.Passport.Export()); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "the rotation followed", func() bool {
		c, err := s.Reg.Contact(ctx, a.Name, w.o.Passport.ID())
		return err == nil && c.SharedKey == w.o.SharedKey()
	})
	wait.Until(t, 10*time.Second, "the new topic registered", func() bool { return registered(t, s.node, a.Device, w.topic) })
	return &old
}

// Mail the contact sealed with its old key, on the old topic, still
// arrives after the rotation was followed, once, from the contact.
func TestInboundOnRotatedTopic(t *testing.T) {
	s, alice, _ := oneSite(t, nil)
	carol, old := rotatedContact(t, s, alice)
	if old.topic == carol.topic {
		t.Fatal("the rotation kept the topic")
	}
	if !registered(t, s.node, alice.Device, old.topic) {
		t.Fatal("the old topic was deregistered within its grace period")
	}

	id := newID(t)
	late := old.seal(t, id, "From: Carol <carol@example.org>\r\nSubject: sent before rotating\r\n\r\nlate\r\n")
	old.publish(t, late...)
	wait.Until(t, 10*time.Second, "the mail sealed with the old key", func() bool { return s.inboxCount("alice") == 1 })
	old.publish(t, late...) // a replay
	// The new key on the old topic is not the key that topic belongs to.
	forged := carol.seal(t, newID(t), "Subject: new key, old topic\r\n\r\nx\r\n")
	old.publish(t, forged...)
	carol.publish(t, carol.seal(t, newID(t), "Subject: after rotating\r\n\r\nnew\r\n")...)
	wait.Until(t, 10*time.Second, "the mail sealed with the new key", func() bool { return s.inboxCount("alice") >= 2 })
	time.Sleep(300 * time.Millisecond)

	msgs := s.inbox("alice")
	if len(msgs) != 2 || header(t, msgs[0], "Subject") != "sent before rotating" || header(t, msgs[1], "Subject") != "after rotating" {
		t.Fatalf("alice's INBOX: %s; want the late mail once, then the new one", subjects(t, msgs))
	}
	for _, m := range msgs {
		if from := header(t, m, "From"); from != `"Carol" <`+carol.o.Passport.ID().String()+"@asmtp>" {
			t.Errorf("From %q, want carol by her petname", from)
		}
		if got := header(t, m, mailtext.Sender); got != carol.o.Passport.ID().String() {
			t.Errorf("%s %q, want carol's passport", mailtext.Sender, got)
		}
	}
	if got := header(t, msgs[0], mailtext.OriginalFrom); !strings.Contains(got, "carol@example.org") {
		t.Errorf("%s %q, want what carol wrote", mailtext.OriginalFrom, got)
	}

	// After a restart the old topic is still registered and read.
	s.stop()
	s.start()
	wait.Until(t, 10*time.Second, "the old topic registered again", func() bool { return registered(t, s.node, alice.Device, old.topic) })
}

// Past the grace period the old topic is deregistered and forgotten, and
// mail sealed with the old key no longer arrives.
func TestRotatedTopicGraceEnds(t *testing.T) {
	s := newSite(t)
	s.rotationGrace = 4 * time.Second
	alice, _ := s.AddAccount(t, "alice")
	s.start()
	ctx := context.Background()
	carol, old := rotatedContact(t, s, alice)

	old.publish(t, old.seal(t, newID(t), "Subject: within the grace period\r\n\r\nx\r\n")...)
	wait.Until(t, 10*time.Second, "the mail within the grace period", func() bool { return s.inboxCount("alice") == 1 })

	wait.Until(t, 15*time.Second, "the old topic deregistered", func() bool { return !registered(t, s.node, alice.Device, old.topic) })
	wait.Until(t, 5*time.Second, "the old topic forgotten", func() bool {
		retired, err := s.Reg.RetiredTopics(ctx, "alice", time.Now().Add(time.Hour))
		return err == nil && len(retired) == 0
	})
	if _, err := s.Reg.RotatedContactByTopic(ctx, "alice", old.topic, time.Time{}); !errors.Is(err, accounts.ErrNoContact) {
		t.Errorf("the old topic is still known: %v", err)
	}
	old.publish(t, old.seal(t, newID(t), "Subject: too late\r\n\r\nx\r\n")...)
	carol.publish(t, carol.seal(t, newID(t), "Subject: new key\r\n\r\nx\r\n")...)
	wait.Until(t, 10*time.Second, "the mail sealed with the new key", func() bool { return s.inboxCount("alice") >= 2 })
	time.Sleep(500 * time.Millisecond)
	if msgs := s.inbox("alice"); len(msgs) != 2 || header(t, msgs[1], "Subject") != "new key" {
		t.Fatalf("alice's INBOX: %s; want no mail sealed with the old key after the grace period", subjects(t, msgs))
	}
}
