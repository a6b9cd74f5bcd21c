package bridge

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
	"github.com/asmtp/asmtp/bridge/inbound"
	"github.com/asmtp/asmtp/internal/wait"
)

// TestInboundHeldChunksSurviveCrash kills bob's asmtpd (SIGKILL) while
// the first chunks of a message are held in memory, not yet in the
// reassembly buffer (inboundWorker.hold). Started again on the same files,
// his bridge reads them again from the node's store (its saved cursor
// stayed before them), and once the last chunk comes bob has the message,
// once, byte for byte.
func TestInboundHeldChunksSurviveCrash(t *testing.T) {
	ctx := context.Background()
	// carol writes from a node of her own, which bob's node peers with.
	carolNode, stopCarol := runNode(t, testNodeConfig(t.TempDir(), accountstest.NodeKey(t), nil))
	t.Cleanup(stopCarol)
	b := newSite(t, node.Peer{ID: carolNode.ID(), Address: carolNode.Addr().String()})
	bob, _ := b.AddAccount(t, "bob")
	carol := &writer{o: accountstest.NewOutsider(t), to: accountstest.OwnSharedKey(t, bob)}
	var err error
	if carol.secret, err = carol.o.Passport.UnsealSharedSecret(carol.o.Device, carol.o.PSK); err != nil {
		t.Fatal(err)
	}
	carol.topic = topic.Derive(carol.to, carol.o.SharedKey())
	carolNode.AddUser(keys.Public(carol.o.Device))
	if carol.s, err = carolNode.Attach(keys.Public(carol.o.Device)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(carol.s.Close)
	if err := carol.s.Register(ctx, carol.topic); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reg.AddContact(ctx, "bob", "Carol", carol.o.Passport.Export()); err != nil {
		t.Fatal(err)
	}

	h := startCrashHelper(t, crashHelperConfig{Dir: b.Dir, Seed: hex.EncodeToString(b.NodeKey.Seed()), Peer: b.peers[0], Stage: "never",
		WaitHolders: [][2]string{{"bob", "Carol"}}})
	h.next(t, "smtp ") // printed once bob's node knows carol's
	carol.waitHolder(t)

	text := strings.Repeat("Forty-two bytes of text in every line.\r\n", 5000) // 4 chunks
	msg := "Subject: held\r\n\r\n" + text
	id := newID(t)
	chunks := carol.seal(t, id, msg)
	if len(chunks) != 4 {
		t.Fatalf("%d chunks, want 4", len(chunks))
	}
	carol.publish(t, chunks[2], chunks[0], chunks[3])
	time.Sleep(inbound.HeldFlushAfter / 2) // handled, and still held in memory only
	h.kill()
	held, err := b.Mail.Chunks(ctx, "bob", carol.o.SharedKey(), id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d chunks in the reassembly buffer at the crash", len(held))

	b.start()
	b.waitHolder(t, "bob", "Carol")
	carol.waitHolder(t)
	carol.publish(t, chunks[1])
	wait.Until(t, 30*time.Second, "the message at bob", func() bool { return b.inboxCount("bob") == 1 }, b.stats)
	carol.publish(t, carol.seal(t, id, msg)...) // a replay
	time.Sleep(time.Second)
	msgs := b.inbox("bob")
	if len(msgs) != 1 {
		t.Fatalf("bob has %d copies, want 1", len(msgs))
	}
	if !bytes.Equal(body(msgs[0]), []byte(text)) {
		t.Error("body changed on the way")
	}
	if held, _ := b.Mail.Chunks(ctx, "bob", carol.o.SharedKey(), id); len(held) != 0 {
		t.Errorf("%d chunks left in the buffer after delivery", len(held))
	}
}

// TestInboundHeldOverflow: with little room for incomplete messages, the
// chunks held in memory go to the reassembly buffer when they would take
// more, and the rest follow them there; the message still arrives whole,
// once.
func TestInboundHeldOverflow(t *testing.T) {
	s, alice, _ := oneSite(t, func(c *DeliveryConfig) { c.MaxPendingBytes = 3 * mail.ChunkDataSize })
	carol := newWriter(t, s, alice)
	ctx := context.Background()
	if _, err := s.Reg.AddContact(ctx, "alice", "Carol", carol.o.Passport.Export()); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "carol's topic registered", func() bool { return registered(t, s.node, alice.Device, carol.topic) })

	text := strings.Repeat("A message in five parts. ", 12000)
	id := newID(t)
	chunks := carol.seal(t, id, "Subject: five\r\n\r\n"+text)
	if len(chunks) != 5 {
		t.Fatalf("%d chunks, want 5", len(chunks))
	}
	carol.publish(t, chunks[:4]...)
	wait.Until(t, 10*time.Second, "four chunks in the buffer", func() bool {
		held, err := s.Mail.Chunks(ctx, "alice", carol.o.SharedKey(), id)
		return err == nil && len(held) == 4
	})
	carol.publish(t, chunks[4], chunks[0])
	wait.Until(t, 10*time.Second, "the message", func() bool { return s.inboxCount("alice") == 1 })
	time.Sleep(200 * time.Millisecond)
	msgs := s.inbox("alice")
	if len(msgs) != 1 {
		t.Fatalf("alice has %d mails, want 1: %s", len(msgs), subjects(t, msgs))
	}
	if !bytes.Equal(body(msgs[0]), []byte(text)) {
		t.Error("body changed on the way")
	}
	if held, _ := s.Mail.Chunks(ctx, "alice", carol.o.SharedKey(), id); len(held) != 0 {
		t.Errorf("%d chunks left in the buffer after delivery", len(held))
	}
}
