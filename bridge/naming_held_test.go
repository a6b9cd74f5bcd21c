package bridge

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
	"github.com/asmtp/asmtp/bridge/outbound"
	"github.com/asmtp/asmtp/internal/wait"
	"github.com/asmtp/asmtp/mailstore"
)

// TestNamingV2HeldChunksFlushed: a naming-v2 mail (on bob's inbox, which
// names no contact) whose chunks leave the bridge's memory for the
// reassembly buffer before its last chunk comes still arrives, once,
// byte for byte: when the last chunk is late (HeldFlushAfter), also with
// bob's site restarted while the chunks wait in the buffer, and when the
// held chunks overflow the memory for incomplete messages.
func TestNamingV2HeldChunksFlushed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		late     bool // alice's bridge publishes the last chunk only once bob's buffer holds the others
		restart  bool // bob's site restarts before the last chunk comes
		maxBytes int64
	}{
		{name: "late last chunk", late: true},
		{name: "late last chunk across a restart", late: true, restart: true},
		{name: "held memory overflow", maxBytes: 3 * mail.ChunkDataSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			relay := startRelay(t)
			a, c := newSite(t, relay), newSite(t, relay)
			a.namingV2, c.namingV2 = true, true
			a.delivery.RetryWindow = time.Minute
			c.delivery.MaxPendingBytes = tc.maxBytes
			alice, pw := a.AddAccount(t, "alice")
			bob, _ := c.AddAccount(t, "bob")
			befriend(t, a, "alice", "Alice", c, "bob", "Bob")
			var fourOut <-chan [16]byte
			release := func() {}
			if tc.late {
				fourOut, release = lastChunkHeldBack(t, a)
			}
			a.start()
			c.start()
			t.Cleanup(release) // before the sites stop
			from, to := alice.Address("asmtp").String(), bob.Address("asmtp").String()

			text := strings.Repeat("Forty-two bytes of text in every line.\r\n", 6900) // 5 chunks
			sent := sendMails(t, a, pw, from, to, text, "five parts")
			if tc.late {
				id := <-fourOut
				wait.Until(t, 10*time.Second, "four chunks in bob's reassembly buffer", func() bool {
					held, err := c.Mail.Chunks(context.Background(), "bob", accountstest.OwnSharedKey(t, alice), id)
					return err == nil && len(held) == outbound.PublishBatchChunks
				}, c.stats)
				if tc.restart {
					c.stop()
					c.start()
				}
				release()
			}
			wait.Until(t, 30*time.Second, "the mail at bob", func() bool { return c.inboxCount("bob") == 1 }, a.stats, c.stats)
			wait.Until(t, 10*time.Second, "alice's outbox empty", func() bool {
				q, err := a.Mail.Outbox(context.Background(), "alice")
				return err == nil && len(q) == 0
			})
			msgs := c.inbox("bob")
			if len(msgs) != 1 {
				t.Fatalf("bob has %d mails, want 1: %s", len(msgs), subjects(t, msgs))
			}
			if want := body(sent["five parts"]); !bytes.Equal(body(msgs[0]), want) {
				t.Errorf("body changed on the way: %d bytes, sent %d", len(body(msgs[0])), len(want))
			}
		})
	}
}

// lastChunkHeldBack makes a's bridge stop before publishing the last chunk
// of a five-chunk mail: the returned channel gives the mail's id once its
// first four chunks are out, and release lets the last one go (also at
// the test's end, before the sites stop).
func lastChunkHeldBack(t *testing.T, a *site) (fourOut <-chan [16]byte, release func()) {
	out, gate := make(chan [16]byte, 1), make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	a.delivery.hook = func(stage string, it mailstore.OutboxItem, chunk int) {
		if stage == "published" && chunk == outbound.PublishBatchChunks {
			out <- it.MessageID
			<-gate
		}
	}
	return out, release
}

