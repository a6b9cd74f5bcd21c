package gossip

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
)

// upstreamVector is the known_gossips entry of upstream asmtpd's config
// template (PROTOCOL.md §13.1).
const upstreamVector = "80007353f1e7fb03b2346638b4e2b93f810c84853787970be0844df63cdc9979a01d0221561d561f667d26482dc49b0ef76a32f94aeecb4c01191510ca8ec977bd714545888ad0117fa81a176922927114db64cbc6666d2fa2877207baabe0080489fac7c054335c68fcc90d"

func gossipTestHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gossipTestKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func TestUpstreamVector(t *testing.T) {
	b := gossipTestHex(t, upstreamVector)
	g, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := g.ID.String(), "7353f1e7fb03b2346638b4e2b93f810c84853787970be0844df63cdc9979a01d"; got != want {
		t.Errorf("id = %s, want %s", got, want)
	}
	if got, want := g.Addr, netip.MustParseAddrPort("86.31.102.125:9800"); got != want {
		t.Errorf("addr = %s, want %s", got, want)
	}
	if g.Time != 35739165 {
		t.Errorf("time = %d, want 35739165", g.Time)
	}
	if got, want := ToTime(g.Time), time.Date(2021, 2, 17, 15, 32, 45, 0, time.UTC); !got.Equal(want) {
		t.Errorf("time = %s, want %s", got, want)
	}
	if len(g.Subscriptions) != 0 {
		t.Errorf("%d subscriptions, want 0", len(g.Subscriptions))
	}
	if err := g.Verify(); err != nil {
		t.Errorf("verify: %v", err)
	}
	if got := g.Encode(); !bytes.Equal(got, b) {
		t.Errorf("re-encoded to %x", got)
	}
}

// Every single-bit change of the upstream vector is rejected, with an error
// that says what is wrong.
func TestUpstreamVectorBitFlips(t *testing.T) {
	b := gossipTestHex(t, upstreamVector)
	for pos := range b {
		for bit := range 8 {
			c := bytes.Clone(b)
			c[pos] ^= 1 << bit
			_, err := Decode(c)
			if err == nil {
				t.Fatalf("byte %d bit %d flipped: accepted", pos, bit)
			}
			var want string
			switch {
			case pos == 0 && bit == 7:
				want = "but info 0x0000 (0 subscriptions) means 120" // IPv4 flag cleared
			case pos == 0 && bit >= 2:
				// A flag bit (10–14): the length still fits, but the
				// signature covers the flags.
				want = "invalid signature for node"
			case pos < InfoSize:
				want = "subscriptions) means"
			default:
				want = "invalid signature for node"
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("byte %d bit %d flipped: %q, want it to contain %q", pos, bit, err, want)
			}
		}
	}
}

