package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
	"github.com/asmtp/asmtp/internal/wait"
)

// A v2 node sets gossip info bit 10 (signed); a node configured as v1
// (the project's v1 code path) does not. Each side reads the other's flag
// from its signed gossip (PeerNaming), and the v1 node keeps linking and
// relaying: messages on a topic the three subscribe to flow both ways.
func TestNamingFlagMixedNetwork(t *testing.T) {
	nodes := startNetwork(t, 3, nil)
	cfg, user := testConfig(t, t.TempDir())
	cfg.NamingV1 = true
	cfg.KnownPeers = []Peer{nodes[0].peer()}
	v1 := start(t, cfg, user)
	all := append(nodes, v1)
	for _, n := range all {
		if got, want := n.Gossip().NamingV2(), n != v1; got != want {
			t.Fatalf("node %s gossips v2 = %v, want %v", n.ID(), got, want)
		}
	}
	ctx := context.Background()
	tp := topic.Topic{0x12, 0x0a}
	sessions := make([]*Session, len(all))
	for i, n := range all {
		sessions[i] = n.session(t)
		if err := sessions[i].Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 20*time.Second, "rings with the v1 node", func() bool { return ringsConverged(all, all, tp) == nil })
	for _, n := range nodes {
		s := sessions[0]
		wait.Until(t, 5*time.Second, "naming flags learnt", func() bool {
			v2, known := s.PeerNaming(n.ID())
			w2, wknown := sessions[1].PeerNaming(v1.ID())
			return known && v2 && wknown && !w2
		})
	}
	if v2, known := sessions[3].PeerNaming(v1.ID()); !known || v2 {
		t.Errorf("the v1 node's own naming: v2 %v known %v", v2, known)
	}
	if _, known := sessions[0].PeerNaming(keys.PublicKey{1}); known {
		t.Error("an unknown node's naming is known")
	}
	for i, from := range []int{3, 0} { // from the v1 node, then to it
		msg := fmt.Appendf(nil, "mixed %d", i)
		if err := sessions[from].Publish(ctx, tp, msg); err != nil {
			t.Fatal(err)
		}
		for j, s := range sessions {
			if j == from {
				continue
			}
			if d := receive(t, s, 1, 10*time.Second); !bytes.Equal(d[0].Content, msg) {
				t.Fatalf("node %d got %q, want %q", j, d[0].Content, msg)
			}
		}
	}
}

// An inbox topic (RegisterInbox) stays out of the settled test, also
// after a restart: a node that registers one is settled at once, where an
// ordinary topic nobody else subscribes to keeps it unsettled (ticking
// fast) for JoinWindow (§16.3).
func TestInboxLeftOutOfSettled(t *testing.T) {
	ctx := context.Background()
	cfg, user := testConfig(t, t.TempDir())
	cfg.GossipInterval = time.Hour
	n := start(t, cfg, user)
	s := n.session(t)
	inbox := topic.Inbox(topic.InboxSeed{1}, topic.InboxDay(time.Now()))
	if err := s.RegisterInbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	if !n.overlay.subscribed(inbox) || !n.overlay.settled(time.Now()) {
		t.Fatalf("after RegisterInbox: subscribed %v, settled %v; want both", n.overlay.subscribed(inbox), n.overlay.settled(time.Now()))
	}
	other := topic.Topic{0x5e}
	if err := s.Register(ctx, other); err != nil {
		t.Fatal(err)
	}
	if n.overlay.settled(time.Now()) {
		t.Fatal("an ordinary empty ring left the node settled")
	}
	if err := s.Deregister(ctx, other); err != nil {
		t.Fatal(err)
	}
	n.stop(t)
	cfg.ListenAddress = n.Addr().String()
	n2 := start(t, cfg, user)
	if !n2.isInbox(inbox) || !n2.overlay.subscribed(inbox) || !n2.overlay.settled(time.Now()) {
		t.Fatalf("after a restart: inbox %v, subscribed %v, settled %v; want all", n2.isInbox(inbox), n2.overlay.subscribed(inbox), n2.overlay.settled(time.Now()))
	}
	if owesNothing(n2) != true {
		t.Error("an inbox topic is owed a catch-up from other subscribers")
	}
}

