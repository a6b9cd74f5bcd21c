package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
)

const upstreamGossip = "80007353f1e7fb03b2346638b4e2b93f810c84853787970be0844df63cdc9979a01d0221561d561f667d26482dc49b0ef76a32f94aeecb4c01191510ca8ec977bd714545888ad0117fa81a176922927114db64cbc6666d2fa2877207baabe0080489fac7c054335c68fcc90d"

func wireTestHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wireTestBlocks frames blocks of the given sizes as PassportBlocks.
func wireTestBlocks(sizes ...int) []byte {
	var b []byte
	for i, n := range sizes {
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		b = append(b, bytes.Repeat([]byte{byte(i + 1)}, n)...)
	}
	return b
}

func wireTestTopic(b byte) topic.Topic { return topic.Topic(bytes.Repeat([]byte{b}, topic.Size)) }

func wireTestGossip(t testing.TB) gossip.Gossip {
	t.Helper()
	g, err := gossip.Decode(wireTestHex(t, upstreamGossip))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// wireTestMessages is one of each type, with its encoding.
func wireTestMessages(t testing.TB) []struct {
	m   Message
	hex string
} {
	id := passport.Hash(wireTestHex(t, "00112233445566778899aabbccddeeff"))
	tp := strings.Repeat("ab", 32)
	blocks := wireTestBlocks(136, 140)
	return []struct {
		m   Message
		hex string
	}{
		{Gossip{Gossip: wireTestGossip(t)}, "01" + upstreamGossip},
		{Topic{Topic: wireTestTopic(0xab), Content: []byte("hi")}, "02" + tp + "6869"},
		{Topic{Topic: wireTestTopic(0xab), Content: []byte{}}, "02" + tp},
		{PutPassport{ID: id, Blocks: blocks}, "03" + "00112233445566778899aabbccddeeff" + hex.EncodeToString(blocks)},
		{GetPassport{ID: id}, "04" + "00112233445566778899aabbccddeeff"},
		{RegisterTopic{Topic: wireTestTopic(0xab)}, "05" + tp},
		{DeregisterTopic{Topic: wireTestTopic(0xab)}, "06" + tp},
		{QueryTopicMessages{Topic: wireTestTopic(0xab), Since: 0x0221561d}, "07" + tp + "0221561d"},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, c := range wireTestMessages(t) {
		t.Run(c.m.Type().String(), func(t *testing.T) {
			want := wireTestHex(t, c.hex)
			b, err := Encode(c.m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("encoded %x, want %x", b, want)
			}
			if b[0] != byte(c.m.Type()) {
				t.Fatalf("type byte %d, want %d", b[0], c.m.Type())
			}
			m, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, c.m) {
				t.Fatalf("decoded %#v, want %#v", m, c.m)
			}
			// A pointer encodes the same.
			p := reflect.New(reflect.TypeOf(c.m))
			p.Elem().Set(reflect.ValueOf(c.m))
			if b2, err := Encode(p.Interface().(Message)); err != nil || !bytes.Equal(b2, b) {
				t.Fatalf("pointer encoded %x, %v", b2, err)
			}
		})
	}
}

// Decode copies: changing the input afterwards does not change the message.
func TestDecodeDoesNotAlias(t *testing.T) {
	for _, b := range [][]byte{
		wireTestHex(t, "02"+strings.Repeat("ab", 32)+"6869"),
		append(wireTestHex(t, "03"+strings.Repeat("00", 16)), wireTestBlocks(136)...),
	} {
		m, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		before, _ := Encode(m)
		for i := range b {
			b[i] ^= 0xff
		}
		after, _ := Encode(m)
		if !bytes.Equal(before, after) {
			t.Fatalf("%v aliases its input", m.Type())
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	tp := strings.Repeat("ab", 32)
	id := strings.Repeat("11", 16)
	badSig := wireTestHex(t, "01"+upstreamGossip)
	badSig[len(badSig)-1] ^= 1
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "minimum 17"},
		{"16 bytes", make([]byte, 16), "minimum 17"},
		{"too long", append([]byte{2}, make([]byte, MaxMessageSize)...), "maximum 65517"},
		{"type 0", make([]byte, 40), "invalid type 0"},
		{"type 8", append([]byte{8}, make([]byte, 40)...), "invalid type 8"},
		{"type 255", append([]byte{255}, make([]byte, 40)...), "invalid type 255"},
		{"gossip too short", wireTestHex(t, "01"+upstreamGossip[:100]), "minimum 109"},
		{"gossip truncated", wireTestHex(t, "01"+upstreamGossip[:len(upstreamGossip)-2]), "minimum 109"},
		{"gossip extended", wireTestHex(t, "01"+upstreamGossip+"00"), "means 108"},
		{"gossip bad signature", badSig, "invalid signature"},
		{"topic 32 bytes", wireTestHex(t, "02"+tp[:62]), "minimum 33"},
		{"put passport no blocks", wireTestHex(t, "03"+id), "no passport blocks"},
		{"put passport short length", wireTestHex(t, "03"+id+"000000"), "too few for its length"},
		{"put passport block too short", append(wireTestHex(t, "03"+id), wireTestBlocks(135)...), "shorter than a 136-byte header"},
		{"put passport block truncated", append(wireTestHex(t, "03"+id), wireTestBlocks(136)[:139]...), "only 135 left"},
		{"put passport trailing byte", append(append(wireTestHex(t, "03"+id), wireTestBlocks(136)...), 0), "too few for its length"},
		{"put passport huge length", wireTestHex(t, "03"+id+"ffffffff"+strings.Repeat("00", 136)), "only 136 left"},
		{"get passport long", wireTestHex(t, "04"+id+"00"), "want exactly 17"},
		{"register topic short", wireTestHex(t, "05"+tp[:62]), "want exactly 33"},
		{"register topic long", wireTestHex(t, "05"+tp+"00"), "want exactly 33"},
		{"deregister topic short", wireTestHex(t, "06"+id), "want exactly 33"},
		{"deregister topic long", wireTestHex(t, "06"+tp+"00"), "want exactly 33"},
		{"query 33 bytes", wireTestHex(t, "07"+tp), "want exactly 37"},
		{"query 36 bytes", wireTestHex(t, "07"+tp+"000000"), "want exactly 37"},
		{"query 38 bytes", wireTestHex(t, "07"+tp+"0000000000"), "want exactly 37"},
	} {
		m, err := Decode(c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (message %#v), want an error containing %q", c.name, err, m, c.want)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	g := wireTestGossip(t)
	g.Time++ // signature no longer matches
	var nilTopic *Topic
	for _, c := range []struct {
		name string
		m    Message
		want string
	}{
		{"nil", nil, "nil message"},
		{"nil pointer", nilTopic, "nil message"},
		{"bad gossip", Gossip{Gossip: g}, "invalid signature"},
		{"gossip without address", Gossip{}, "no address"},
		{"topic too big", Topic{Content: make([]byte, MaxTopicContent+1)}, "maximum 65484"},
		{"no blocks", PutPassport{}, "no passport blocks"},
		{"bad blocks", PutPassport{Blocks: wireTestBlocks(100)}, "shorter than"},
		{"blocks too big", PutPassport{Blocks: wireTestBlocks(MaxPassportBlocks - 3)}, "maximum 65500"},
	} {
		if _, err := Encode(c.m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// The largest of each fits a frame exactly.
	for _, m := range []Message{
		Topic{Content: make([]byte, MaxTopicContent)},
		PutPassport{Blocks: wireTestBlocks(MaxPassportBlocks - 4)},
	} {
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != MaxFramePlaintext {
			t.Fatalf("largest %v is %d bytes, want %d", m.Type(), len(b), MaxFramePlaintext)
		}
		if _, err := Decode(b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLargeGossipMessage(t *testing.T) {
	subs := make([]gossip.Subscription, gossip.MaxSubscriptions)
	for i := range subs {
		subs[i].Topic[0], subs[i].Topic[1] = byte(i), byte(i>>8)
	}
	g, err := gossip.New(wireTestKey(5), 7, netip.MustParseAddrPort("[2001:db8::5]:9800"), subs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(Gossip{Gossip: g})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 1+gossip.MaxSize {
		t.Fatalf("%d bytes", len(b))
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.(Gossip).Gossip, g) {
		t.Fatal("round trip differs")
	}
}

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{TypeGossip: "Gossip", TypeQueryTopicMessages: "QueryTopicMessages", 0: "Type(0)", 9: "Type(9)"} {
		if got := typ.String(); got != want {
			t.Errorf("%d: %q, want %q", uint8(typ), got, want)
		}
	}
}
