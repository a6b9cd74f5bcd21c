package node

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
	"github.com/asmtp/asmtp/internal/wait"
)

func TestHandshakeSlots(t *testing.T) {
	a := netip.MustParsePrefix("192.0.2.1/32")
	b := netip.MustParsePrefix("198.51.100.7/32")
	h := newHandshakeSlots(8, 2)
	steps := []struct {
		src  netip.Prefix
		want bool
	}{
		// Below half the slots, one source takes what it needs.
		{a, true}, {a, true}, {a, true}, {a, true},
		// At half, a source holding its share gets no more; others do.
		{a, false}, {b, true}, {b, true}, {b, false},
	}
	for i, s := range steps {
		if got := h.take(s.src); got != s.want {
			t.Fatalf("step %d: take(%v) = %v, want %v", i, s.src, got, s.want)
		}
	}
	h.release(b)
	if !h.take(b) {
		t.Fatal("a released slot is not taken again")
	}
	for _, c := range []struct{ addr, want string }{
		{"192.0.2.1:9800", "192.0.2.1/32"},
		{"[2001:db8:1:2:3:4:5:6]:9800", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.1]:9800", "192.0.2.1/32"},
	} {
		if got := sourceOf(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(c.addr))); got.String() != c.want {
			t.Errorf("sourceOf(%s) = %v, want %s", c.addr, got, c.want)
		}
	}
}

func TestByteBucket(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var b byteBucket
	if !b.take(now, 100, 10, 100) || b.take(now, 1, 10, 100) {
		t.Fatal("a new bucket holds exactly its burst")
	}
	if !b.take(now.Add(time.Second), 10, 10, 100) || b.take(now.Add(time.Second), 1, 10, 100) {
		t.Fatal("a second refills rate bytes")
	}
	b.debit(now.Add(time.Second), 1000, 10, 100)
	if b.tokens != -100 {
		t.Fatalf("debt %v, want the burst (-100)", b.tokens)
	}
	if b.take(now.Add(10*time.Second), 1, 10, 100) || !b.take(now.Add(21*time.Second), 1, 10, 100) {
		t.Fatal("a debt is paid back at rate before anything is taken")
	}
}

// A silent connection is closed after FirstByteTimeout, long before the
// handshake timeout, and frees its slot.
func TestSilentConnectionClosedAfterFirstByteTimeout(t *testing.T) {
	cfg, user := testConfig(t, t.TempDir())
	cfg.FirstByteTimeout = 200 * time.Millisecond
	n := start(t, cfg, user)
	c, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	began := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the node sent something to a silent connection")
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("silent connection closed after %v, want about %v", took, cfg.FirstByteTimeout)
	}
}

// A full pool refuses strangers beyond their three quarters and evicts
// nothing for them; a link the overlay chose takes a reserved place, and
// once the pool is full evicts a stranger rather than refusing.
func TestPoolRefusesStrangersKeepsChosen(t *testing.T) {
	cfg, user := testConfig(t, t.TempDir())
	cfg.MaxConnections = 8 // 6 for strangers, 2 reserved
	cfg.GossipInterval = time.Hour
	n := start(t, cfg, user)
	for range 10 {
		linkRaw(t, n.Addr().String(), n.ID()) // closed at the test's end
	}
	wait.Until(t, 5*time.Second, "six stranger links, four refused", func() bool {
		st := n.Stats()
		return st.Links == 6 && st.Refused == 4
	})
	var chosen []*link
	for i := range 3 {
		ocfg, ouser := testConfig(t, t.TempDir())
		ocfg.GossipInterval = time.Hour
		o := start(t, ocfg, ouser)
		if err := n.overlay.add(o.Gossip(), time.Now()); err != nil {
			t.Fatal(err)
		}
		l, err := n.linkTo(o.ID())
		if err != nil {
			t.Fatalf("chosen link %d refused: %v", i, err)
		}
		chosen = append(chosen, l)
	}
	wait.Until(t, 5*time.Second, "a full pool: three chosen links, five strangers", func() bool {
		return n.Stats().Links == 8
	})
	for i, l := range chosen {
		if l.isClosed() {
			t.Errorf("chosen link %d closed", i)
		}
	}
	// One more stranger is refused; the chosen links stay.
	linkRaw(t, n.Addr().String(), n.ID())
	wait.Until(t, 5*time.Second, "the eleventh stranger refused", func() bool { return n.Stats().Refused == 5 })
	for i, l := range chosen {
		if l.isClosed() {
			t.Errorf("chosen link %d closed by a stranger", i)
		}
	}
}

// linkRaw links a bare identity to the node and stays silent.
func linkRaw(t testing.TB, addr string, node keys.PublicKey) *wire.Conn {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wc, err := wire.Dial(ctx, raw, newKey(t), node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wc.Close() })
	return wc
}

