package node

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/wait"
)

// TestHeldBurstOverQuotaDelivered: a burst of held mail for an inbox
// larger than the recipient's per-link storage burst (the sender's node
// hands over everything held at once) is stored in full at the recipient,
// at the quota's pace, and the sender is not quarantined for it
// (PROTOCOL.md §16.6). Without the recovery the chunks over the quota were
// dropped for good, and the sender struck out.
func TestHeldBurstOverQuotaDelivered(t *testing.T) {
	ctx := context.Background()
	snd := startNetwork(t, 1, nil)[0]
	cfg, user := testConfig(t, t.TempDir())
	cfg.PeerStoreRate = 1 << 20
	cfg.PeerStoreBurst = 256 << 10
	cfg.KnownPeers = []Peer{snd.peer()}
	rcv := start(t, cfg, user)
	rs := rcv.session(t)
	inbox := topic.Inbox(topic.InboxSeed{0xb5}, topic.InboxDay(time.Now()))
	if err := rs.RegisterInbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	card := &PeerAddr{ID: rcv.ID(), Addr: rcv.Addr().String()}
	ss := snd.session(t)
	// 48 chunks of about 60 KiB: 2.8 MiB, eleven times the burst, in
	// mails of 8 chunks published back to back.
	const mails, chunks = 6, 8
	for m := range mails {
		contents := make([][]byte, chunks)
		for c := range contents {
			contents[c] = fmt.Appendf(nil, "m%03d-c%05d %0*d", m, c, 60<<10, c)
		}
		if err := ss.PublishTo(ctx, inbox, card, contents...); err != nil {
			t.Fatal(err)
		}
	}
	var got map[string]int
	wait.Until(t, 40*time.Second, "every chunk stored at the recipient", func() bool {
		got = storedContents(t, rs, inbox)
		return len(got) >= mails*chunks
	})
	st := rcv.Stats()
	if st.OverQuota == 0 {
		t.Errorf("recipient stats %+v: the test needs the quota to drop chunks", st)
	}
	if rcv.strikes.blocked(snd.ID(), time.Now()) {
		t.Error("the recipient quarantined the sender for its held burst")
	}
	t.Logf("over quota %d, stored %d", st.OverQuota, st.Stored)
}

// TestHeldHandOverPastQueryLimit: what a sender's node holds for an inbox
// whose node was down is handed over in full when it comes back, however
// many messages: the hand-over pages through the store instead of sending
// one QueryLimit's worth. Without paging the recipient got the first
// QueryLimit messages and nothing ever brought the rest.
func TestHeldHandOverPastQueryLimit(t *testing.T) {
	ctx := context.Background()
	snd := startNetwork(t, 1, func(c *Config) { c.QueryLimit = 10 })[0]
	cfg, user := testConfig(t, t.TempDir())
	rcv := start(t, cfg, user)
	inbox := topic.Inbox(topic.InboxSeed{0xb6}, topic.InboxDay(time.Now()))
	if err := rcv.session(t).RegisterInbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	rcv.stop(t)
	card := &PeerAddr{ID: rcv.ID(), Addr: rcv.Addr().String()}
	ss := snd.session(t)
	const count = 35
	for i := range count {
		if err := ss.PublishTo(ctx, inbox, card, fmt.Appendf(nil, "held %05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	cfg.ListenAddress = card.Addr
	var rs *Session
	startWith(t, cfg, user, func(tn *testNode) { rs = tn.session(t) })
	var got map[string]int
	wait.Until(t, 20*time.Second, "every held message stored at the recipient", func() bool {
		got = storedContents(t, rs, inbox)
		return len(got) >= count
	})
}

// TestHeldMailLostWithLinkHandedOverAgain: held mail handed over on a
// link that then closed in a way that may have lost it (queued, or on the
// wire) is handed over again when the recipient's node links back. The
// mail was held for an hour: the recipient's relink catch-up, which asks
// from shortly before the last message it read, does not reach it, so
// without the sender's own retry it was lost.
func TestHeldMailLostWithLinkHandedOverAgain(t *testing.T) {
	ctx := context.Background()
	nodes := startNetwork(t, 2, nil)
	snd, rcv := nodes[0], nodes[1]
	rs := rcv.session(t)
	inbox := topic.Inbox(topic.InboxSeed{0xb7}, topic.InboxDay(time.Now()))
	if err := rs.RegisterInbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "a link between the two, connected", func() bool {
		l, ok := snd.linkIfAny(rcv.ID())
		return ok && l.hasConn()
	})
	// Held an hour ago and handed over on the link (as sendHeld records
	// it), but lost on the way.
	held := time.Now().Add(-time.Hour)
	content := []byte("held an hour, lost on the way")
	to := &PeerAddr{ID: rcv.ID(), Addr: rcv.Addr().String()}
	if err := errors2(
		snd.store.PutHeld(ctx, store.Held{Topic: inbox, Node: to.ID, Addr: to.Addr, Since: held}),
		firstErr(snd.store.AddMessagesDurable(ctx, []store.NewMessage{{Topic: inbox, Hash: messageHash(inbox, content), Content: content, ReceivedAt: held}})),
	); err != nil {
		t.Fatal(err)
	}
	l, _ := snd.linkIfAny(rcv.ID())
	l.noteHandedOver(inbox, pendingTopic{to: to, since: held})
	snd.closeLink(l) // a close that may have lost messages
	if d := receive(t, rs, 1, 15*time.Second); !bytes.Equal(d[0].Content, content) {
		t.Fatalf("got %q", d[0].Content)
	}
}