// TestNamingV2BufferedChunksSurviveCrash kills bob's asmtpd (SIGKILL)
// while four chunks of alice's naming-v2 mail wait in his reassembly
// buffer; started again on the same files, his bridge completes the mail
// when the last chunk comes: bob has it once, byte for byte, and the
// buffer is empty.
func TestNamingV2BufferedChunksSurviveCrash(t *testing.T) {
	ctx := context.Background()
	relay := startRelay(t)
	a, c := newSite(t, relay), newSite(t, relay)
	a.namingV2, c.namingV2 = true, true
	a.delivery.RetryWindow = time.Minute
	alice, pw := a.AddAccount(t, "alice")
	bob, _ := c.AddAccount(t, "bob")
	befriend(t, a, "alice", "Alice", c, "bob", "Bob")
	h := startCrashHelper(t, crashHelperConfig{Dir: c.Dir, Seed: hex.EncodeToString(c.NodeKey.Seed()), Peer: relay, Stage: "never", NamingV2: true})
	h.next(t, "smtp ")
	fourOut, release := lastChunkHeldBack(t, a)
	a.start()
	t.Cleanup(release) // before the sites stop

	text := strings.Repeat("Forty-two bytes of text in every line.\r\n", 6900) // 5 chunks
	sent := sendMails(t, a, pw, alice.Address("asmtp").String(), bob.Address("asmtp").String(), text, "five parts")
	id := <-fourOut
	inBuffer := func() int {
		held, err := c.Mail.Chunks(ctx, "bob", accountstest.OwnSharedKey(t, alice), id)
		if err != nil {
			t.Fatal(err)
		}
		return len(held)
	}
	wait.Until(t, 30*time.Second, "four chunks in bob's reassembly buffer", func() bool { return inBuffer() == outbound.PublishBatchChunks }, a.stats)
	h.kill()
	c.start()
	release()
	wait.Until(t, 30*time.Second, "the mail at bob", func() bool { return c.inboxCount("bob") == 1 }, a.stats, c.stats)
	wait.Until(t, 10*time.Second, "alice's outbox empty", func() bool {
		q, err := a.Mail.Outbox(ctx, "alice")
		return err == nil && len(q) == 0
	})
	msgs := c.inbox("bob")
	if len(msgs) != 1 {
		t.Fatalf("bob has %d mails, want 1: %s", len(msgs), subjects(t, msgs))
	}
	if want := body(sent["five parts"]); !bytes.Equal(body(msgs[0]), want) {
		t.Errorf("body changed on the way: %d bytes, sent %d", len(body(msgs[0])), len(want))
	}
	if n := inBuffer(); n != 0 {
		t.Errorf("%d chunks left in the buffer after delivery", n)
	}
}

// logBuffer collects a bridge's logs for a test to look through.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) has(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Contains(b.buf.Bytes(), []byte(s))
}

// TestNamingV2HeldChunksOfRemovedContact: bob removes alice while chunks
// of her mail are held in memory; when they are due for the reassembly
// buffer they are dropped, and the bridge says so.
func TestNamingV2HeldChunksOfRemovedContact(t *testing.T) {
	relay := startRelay(t)
	a, c := newSite(t, relay), newSite(t, relay)
	a.namingV2, c.namingV2 = true, true
	a.delivery.RetryWindow = time.Minute
	logs := &logBuffer{}
	c.logs = logs
	alice, pw := a.AddAccount(t, "alice")
	bob, _ := c.AddAccount(t, "bob")
	befriend(t, a, "alice", "Alice", c, "bob", "Bob")
	_, release := lastChunkHeldBack(t, a)
	a.start()
	c.start()
	t.Cleanup(release) // before the sites stop

	text := strings.Repeat("Forty-two bytes of text in every line.\r\n", 6900) // 5 chunks
	sendMails(t, a, pw, alice.Address("asmtp").String(), bob.Address("asmtp").String(), text, "five parts")
	wait.Until(t, 30*time.Second, "chunks held at bob", func() bool { return logs.has("chunks of a message held in memory") }, c.stats)
	if err := c.Reg.RemoveContact(context.Background(), "bob", "Alice"); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "a warning that the held chunks were dropped", func() bool {
		return logs.has(`level=WARN msg="bridge: held chunks of a sender no longer a contact dropped"`)
	})
	if n := c.inboxCount("bob"); n != 0 {
		t.Errorf("bob has %d mails from a removed contact", n)
	}
}
