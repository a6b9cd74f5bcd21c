package wire

import (
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/crypto/blake2b"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
)

func TestUserOpTopic(t *testing.T) {
	if UserOpTopic != topic.Topic(blake2b.Sum256([]byte("asmtp user op v2"))) {
		t.Fatalf("UserOpTopic = %s", UserOpTopic)
	}
}

// Every operation round-trips, with the bytes PROTOCOL.md §16.11 shows;
// wrong lengths and unknown codes are errors, other topics are not ops.
func TestUserOpRoundTrip(t *testing.T) {
	tp, node, pid := topic.Topic{0xab}, keys.PublicKey{0xcd}, passport.Hash{0xef}
	for _, c := range []struct {
		op   UserOp
		want string // content, hex, with "…" for zero runs left out
	}{
		{UserOp{Code: OpRegisterInbox, Topic: tp}, "01ab" + zeros(31)},
		{UserOp{Code: OpPublishTo, Topic: tp, Node: node, Addr: "127.0.0.1:9"}, "02ab" + zeros(31) + "cd" + zeros(31) + hex.EncodeToString([]byte("127.0.0.1:9"))},
		{UserOp{Code: OpPublishTo, Topic: tp}, "02ab" + zeros(31) + zeros(32)},
		{UserOp{Code: OpCatchUp, Topic: tp, Since: 0x0221561d, Node: node, Addr: "h:1"}, "03ab" + zeros(31) + "0221561d" + "cd" + zeros(31) + "683a31"},
		{UserOp{Code: OpKeepPassport, Passport: pid}, "04ef" + zeros(15)},
		{UserOp{Code: OpPeerNaming, Node: node}, "05cd" + zeros(31)},
		{UserOp{Code: OpPeerNaming | OpAnswer, Node: node, Value: 2}, "85cd" + zeros(31) + "02"},
		{UserOp{Code: OpHolders, Topic: tp, Value: 3}, "06ab" + zeros(31) + "03"},
		{UserOp{Code: OpHolders | OpAnswer, Topic: tp, Value: 1}, "86ab" + zeros(31) + "01"},
		{UserOp{Code: OpBucketBits}, "07"},
		{UserOp{Code: OpBucketBits | OpAnswer, Value: 13}, "870d"},
	} {
		m, err := c.op.Message()
		if err != nil {
			t.Fatalf("%+v: %v", c.op, err)
		}
		if got := hex.EncodeToString(m.Content); got != c.want {
			t.Errorf("op %d: content %s, want %s", c.op.Code, got, c.want)
		}
		back, ok, err := ParseUserOp(m)
		if !ok || err != nil || back != c.op {
			t.Errorf("op %d: parsed %+v %v %v", c.op.Code, back, ok, err)
		}
		if _, _, err := ParseUserOp(Topic{Topic: UserOpTopic, Content: m.Content[:len(m.Content)-1]}); err == nil && c.op.Addr == "" && len(m.Content) > 1 {
			t.Errorf("op %d: a truncated op parsed", c.op.Code)
		}
	}
	for _, bad := range []string{"", "00", "7f", "01ab", "05" + zeros(32) + "00", "0700", "87"} {
		b, _ := hex.DecodeString(bad)
		if _, ok, err := ParseUserOp(Topic{Topic: UserOpTopic, Content: b}); !ok || err == nil {
			t.Errorf("content %q: ok %v err %v, want an error", bad, ok, err)
		}
	}
	if _, ok, _ := ParseUserOp(Topic{Topic: tp, Content: []byte{1}}); ok {
		t.Error("a message on another topic parsed as a user op")
	}
	if _, err := (UserOp{Code: OpCatchUp, Addr: strings.Repeat("a", MaxUserOpAddr+1)}).Message(); err == nil {
		t.Error("an oversized address was encoded")
	}
}

func zeros(n int) string { return strings.Repeat("00", n) }