// A stranger (a new inbound peer that is not our ring neighbour on the
// topic) gets an eighth of a link's storage quota: what it sends beyond is
// neither stored nor forwarded, costs a strike a second, and it is
// quarantined within seconds.
func TestStrangerStorageQuota(t *testing.T) {
	cfg, user := testConfig(t, t.TempDir())
	cfg.GossipInterval = time.Hour
	cfg.PeerStoreBurst = 16 * 60 << 10 // a stranger: two 60 KiB messages
	cfg.PeerStoreRate = 8
	n := start(t, cfg, user)
	tp := topic.Topic{0x9a}
	if err := n.session(t).Register(context.Background(), tp); err != nil {
		t.Fatal(err)
	}
	var forwarded atomic.Int64
	// The stranger does not claim the topic: it is no ring neighbour.
	src := dialRawPeer(t, n.Addr().String(), n.ID(), nil, nil)
	dialRawPeer(t, n.Addr().String(), n.ID(), []topic.Topic{tp}, func(wire.Topic) { forwarded.Add(1) })
	wait.Until(t, 5*time.Second, "a ring of the subscribing raw peer", func() bool {
		succ, _ := n.overlay.ring(tp)
		return len(succ) == 1
	})
	ctx := context.Background()
	content := make([]byte, 60<<10)
	sent := 0
	wait.Until(t, 10*time.Second, "the stranger quarantined", func() bool {
		binary.BigEndian.PutUint64(content, uint64(sent))
		if src.wc.WriteMessage(ctx, wire.Topic{Topic: tp, Content: content}) == nil {
			sent++
		}
		return n.Stats().Quarantined == 1
	})
	st := n.Stats()
	t.Logf("%d messages sent, %d stored, %d over quota, %d forwarded", sent, st.Stored, st.OverQuota, forwarded.Load())
	if st.Stored != 2 || st.OverQuota < 2 || forwarded.Load() > 2 {
		t.Errorf("stored %d (want 2), over quota %d (want ≥ 2), forwarded %d (want ≤ 2)", st.Stored, st.OverQuota, forwarded.Load())
	}
	if !n.strikes.blocked(keys.Public(src.key), time.Now()) {
		t.Error("the stranger is not quarantined")
	}
}

// ★ Mail on an inbox comes from senders' nodes that dial in for it and are
// never ring neighbours (an inbox ring is empty by design): they get a
// link's full storage quota, where a stranger on an ordinary topic gets an
// eighth. A 25 MiB mail is 400 such messages: at a stranger's share its
// sender was struck and quarantined after the first 4 MiB. The full quota
// still bounds a flood (TestStrangerStorageQuota's strikes apply beyond).
func TestInboxSendersGetFullQuota(t *testing.T) {
	for _, c := range []struct {
		name  string
		inbox bool
		want  uint64
	}{
		{"ordinary topic: a stranger's eighth", false, 2},
		{"inbox: a link's quota", true, 6},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, user := testConfig(t, t.TempDir())
			cfg.GossipInterval = time.Hour
			cfg.PeerStoreBurst = 16 * 60 << 10 // a stranger: two 60 KiB messages
			cfg.PeerStoreRate = 8
			n := start(t, cfg, user)
			ctx := context.Background()
			s := n.session(t)
			tp := topic.Inbox(topic.InboxSeed{8}, topic.InboxDay(time.Now()))
			register := s.Register
			if c.inbox {
				register = s.RegisterInbox
			}
			if err := register(ctx, tp); err != nil {
				t.Fatal(err)
			}
			src := dialRawPeer(t, n.Addr().String(), n.ID(), nil, nil)
			content := make([]byte, 60<<10)
			for i := range 6 {
				binary.BigEndian.PutUint64(content, uint64(i))
				if err := src.wc.WriteMessage(ctx, wire.Topic{Topic: tp, Content: content}); err != nil {
					t.Fatal(err)
				}
			}
			wait.Until(t, 5*time.Second, "the messages handled", func() bool {
				st := n.Stats()
				return st.Stored+st.OverQuota >= 6
			})
			if st := n.Stats(); st.Stored != c.want {
				t.Errorf("stored %d of 6 (over quota %d), want %d", st.Stored, st.OverQuota, c.want)
			}
		})
	}
}