// PublishTo delivers to the named node's inbox without the sender
// subscribing to it; while the recipient's node is down the sender's
// node holds the mail and hands it over when the recipient's node comes
// back (its gossip on the new link shows the inbox), without the
// recipient asking. Holders counts the recipient's node once its gossip
// came (what the bridge's outbox waits for).
func TestPublishToHeldForOfflineRecipient(t *testing.T) {
	ctx := context.Background()
	nodes := startNetwork(t, 2, nil)
	snd := nodes[0]
	cfg, user := testConfig(t, t.TempDir())
	rcv := start(t, cfg, user) // knows nobody: the card is the only way
	ss, rs := snd.session(t), rcv.session(t)
	inbox := topic.Inbox(topic.InboxSeed{2}, topic.InboxDay(time.Now()))
	if err := rs.RegisterInbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	card := &PeerAddr{ID: rcv.ID(), Addr: rcv.Addr().String()}
	if err := ss.PublishTo(ctx, inbox, card, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if d := receive(t, rs, 1, 10*time.Second); string(d[0].Content) != "hello" {
		t.Fatalf("got %q", d[0].Content)
	}
	if snd.overlay.subscribed(inbox) {
		t.Fatal("the sender subscribed to the recipient's inbox")
	}
	wait.Until(t, 5*time.Second, "the recipient counted as holder", func() bool { return ss.Holders(inbox, 1) == 1 })
	// Online, each mail goes once: nothing pending is sent again. (The
	// first went before the recipient's gossip showed the inbox on the
	// link, and again after it: the hand-over cannot know it arrived.)
	wait.Until(t, 5*time.Second, "the first mail handed over", func() bool {
		snd.naming.mu.Lock()
		defer snd.naming.mu.Unlock()
		return len(snd.naming.pending) == 0
	})
	// The first mail's second copy may still be on its way: a marker sent
	// after it on the same link arrives after it, so the count taken once
	// the marker is in holds every copy sent so far.
	if err := ss.PublishTo(ctx, inbox, card, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	receive(t, rs, 1, 10*time.Second)
	dups := rcv.Stats().Duplicates
	for i := range 5 {
		if err := ss.PublishTo(ctx, inbox, card, fmt.Appendf(nil, "online %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	receive(t, rs, 5, 10*time.Second)
	wait.Never(t, time.Second, "a mail sent twice", func() bool { return rcv.Stats().Duplicates > dups })

	rcv.stop(t)
	// A crawler copied the inbox from the recipient's gossip into its own:
	// the sender's node knows it as a subscriber, yet hands it nothing
	// and does not count it as a holder.
	var leaked atomic.Int64
	dialRawPeer(t, snd.Addr().String(), snd.ID(), []topic.Topic{inbox}, func(m wire.Topic) {
		if m.Topic == inbox {
			leaked.Add(1)
		}
	})
	wait.Until(t, 5*time.Second, "the crawler known as a subscriber", func() bool { return len(snd.overlay.handoff(inbox)) > 0 })
	for i := range 3 {
		if err := ss.PublishTo(ctx, inbox, card, fmt.Appendf(nil, "offline %d", i)); err != nil {
			t.Fatalf("publish while the recipient is down: %v", err)
		}
	}
	if h := ss.Holders(inbox, 4); h != 0 {
		t.Errorf("Holders with the recipient down = %d, want 0", h)
	}
	cfg.ListenAddress = rcv.Addr().String()
	var rs2 *Session
	startWith(t, cfg, user, func(tn *testNode) { rs2 = tn.session(t) })
	got := map[string]bool{}
	for _, d := range receive(t, rs2, 3, 20*time.Second) {
		got[string(d.Content)] = true
	}
	for i := range 3 {
		if !got[fmt.Sprintf("offline %d", i)] {
			t.Errorf("offline %d not delivered: %v", i, got)
		}
	}
	if n := leaked.Load(); n != 0 {
		t.Errorf("the crawler got %d messages of the inbox", n)
	}
}

// CatchUp fetches an inbox's messages from a named node that holds them
// (§16.6): the recipient's node was down when they were published, and
// the sender's node had no one to hand them to.
func TestCatchUpFromNamedNode(t *testing.T) {
	ctx := context.Background()
	snd := startNetwork(t, 1, nil)[0]
	cfg, user := testConfig(t, t.TempDir())
	rcv := start(t, cfg, user)
	rs := rcv.session(t)
	inbox := topic.Inbox(topic.InboxSeed{3}, topic.InboxDay(time.Now()))
	if err := rs.RegisterInbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Minute)
	ss := snd.session(t)
	// No hint: nothing is pushed, only a query fetches them.
	for i := range 2 {
		if err := ss.PublishTo(ctx, inbox, nil, fmt.Appendf(nil, "held %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	noMore(t, rs, 300*time.Millisecond)
	if err := rs.CatchUp(ctx, inbox, PeerAddr{ID: snd.ID(), Addr: snd.Addr().String()}, since); err != nil {
		t.Fatal(err)
	}
	got := receive(t, rs, 2, 10*time.Second)
	if string(got[0].Content) != "held 0" || string(got[1].Content) != "held 1" {
		t.Fatalf("caught up %q, %q", got[0].Content, got[1].Content)
	}
	if err := rs.CatchUp(ctx, topic.Topic{9}, PeerAddr{ID: snd.ID(), Addr: snd.Addr().String()}, since); err == nil {
		t.Error("CatchUp of a topic the user did not register was accepted")
	}
}

// probe is a bare link posing as a node: it announces a gossip with the
// given flags and topics, then records, per query, the bytes of every
// message read until the answer's Complete (or Refused) marker.
type probe struct {
	t  *testing.T
	wc *wire.Conn
}

func dialProbe(t *testing.T, tn *testNode, key ed25519.PrivateKey, flags uint16, topics ...topic.Topic) *probe {
	t.Helper()
	raw, err := net.Dial("tcp", tn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wc, err := wire.Dial(ctx, raw, key, tn.ID())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wc.Close() })
	subs := make([]gossip.Subscription, len(topics))
	for i, tp := range topics {
		subs[i] = gossip.Subscription{Topic: tp, Interest: 1}
	}
	g, err := gossip.NewFlagged(key, flags, gossip.FromTime(time.Now()), netip.MustParseAddrPort("127.0.0.1:1"), subs)
	if err != nil {
		t.Fatal(err)
	}
	if err := wc.WriteMessage(ctx, wire.Gossip{Gossip: g}); err != nil {
		t.Fatal(err)
	}
	return &probe{t: t, wc: wc}
}

// ask sends q and returns the encoded messages of its answer, gossip left
// out.
func (p *probe) ask(q wire.QueryTopicMessages) [][]byte {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.wc.WriteMessage(ctx, q); err != nil {
		p.t.Fatal(err)
	}
	var out [][]byte
	for {
		m, err := p.wc.ReadMessage(ctx)
		if err != nil {
			p.t.Fatalf("reading the answer to %x: %v (after %d messages)", q.Topic[:4], err, len(out))
		}
		if _, ok := m.(wire.Gossip); ok {
			continue
		}
		b, err := wire.Encode(m)
		if err != nil {
			p.t.Fatal(err)
		}
		out = append(out, b)
		if mk, ok := wire.ParseAnswerMarker(m.(wire.Topic)); ok && mk.Query == q && mk.Status != wire.AnswerBegins {
			return out
		}
	}
}

// ★ Attack: a crawler copies topics it saw in gossip (an inbox, from its
// owner's gossip) into its own gossip and queries every node for them,
// to learn who holds mail for whom. A v2 node answers it exactly as a
// node that keeps nothing (§16.7): the same bytes, for its own inbox, for
// the mail it holds for another node, and for a kept topic with nothing
// new; a peer that may read a topic still gets its messages. Before the
// rule (the v1 path: any topic the asker advertises), the node answered
// the crawler with the stored mail of both.
func TestQueryProbeCannotTellKeptFromNothing(t *testing.T) {
	ctx := context.Background()
	nodes := startNetwork(t, 2, func(c *Config) { c.GossipInterval = time.Hour })
	keeper, empty := nodes[0], nodes[1]
	ks := keeper.session(t)
	day := topic.InboxDay(time.Now())
	own := topic.Inbox(topic.InboxSeed{4}, day)                            // the keeper's account's inbox
	theirs := topic.Inbox(topic.InboxSeed{5}, day)                         // a contact's inbox the keeper holds mail for
	conversation := topic.Topic{0xc0, 0x41}                                // a v1 topic the keeper keeps
	recipient := PeerAddr{ID: keys.Public(newKey(t)), Addr: "127.0.0.1:1"} // down
	if err := ks.RegisterInbox(ctx, own); err != nil {
		t.Fatal(err)
	}
	if err := ks.Register(ctx, conversation); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		msg := fmt.Appendf(nil, "mail %d", i)
		if err := errors2(ks.Publish(ctx, own, msg), ks.PublishTo(ctx, theirs, &recipient, msg), ks.Publish(ctx, conversation, msg)); err != nil {
			t.Fatal(err)
		}
	}
	after := gossip.FromTime(time.Now().Add(2 * time.Second)) // "nothing since"

	crawler := newKey(t)
	for _, v2 := range []uint16{0, gossip.FlagNamingV2} {
		pk := dialProbe(t, keeper, crawler, v2, own, theirs, conversation)
		pe := dialProbe(t, empty, crawler, v2, own, theirs, conversation)
		for _, c := range []struct {
			name string
			q    wire.QueryTopicMessages
		}{
			{"own inbox", wire.QueryTopicMessages{Topic: own}},
			{"held for another node", wire.QueryTopicMessages{Topic: theirs}},
			{"kept, nothing since", wire.QueryTopicMessages{Topic: conversation, Since: after}},
		} {
			kept, none := pk.ask(c.q), pe.ask(c.q)
			if len(kept) != 2 || !equalAnswers(kept, none) {
				t.Errorf("flags %#x, %s: keeper answered %d messages, a node keeping nothing %d; want the same 2 (Begins, Complete)", v2, c.name, len(kept), len(none))
			}
		}
		// What the crawler may read (a topic it advertises, §15.4) it
		// reads: the probe sees real answers.
		if got := pk.ask(wire.QueryTopicMessages{Topic: conversation}); len(got) != 2+3 {
			t.Errorf("flags %#x: the kept conversation answered with %d messages, want Begins, 3 and Complete", v2, len(got))
		}
	}
}

func errors2(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func equalAnswers(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// A v2 node keeps passports without a passport topic (KeepPassport), and
// another node still finds one by id (GetPassport): it asks the members of
// the passport's intro bucket, among them the account's node. No gossip
// shows a passport topic, before or after the lookup.
func TestPassportLookupWithoutPassportTopics(t *testing.T) {
	ctx := context.Background()
	nodes := startNetwork(t, 3, nil)
	home, far := nodes[1], nodes[2]
	sHome, sFar := home.session(t), far.session(t)
	p, _, err := passport.Create(rand.Reader, time.Now(), "alice", home.user, keys.PassphraseSeed("test"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := sHome.KeepPassport(ctx, p.Export())
	if err != nil || id != p.ID() {
		t.Fatalf("keep passport: %s, %v", id, err)
	}
	// The user side registers its account's intro bucket (§16.4).
	bucket := topic.IntroBucket(id, sHome.BucketBits())
	if err := sHome.Register(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "the far node learns a bucket member", func() bool { return len(far.overlay.handoff(bucket)) > 0 })
	got, err := sFar.GetPassport(ctx, id)
	if err != nil || !bytes.Equal(got, p.Export()) {
		t.Fatalf("lookup by id: %v", err)
	}
	for _, n := range nodes {
		for _, s := range n.Gossip().Subscriptions {
			if _, ok := s.Topic.Passport(); ok {
				t.Errorf("node %s advertises passport topic %s", n.ID(), s.Topic)
			}
		}
	}
	// PutPassport (a v1 contact, §16.8) subscribes; KeepPassport again
	// unsubscribes.
	if _, err := sFar.PutPassport(ctx, got); err != nil || !far.overlay.subscribed(topic.ForPassport(id)) {
		t.Fatalf("PutPassport: %v, subscribed %v", err, far.overlay.subscribed(topic.ForPassport(id)))
	}
	if _, err := sFar.KeepPassport(ctx, got); err != nil || far.overlay.subscribed(topic.ForPassport(id)) {
		t.Fatalf("KeepPassport: %v, subscribed %v", err, far.overlay.subscribed(topic.ForPassport(id)))
	}
}

// The user link carries the naming-v2 operations (wire.UserOp on
// wire.UserOpTopic, PROTOCOL.md §16.11): a device registers an inbox,
// publishes to another node's inbox with a hint, catches an inbox up from
// a named node, keeps a passport without its topic, and asks for a
// node's naming and a topic's holders.
func TestUserLinkNamingOps(t *testing.T) {
	ctx := context.Background()
	snd := startNetwork(t, 1, nil)[0]
	cfg, user := testConfig(t, t.TempDir())
	rcv := start(t, cfg, user)
	fromSnd, fromRcv := make(chan wire.Topic, 16), make(chan wire.Topic, 16)
	dSnd := dialWireUser(t, snd, func(m wire.Topic) { fromSnd <- m })
	dRcv := dialWireUser(t, rcv, func(m wire.Topic) { fromRcv <- m })
	send := func(d *wire.Conn, ms ...wire.Message) {
		t.Helper()
		for _, m := range ms {
			if err := d.WriteMessage(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	op := func(o wire.UserOp) wire.Message {
		t.Helper()
		m, err := o.Message()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	next := func(ch chan wire.Topic) wire.Topic {
		t.Helper()
		select {
		case m := <-ch:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("nothing came to the device")
		}
		return wire.Topic{}
	}
	day := topic.InboxDay(time.Now())
	inbox, late := topic.Inbox(topic.InboxSeed{6}, day), topic.Inbox(topic.InboxSeed{7}, day)
	rcvAddr := PeerAddr{ID: rcv.ID(), Addr: rcv.Addr().String()}

	send(dRcv, op(wire.UserOp{Code: wire.OpRegisterInbox, Topic: inbox}))
	wait.Until(t, 5*time.Second, "the inbox registered", func() bool { return rcv.isInbox(inbox) })
	send(dSnd, op(wire.UserOp{Code: wire.OpPublishTo, Topic: inbox, Node: rcvAddr.ID, Addr: rcvAddr.Addr}),
		wire.Topic{Topic: inbox, Content: []byte("via device")})
	if m := next(fromRcv); m.Topic != inbox || string(m.Content) != "via device" {
		t.Fatalf("recipient device got %x %q", m.Topic[:4], m.Content)
	}
	if snd.overlay.subscribed(inbox) {
		t.Fatal("the sender subscribed to the inbox")
	}

	wait.Until(t, 5*time.Second, "the sender learns the recipient's naming", func() bool {
		v2, known := snd.peerNaming(rcv.ID())
		return v2 && known
	})
	send(dSnd, op(wire.UserOp{Code: wire.OpPeerNaming, Node: rcv.ID()}), op(wire.UserOp{Code: wire.OpHolders, Topic: inbox, Value: 4}),
		op(wire.UserOp{Code: wire.OpBucketBits}))
	for _, want := range []wire.UserOp{
		{Code: wire.OpPeerNaming | wire.OpAnswer, Node: rcv.ID(), Value: 2},
		{Code: wire.OpHolders | wire.OpAnswer, Topic: inbox, Value: 1},
		{Code: wire.OpBucketBits | wire.OpAnswer, Value: 0},
	} {
		got, ok, err := wire.ParseUserOp(next(fromSnd))
		if !ok || err != nil || got != want {
			t.Fatalf("answer %+v (%v, %v), want %+v", got, ok, err, want)
		}
	}

	// Held at the sender before the recipient registers it: only a
	// catch-up brings it.
	send(dSnd, op(wire.UserOp{Code: wire.OpPublishTo, Topic: late}), wire.Topic{Topic: late, Content: []byte("late")})
	wait.Until(t, 5*time.Second, "held at the sender", func() bool {
		ms, _ := snd.store.MessagesSince(ctx, late, time.Time{}, 10)
		return len(ms) == 1
	})
	send(dRcv, op(wire.UserOp{Code: wire.OpRegisterInbox, Topic: late}),
		op(wire.UserOp{Code: wire.OpCatchUp, Topic: late, Node: snd.ID(), Addr: snd.Addr().String()}))
	if m := next(fromRcv); m.Topic != late || string(m.Content) != "late" {
		t.Fatalf("caught up %x %q", m.Topic[:4], m.Content)
	}

	p, _, err := passport.Create(rand.Reader, time.Now(), "dev", snd.user, keys.PassphraseSeed("test"))
	if err != nil {
		t.Fatal(err)
	}
	send(dSnd, op(wire.UserOp{Code: wire.OpKeepPassport, Passport: p.ID()}), wire.PutPassport{ID: p.ID(), Blocks: p.Export()})
	wait.Until(t, 5*time.Second, "the passport kept", func() bool {
		_, ok, _ := snd.store.Passport(ctx, p.ID())
		return ok
	})
	if snd.overlay.subscribed(topic.ForPassport(p.ID())) {
		t.Fatal("a kept passport's topic was subscribed")
	}
}

// What PublishTo acknowledged survives a restart of the sender's node
// while the recipient's node is down: the held record and the mail are in
// the store, the hand-over resumes at start, and the recipient gets the
// mail once it is back, without asking.
func TestHeldMailSurvivesSenderRestart(t *testing.T) {
	ctx := context.Background()
	scfg, suser := testConfig(t, t.TempDir())
	rcfg, ruser := testConfig(t, t.TempDir())
	snd, rcv := start(t, scfg, suser), start(t, rcfg, ruser)
	inbox := topic.Inbox(topic.InboxSeed{10}, topic.InboxDay(time.Now()))
	if err := rcv.session(t).RegisterInbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	card := &PeerAddr{ID: rcv.ID(), Addr: rcv.Addr().String()}
	rcv.stop(t)
	ss := snd.session(t)
	for i := range 2 {
		if err := ss.PublishTo(ctx, inbox, card, fmt.Appendf(nil, "kept %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	snd.stop(t)
	scfg.ListenAddress = snd.Addr().String()
	start(t, scfg, suser)
	rcfg.ListenAddress = rcv.Addr().String()
	var rs *Session
	startWith(t, rcfg, ruser, func(tn *testNode) { rs = tn.session(t) })
	got := receive(t, rs, 2, 20*time.Second)
	if string(got[0].Content) != "kept 0" || string(got[1].Content) != "kept 1" {
		t.Fatalf("got %q, %q", got[0].Content, got[1].Content)
	}
}

// A named node that stays down is greeted (dialled) ever less often: the
// wait doubles from a gossip round up to maxGreetWait, where every round
// would dial it (20 times in 2 s of 100 ms rounds here).
func TestPendingGreetingsBackOff(t *testing.T) {
	ctx := context.Background()
	cfg, user := testConfig(t, t.TempDir())
	n := start(t, cfg, user)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	inbox := topic.Inbox(topic.InboxSeed{11}, topic.InboxDay(time.Now()))
	if err := n.session(t).PublishTo(ctx, inbox, &PeerAddr{ID: keys.Public(newKey(t)), Addr: dead}, []byte("m")); err != nil {
		t.Fatal(err)
	}
	tries := func() int {
		n.naming.mu.Lock()
		defer n.naming.mu.Unlock()
		return n.naming.pending[inbox].tries
	}
	wait.Until(t, 5*time.Second, "a first greeting", func() bool { return tries() > 0 })
	wait.Never(t, 2*time.Second, "more than 6 greetings in 2 s", func() bool { return tries() > 6 })
	if tries() < 2 {
		t.Errorf("greeted %d times in 2 s, want it to keep trying", tries())
	}
}

// Mail handed over on a link that then closed may have been lost on the
// way (links carry no acknowledgements): when the recipient's node links
// to the sender's again, it asks it for its inboxes since shortly before
// the loss (§15.4's relink catch-up), though the sender does not
// subscribe to them, and gets what the sender holds for it.
func TestRelinkCatchesUpHeldInboxMail(t *testing.T) {
	ctx := context.Background()
	nodes := startNetwork(t, 2, nil)
	snd, rcv := nodes[0], nodes[1]
	rs := rcv.session(t)
	inbox := topic.Inbox(topic.InboxSeed{12}, topic.InboxDay(time.Now()))
	if err := rs.RegisterInbox(ctx, inbox); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "a link between the two, connected", func() bool {
		l, ok := rcv.linkIfAny(snd.ID())
		return ok && l.hasConn()
	})
	// Handed over on the link, then lost with it: stored and recorded
	// for the recipient at the sender, nothing pending.
	content := []byte("lost on the way")
	if err := errors2(
		snd.store.PutHeld(ctx, store.Held{Topic: inbox, Node: rcv.ID(), Addr: rcv.Addr().String(), Since: time.Now()}),
		firstErr(snd.store.AddMessagesDurable(ctx, []store.NewMessage{{Topic: inbox, Hash: messageHash(inbox, content), Content: content, ReceivedAt: time.Now()}})),
	); err != nil {
		t.Fatal(err)
	}
	l, _ := rcv.linkIfAny(snd.ID())
	rcv.closeLink(l) // a close that may have lost messages
	if d := receive(t, rs, 1, 15*time.Second); !bytes.Equal(d[0].Content, content) {
		t.Fatalf("got %q", d[0].Content)
	}
}

func firstErr[T any](_ T, err error) error { return err }

// A passport topic is answered to v1 peers only (§16.7): a v2 node never
// subscribes to one, so a v2 peer that advertises one copied it. Both get
// Begins and Complete; only the v1 peer gets the messages between.
func TestPassportTopicAnsweredToV1PeersOnly(t *testing.T) {
	ctx := context.Background()
	cfg, user := testConfig(t, t.TempDir())
	cfg.GossipInterval = time.Hour
	n := start(t, cfg, user)
	s := n.session(t)
	tp := topic.ForPassport(passport.Hash{0xaa})
	if err := s.Register(ctx, tp); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Publish(ctx, tp, fmt.Appendf(nil, "block %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		flags uint16
		want  int
	}{{0, 2 + 3}, {gossip.FlagNamingV2, 2}} {
		p := dialProbe(t, n, newKey(t), c.flags, tp)
		if got := p.ask(wire.QueryTopicMessages{Topic: tp}); len(got) != c.want {
			t.Errorf("peer with flags %#x: %d messages in the answer, want %d", c.flags, len(got), c.want)
		}
	}
}

// A node configured as v1 still keeps its users' inboxes and the mail it
// holds for another node from a crawler that advertises them: it refuses
// the query, as v1 refused any topic a peer may not read.
func TestV1NodeGuardsInboxes(t *testing.T) {
	ctx := context.Background()
	cfg, user := testConfig(t, t.TempDir())
	cfg.GossipInterval, cfg.NamingV1 = time.Hour, true
	n := start(t, cfg, user)
	s := n.session(t)
	day := topic.InboxDay(time.Now())
	own, theirs := topic.Inbox(topic.InboxSeed{13}, day), topic.Inbox(topic.InboxSeed{14}, day)
	if err := s.RegisterInbox(ctx, own); err != nil {
		t.Fatal(err)
	}
	down := &PeerAddr{ID: keys.Public(newKey(t)), Addr: "127.0.0.1:1"}
	if err := errors2(s.Publish(ctx, own, []byte("m")), s.PublishTo(ctx, theirs, down, []byte("m"))); err != nil {
		t.Fatal(err)
	}
	p := dialProbe(t, n, newKey(t), 0, own, theirs)
	for _, tp := range []topic.Topic{own, theirs} {
		got := p.ask(wire.QueryTopicMessages{Topic: tp})
		mk, ok := wire.ParseAnswerMarker(decodeTopic(t, got[len(got)-1]))
		if len(got) != 1 || !ok || mk.Status != wire.AnswerRefused {
			t.Errorf("topic %x: %d messages, last marker %v; want Refused alone", tp[:4], len(got), mk.Status)
		}
	}
}

func decodeTopic(t *testing.T, b []byte) wire.Topic {
	t.Helper()
	m, err := wire.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return m.(wire.Topic)
}