func TestNewDecodeRoundTrip(t *testing.T) {
	k := gossipTestKey(3)
	many := make([]Subscription, MaxSubscriptions)
	for i := range many {
		many[i] = Subscription{Topic: topic.Topic{byte(i), byte(i >> 8)}, Interest: byte(i)}
	}
	for _, c := range []struct {
		name string
		addr string
		subs []Subscription
		size int
	}{
		{"ipv4, none", "192.0.2.1:9800", nil, 108},
		{"ipv6, none", "[2001:db8::1]:9800", nil, 120},
		{"ipv4-mapped ipv6 stays ipv6", "[::ffff:192.0.2.1]:1", nil, 120},
		{"ipv4, two", "192.0.2.1:65535", []Subscription{{topic.Topic{1}, 252}, {topic.Topic{2}, 0}}, 108 + 66},
		{"ipv6, maximum", "[2001:db8::1]:0", many, MaxSize},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := netip.MustParseAddrPort(c.addr)
			g, err := New(k, 1234, addr, c.subs)
			if err != nil {
				t.Fatal(err)
			}
			b := g.Encode()
			if len(b) != c.size || g.Size() != c.size {
				t.Fatalf("size %d (Size %d), want %d", len(b), g.Size(), c.size)
			}
			d, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if d.ID != g.ID || d.Time != 1234 || d.Addr != addr || d.Signature != g.Signature || len(d.Subscriptions) != len(c.subs) {
				t.Fatalf("decoded %+v", d)
			}
			for i := range c.subs {
				if d.Subscriptions[i] != c.subs[i] {
					t.Fatalf("subscription %d = %+v, want %+v", i, d.Subscriptions[i], c.subs[i])
				}
			}
			if !bytes.Equal(d.Encode(), b) {
				t.Fatal("re-encoding differs")
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	k := gossipTestKey(3)
	addr := netip.MustParseAddrPort("192.0.2.1:9800")
	for _, c := range []struct {
		name string
		key  ed25519.PrivateKey
		addr netip.AddrPort
		subs int
	}{
		{"short key", k[:32], addr, 0},
		{"no address", k, netip.AddrPort{}, 0},
		{"zoned address", k, netip.MustParseAddrPort("[fe80::1%eth0]:1"), 0},
		{"too many subscriptions", k, addr, MaxSubscriptions + 1},
	} {
		if _, err := New(c.key, 0, c.addr, make([]Subscription, c.subs)); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	g, err := New(gossipTestKey(3), 1, netip.MustParseAddrPort("192.0.2.1:9800"), []Subscription{{topic.Topic{9}, 1}})
	if err != nil {
		t.Fatal(err)
	}
	good := g.Encode()
	otherKey := bytes.Clone(good)
	copy(otherKey[InfoSize:], gossipTestKey(4)[32:])
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"one byte", []byte{0x80}, "too short"},
		{"info only", []byte{0x80, 0x00}, "means 108"},
		{"truncated", good[:len(good)-1], "means 141"},
		{"extended", append(bytes.Clone(good), 0), "means 141"},
		{"flag bit not signed", append([]byte{0x84, 0x01}, good[2:]...), "invalid signature"},
		{"signature by another key", otherKey, "invalid signature"},
	} {
		if _, err := Decode(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Verify catches a changed field.
	g.Time++
	if err := g.Verify(); err == nil {
		t.Error("verify accepted a changed time")
	}
}

// TestFlags: bit 10 (naming v2) is signed and decoded; unassigned bits
// 11–14 are accepted, not rejected, and kept, so a gossip passed on
// re-encodes to the bytes its signature covers; a v1 gossip has none.
func TestFlags(t *testing.T) {
	k := gossipTestKey(5)
	addr := netip.MustParseAddrPort("192.0.2.7:9800")
	subs := []Subscription{{topic.Topic{7}, 63}}
	for _, c := range []struct {
		name  string
		flags uint16
		v2    bool
		info0 byte // first info byte: IPv4 bit and flags
	}{
		{"v1", 0, false, 0x80},
		{"v2", FlagNamingV2, true, 0x84},
		{"v2 and unassigned bits 11–14", 0x7c00, true, 0xfc},
		{"unassigned bit 14 only", 1 << 14, false, 0xc0},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := NewFlagged(k, c.flags, 100, addr, subs)
			if err != nil {
				t.Fatal(err)
			}
			b := g.Encode()
			if b[0] != c.info0 || b[1] != 1 {
				t.Fatalf("info = %02x%02x, want %02x01", b[0], b[1], c.info0)
			}
			d, err := Decode(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if d.Flags != c.flags || d.NamingV2() != c.v2 {
				t.Errorf("decoded flags %#04x (v2 %v), want %#04x (v2 %v)", d.Flags, d.NamingV2(), c.flags, c.v2)
			}
			if !bytes.Equal(d.Encode(), b) {
				t.Error("re-encoded gossip differs from the signed bytes")
			}
			// The flags are covered by the signature: clearing them
			// after signing is caught.
			if c.flags != 0 {
				stripped := bytes.Clone(b)
				stripped[0] &^= byte(c.flags >> 8)
				if _, err := Decode(stripped); err == nil || !strings.Contains(err.Error(), "invalid signature") {
					t.Errorf("flags cleared after signing: %v, want an invalid signature", err)
				}
			}
		})
	}
	if _, err := NewFlagged(k, 1<<15, 100, addr, nil); err == nil {
		t.Error("NewFlagged accepted a flag outside bits 10–14")
	}
}

func TestTime(t *testing.T) {
	for _, c := range []struct {
		in   time.Time
		want uint32
	}{
		{Epoch(), 0},
		{Epoch().Add(-time.Second), 0},
		{Epoch().Add(1500 * time.Millisecond), 1},
		{time.Date(2021, 2, 17, 15, 32, 45, 0, time.UTC), 35739165},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), 1<<32 - 1},
	} {
		if got := FromTime(c.in); got != c.want {
			t.Errorf("FromTime(%s) = %d, want %d", c.in, got, c.want)
		}
	}
	if got := ToTime(0); !got.Equal(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("ToTime(0) = %s", got)
	}
	if got := ToTime(1<<32 - 1); FromTime(got) != 1<<32-1 {
		t.Errorf("ToTime(max) = %s does not round-trip", got)
	}
}