// Under the storage cap, messages from peers that the user has not
// fetched stay and newer ones are refused; once the user says it fetched
// them (Session.Fetched), they make room for new ones.
func TestStorageCap(t *testing.T) {
	cfg, user := testConfig(t, t.TempDir())
	cfg.GossipInterval = time.Hour
	cfg.PeerStoreRate, cfg.PeerStoreBurst = 1<<30, 1<<30
	cfg.MaxStorageSize = 4 * 60 << 10
	n := start(t, cfg, user)
	tp := topic.Topic{0x9b}
	s := n.session(t)
	ctx := context.Background()
	if err := s.Register(ctx, tp); err != nil {
		t.Fatal(err)
	}
	src := dialRawPeer(t, n.Addr().String(), n.ID(), []topic.Topic{tp}, nil)
	content := make([]byte, 60<<10)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			binary.BigEndian.PutUint64(content, uint64(i))
			if err := src.wc.WriteMessage(ctx, wire.Topic{Topic: tp, Content: content}); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(0, 6)
	wait.Until(t, 5*time.Second, "four stored, two refused", func() bool {
		st := n.Stats()
		return st.Stored == 4 && st.OverQuota == 2
	})
	stored, err := s.Query(ctx, tp, 0)
	if err != nil || len(stored) != 4 {
		t.Fatalf("query: %d messages, %v", len(stored), err)
	}
	if err := s.Fetched(ctx, tp, stored[len(stored)-1].Cursor); err != nil {
		t.Fatal(err)
	}
	send(6, 8)
	wait.Until(t, 5*time.Second, "two more stored once the first four were fetched", func() bool {
		return n.Stats().Stored == 6
	})
	if size := n.store.Size(); size > cfg.MaxStorageSize {
		t.Errorf("stored %d bytes, over the %d cap", size, cfg.MaxStorageSize)
	}
}

// A message reported as not opening is charged to the link that brought
// it: what the link could still have stored is spent.
func TestReportChargesTheLink(t *testing.T) {
	cfg, user := testConfig(t, t.TempDir())
	cfg.GossipInterval = time.Hour
	cfg.PeerStoreBurst = 16 * 60 << 10 // a stranger: two 60 KiB messages
	cfg.PeerStoreRate = 8
	n := start(t, cfg, user)
	tp := topic.Topic{0x9c}
	s := n.session(t)
	ctx := context.Background()
	if err := s.Register(ctx, tp); err != nil {
		t.Fatal(err)
	}
	src := dialRawPeer(t, n.Addr().String(), n.ID(), nil, nil)
	content := make([]byte, 60<<10)
	send := func(i int) {
		binary.BigEndian.PutUint64(content, uint64(i))
		if err := src.wc.WriteMessage(ctx, wire.Topic{Topic: tp, Content: content}); err != nil {
			t.Fatal(err)
		}
	}
	send(0)
	wait.Until(t, 5*time.Second, "the first message stored", func() bool { return n.Stats().Stored == 1 })
	stored, err := s.Query(ctx, tp, 0)
	if err != nil || len(stored) != 1 {
		t.Fatalf("query: %d messages, %v", len(stored), err)
	}
	if err := s.Report(ctx, stored[0].Cursor); err != nil {
		t.Fatal(err)
	}
	send(1) // within the quota had the first one not been reported
	wait.Until(t, 5*time.Second, "the second message over the quota", func() bool { return n.Stats().OverQuota == 1 })
	if st := n.Stats(); st.Stored != 1 || st.Reported != 1 {
		t.Errorf("stored %d, reported %d; want 1 and 1", st.Stored, st.Reported)
	}
}

// The Topic messages still queued on a link that closes go to the other
// subscribers, not back to the closed link's peer.
func TestClosingLinkQueueRerouted(t *testing.T) {
	cfg, user := testConfig(t, t.TempDir())
	cfg.GossipInterval = time.Hour
	n := start(t, cfg, user)
	tp := topic.Topic{0x9d}
	n.subscribe(tp)
	var atX, atY atomic.Int64
	x := dialRawPeer(t, n.Addr().String(), n.ID(), []topic.Topic{tp}, func(wire.Topic) { atX.Add(1) })
	dialRawPeer(t, n.Addr().String(), n.ID(), []topic.Topic{tp}, func(wire.Topic) { atY.Add(1) })
	wait.Until(t, 5*time.Second, "ring of two raw peers", func() bool {
		succ, _ := n.overlay.ring(tp)
		return len(succ) == 2
	})
	n.mu.Lock()
	l := n.links[keys.Public(x.key)]
	n.mu.Unlock()
	// As if x's writer had stalled with three messages queued.
	closing := &link{remote: l.remote, out: make(chan wire.Message, 4), done: make(chan struct{})}
	for i := range 3 {
		closing.out <- wire.Topic{Topic: tp, Content: []byte{byte(i)}}
	}
	closing.out <- wire.Gossip{Gossip: n.Gossip()} // not a Topic: not re-sent
	ctx, _ := n.context()
	n.reroute(ctx, closing)
	wait.Until(t, 5*time.Second, "the three messages at y", func() bool { return atY.Load() == 3 })
	if got := atX.Load(); got != 0 {
		t.Errorf("%d re-routed messages went back to the closed link's peer", got)
	}
}
