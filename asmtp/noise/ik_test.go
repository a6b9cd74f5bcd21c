package noise

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/asmtp/asmtp/asmtp/keys"
	"golang.org/x/crypto/blake2b"
)

func ikTestKey(t testing.TB, b byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func ikTestHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ikTestPair runs a full handshake in memory and returns both sides.
func ikTestPair(t testing.TB, initiator, responder ed25519.PrivateKey) (i, r *Handshake) {
	t.Helper()
	i, err := NewInitiator(nil, initiator, keys.Public(responder))
	if err != nil {
		t.Fatal(err)
	}
	r, err = NewResponder(nil, responder)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := i.WriteMessage(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m1) != IKMessage1Len {
		t.Fatalf("message 1 is %d bytes, want %d", len(m1), IKMessage1Len)
	}
	if err := r.ReadMessage(m1); err != nil {
		t.Fatal(err)
	}
	m2, err := r.WriteMessage(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m2) != IKMessage2Len {
		t.Fatalf("message 2 is %d bytes, want %d", len(m2), IKMessage2Len)
	}
	if err := i.ReadMessage(m2); err != nil {
		t.Fatal(err)
	}
	return i, r
}

// §18.2: the initial h is the protocol name zero-padded to 64 bytes; then
// keynesis mixes the empty prologue and the responder's static key.
func TestIKInitialHash(t *testing.T) {
	const want = "4e6f6973655f494b5f656432353531395f436861436861506f6c795f424c414b453262" + "0000000000000000000000000000000000000000000000000000000000"
	var h0 [HashLen]byte
	if n := copy(h0[:], ProtocolIK); n != 35 {
		t.Fatalf("protocol name is %d bytes, want 35", n)
	}
	if got := hex.EncodeToString(h0[:]); got != want {
		t.Fatalf("initial h = %s, want %s", got, want)
	}

	responder := ikTestKey(t, 7)
	rs := keys.Public(responder)
	afterPrologue := blake2b.Sum512(h0[:])
	afterPreMessage := blake2b.Sum512(append(afterPrologue[:], rs[:]...))

	i, err := NewInitiator(nil, ikTestKey(t, 1), rs)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResponder(nil, responder)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]*Handshake{"initiator": i, "responder": r} {
		if got := h.hs.ChannelBinding(); !bytes.Equal(got, afterPreMessage[:]) {
			t.Errorf("%s: h after pre-message = %x, want %x", name, got, afterPreMessage)
		}
	}
}

func TestIKRoundTrip(t *testing.T) {
	a, b := ikTestKey(t, 1), ikTestKey(t, 2)
	i, r := ikTestPair(t, a, b)
	if got := r.Remote(); got != keys.Public(a) {
		t.Fatalf("responder sees %s, want %s", got, keys.Public(a))
	}
	if got := i.Remote(); got != keys.Public(b) {
		t.Fatalf("initiator sees %s, want %s", got, keys.Public(b))
	}
	iSend, iRecv, iID, err := i.Split()
	if err != nil {
		t.Fatal(err)
	}
	rSend, rRecv, rID, err := r.Split()
	if err != nil {
		t.Fatal(err)
	}
	if iID != rID || iID == [HashLen]byte{} {
		t.Fatalf("session ids differ or are zero: %x / %x", iID, rID)
	}
	for n := range 100 {
		for _, dir := range []struct {
			name       string
			send, recv *LinkCipher
		}{{"i→r", iSend, rRecv}, {"r→i", rSend, iRecv}} {
			msg := bytes.Repeat([]byte{byte(n)}, n)
			ct, err := dir.send.Seal(nil, msg)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := dir.recv.Open(nil, ct)
			if err != nil {
				t.Fatalf("%s message %d: %v", dir.name, n, err)
			}
			if !bytes.Equal(pt, msg) {
				t.Fatalf("%s message %d: got %x", dir.name, n, pt)
			}
		}
	}

	// A second handshake between the same keys has another session id.
	i2, _ := ikTestPair(t, a, b)
	if _, _, id2, _ := i2.Split(); id2 == iID {
		t.Fatal("two handshakes gave the same session id")
	}
}