// FuzzDecodeGossip: Decode never panics, and what it accepts re-encodes to
// the same bytes and verifies.
func FuzzDecodeGossip(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Decode(b)
		if err != nil {
			return
		}
		if got := g.Encode(); !bytes.Equal(got, b) {
			t.Fatalf("decoded %x, re-encoded %x", b, got)
		}
		if err := g.Verify(); err != nil {
			t.Fatalf("decoded but does not verify: %v", err)
		}
	})
}

// A gossip with subscriptions and an IPv6 address, made by New with the key
// of seed 07×32 (Ed25519 signatures are deterministic). Its signature was
// checked with an independent Ed25519 implementation (pyca/cryptography).
const computedVector = "0002ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c0221561d20010db800000000000000000000000126481111111111111111111111111111111111111111111111111111111111111111fc000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f3f232e5d5d27d96d06c294605cb131f9a543d5c131cdff62140561bbb5c08d77ed04a3616692e8ff5ad0440a3894cbab64877c82108c14047803b465f5dc2de30f"

// computedVectorV2 is computedVector signed with info bit 10 (naming v2),
// PROTOCOL.md §16.2; checked with Python's cryptography (Ed25519).
const computedVectorV2 = "0402ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c0221561d20010db800000000000000000000000126481111111111111111111111111111111111111111111111111111111111111111fc000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f3ff03d4882d0dae8cbbf8b5919d76272cef03f187e2d542874b3004e593745cf735f290fc156122c11a533537f55d5b0a98183d81b5cb2f93ca2c870dfc4d42d05"

func TestComputedVectorV2(t *testing.T) {
	var t1, t2 topic.Topic
	for i := range t1 {
		t1[i], t2[i] = 0x11, byte(i)
	}
	g, err := NewFlagged(gossipTestKey(7), FlagNamingV2, 0x0221561d, netip.MustParseAddrPort("[2001:db8::1]:9800"), []Subscription{{t1, 252}, {t2, 63}})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(g.Encode()); got != computedVectorV2 {
		t.Fatalf("encoded %s", got)
	}
	d, err := Decode(gossipTestHex(t, computedVectorV2))
	if err != nil || !d.NamingV2() {
		t.Fatalf("decoded v2 %v, %v", d.NamingV2(), err)
	}
}

func TestComputedVector(t *testing.T) {
	var t1, t2 topic.Topic
	for i := range t1 {
		t1[i], t2[i] = 0x11, byte(i)
	}
	g, err := New(gossipTestKey(7), 0x0221561d, netip.MustParseAddrPort("[2001:db8::1]:9800"), []Subscription{{t1, 252}, {t2, 63}})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(g.Encode()); got != computedVector {
		t.Fatalf("encoded %s", got)
	}
	d, err := Decode(gossipTestHex(t, computedVector))
	if err != nil {
		t.Fatal(err)
	}
	if d.Addr.String() != "[2001:db8::1]:9800" || len(d.Subscriptions) != 2 || d.Subscriptions[0].Interest != 252 {
		t.Fatalf("decoded %+v", d)
	}
}