func TestIKSplitBeforeComplete(t *testing.T) {
	i, err := NewInitiator(nil, ikTestKey(t, 1), keys.Public(ikTestKey(t, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := i.Split(); err == nil {
		t.Fatal("split before the handshake succeeded")
	}
	if _, err := i.WriteMessage(nil); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := i.Split(); err == nil {
		t.Fatal("split after message 1 only succeeded")
	}
}

// An initiator that expects another responder key cannot be decrypted by
// the real responder: message 1's enc(s) is keyed by DH(e, expected key).
func TestIKWrongRemote(t *testing.T) {
	i, err := NewInitiator(nil, ikTestKey(t, 1), keys.Public(ikTestKey(t, 3)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResponder(nil, ikTestKey(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	m1, err := i.WriteMessage(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ReadMessage(m1); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("responder read: %v, want ErrAuthentication", err)
	}
}

func TestIKRejectsAlteredMessages(t *testing.T) {
	a, b := ikTestKey(t, 1), ikTestKey(t, 2)
	for pos := range IKMessage1Len + IKMessage2Len {
		i, err := NewInitiator(nil, a, keys.Public(b))
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewResponder(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		m1, err := i.WriteMessage(nil)
		if err != nil {
			t.Fatal(err)
		}
		if pos < IKMessage1Len {
			m1[pos] ^= 0x01
			if err := r.ReadMessage(m1); err == nil {
				t.Fatalf("message 1 with byte %d flipped accepted", pos)
			}
			continue
		}
		if err := r.ReadMessage(m1); err != nil {
			t.Fatal(err)
		}
		m2, err := r.WriteMessage(nil)
		if err != nil {
			t.Fatal(err)
		}
		m2[pos-IKMessage1Len] ^= 0x01
		if err := i.ReadMessage(m2); err == nil {
			t.Fatalf("message 2 with byte %d flipped accepted", pos-IKMessage1Len)
		}
	}
}

func TestIKRejectsBadLengths(t *testing.T) {
	a, b := ikTestKey(t, 1), ikTestKey(t, 2)
	for _, n := range []int{0, 1, IKMessage2Len, IKMessage1Len - 1, IKMessage1Len + 1, 1000} {
		r, err := NewResponder(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.ReadMessage(make([]byte, n)); err == nil || !strings.Contains(err.Error(), "want 96") {
			t.Errorf("responder, %d bytes: %v", n, err)
		}
	}
	for _, n := range []int{0, IKMessage2Len - 1, IKMessage2Len + 1, IKMessage1Len} {
		i, err := NewInitiator(nil, a, keys.Public(b))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := i.WriteMessage(nil); err != nil {
			t.Fatal(err)
		}
		if err := i.ReadMessage(make([]byte, n)); err == nil || !strings.Contains(err.Error(), "want 48") {
			t.Errorf("initiator, %d bytes: %v", n, err)
		}
	}
}

// An invalid Edwards point as the responder key is refused before anything
// is sent, rather than handshaking with a key nobody holds.
func TestIKRejectsInvalidRemote(t *testing.T) {
	var bad keys.PublicKey
	bad[0] = 2 // no x exists for y = 2
	i, err := NewInitiator(nil, ikTestKey(t, 1), bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := i.WriteMessage(nil); !errors.Is(err, keys.ErrBadPoint) {
		t.Fatalf("write message 1 to an invalid point: %v, want ErrBadPoint", err)
	}
}

func BenchmarkIKHandshake(b *testing.B) {
	ik, rk := ikTestKey(b, 1), ikTestKey(b, 2)
	cpu := benchCPUTime()
	for b.Loop() {
		i, r := ikTestPair(b, ik, rk)
		if _, _, _, err := i.Split(); err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := r.Split(); err != nil {
			b.Fatal(err)
		}
	}
	benchReportCPU(b, cpu, 0)
}

// ikTranscript is a full handshake with fixed keys: static seeds 01×32
// (initiator) and 02×32 (responder), ephemeral seeds 03×32 and 04×32. The
// values were cross-checked with an independent implementation (Python,
// pyca/cryptography); they are ours, not upstream's.
var ikTranscript = struct {
	m1, m2, sessionID, k1, k2, frame1, frame2 string
}{
	m1:        "ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d11c7addd0aadd987862be2dae74612bb7d7b72a3be7be17f1bd47ee127c9923c0dae773b5f3864ae4ea4609c26c4268aabfa5107bd4c6ccf049d0afaee26dcea1",
	m2:        "ca93ac1705187071d67b83c7ff0efe8108e8ec4530575d7726879333dbdabe7c96a3a8b7f001e4b9377b4129d06f62aa",
	sessionID: "a1473c77c53063f37904cd330aac15c97c46000f90fdc8ce749f6d4f5da71660364945e919a466583d718a5a3fe215e5f0710d4342c2ad41573b8983cd609f0e",
	k1:        "a94c47acee286e6dd8f31fefd4303398d4b59d937fa72ae44cafb3f5f87f4116",
	k2:        "e27614f2b8928b2eacf0897b31228c04cba0b047d729735f393c0271011f53eb",
	// GetPassport(00112233…ff) sent twice by the initiator under k1.
	frame1: "f332ed3895eb65977585f9fd515650d9a3816581056e646fcc933db792c7510c49",
	frame2: "fc5b4b122343ce9ace582aedc05ed84c6bc59b1f13af4020867acf3b44b6a4489c",
}

func TestIKTranscriptVector(t *testing.T) {
	i, err := NewInitiator(bytes.NewReader(bytes.Repeat([]byte{3}, 32)), ikTestKey(t, 1), keys.Public(ikTestKey(t, 2)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResponder(bytes.NewReader(bytes.Repeat([]byte{4}, 32)), ikTestKey(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	m1, err := i.WriteMessage(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(m1); got != ikTranscript.m1 {
		t.Fatalf("message 1 = %s", got)
	}
	if err := r.ReadMessage(m1); err != nil {
		t.Fatal(err)
	}
	m2, err := r.WriteMessage(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(m2); got != ikTranscript.m2 {
		t.Fatalf("message 2 = %s", got)
	}
	if err := i.ReadMessage(m2); err != nil {
		t.Fatal(err)
	}
	send, recv, id, err := i.Split()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"session id", hex.EncodeToString(id[:]), ikTranscript.sessionID},
		{"k1", hex.EncodeToString(send.key[:]), ikTranscript.k1},
		{"k2", hex.EncodeToString(recv.key[:]), ikTranscript.k2},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
	msg := ikTestHex(t, "0400112233445566778899aabbccddeeff")
	for n, want := range []string{ikTranscript.frame1, ikTranscript.frame2} {
		ct, err := send.Seal(nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(ct); got != want {
			t.Errorf("frame %d = %s, want %s", n+1, got, want)
		}
	}
}
