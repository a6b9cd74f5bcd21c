package noise

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/flynn/noise"
)

func linkTestKey() (k [32]byte) {
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

// §18.2 REKEY: k = 00…1f gives 50835543…5042.
func TestRekeyVector(t *testing.T) {
	l := NewLinkCipher(linkTestKey())
	l.doRekey()
	k := l.key
	if got, want := hex.EncodeToString(k[:]), "50835543a205b22c9323f2022bc4f67d838f90e61d5ccf33c4513e01f85b5042"; got != want {
		t.Fatalf("rekey = %s, want %s", got, want)
	}
}

// §18.2 first and second frame: the same 17-byte GetPassport message sealed
// twice; the second is under the rekeyed key with nonce 1.
func TestLinkFrameVectors(t *testing.T) {
	msg := ikTestHex(t, "04"+"00112233445566778899aabbccddeeff")
	want := []string{
		"1cb853139ea2f3b764e9c5cb148f93c9072195cb20c1ab89d42a6d7baba8d7584f",
		"3c752da347cb1211484eeceb686202089dc6393cb1a929090d4d3cba73368aefa6",
	}
	send, recv := NewLinkCipher(linkTestKey()), NewLinkCipher(linkTestKey())
	for n, w := range want {
		ct, err := send.Seal(nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(ct); got != w {
			t.Fatalf("frame %d = %s, want %s", n+1, got, w)
		}
		pt, err := recv.Open(nil, ct)
		if err != nil {
			t.Fatalf("frame %d: %v", n+1, err)
		}
		if !bytes.Equal(pt, msg) {
			t.Fatalf("frame %d opened to %x", n+1, pt)
		}
	}
	if n := send.n; n != 2 {
		t.Fatalf("nonce after two frames = %d, want 2 (rekey must not reset it)", n)
	}
}

// Seal and Open in place, as the wire package does.
func TestLinkInPlace(t *testing.T) {
	send, recv := NewLinkCipher(linkTestKey()), NewLinkCipher(linkTestKey())
	buf := make([]byte, 100, 100+TagLen)
	for i := range buf {
		buf[i] = byte(i)
	}
	want := bytes.Clone(buf)
	ct, err := send.Seal(buf[:0], buf)
	if err != nil {
		t.Fatal(err)
	}
	if &ct[0] != &buf[0] || len(ct) != 100+TagLen {
		t.Fatal("seal did not work in place")
	}
	pt, err := recv.Open(ct[:0], ct)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pt, want) {
		t.Fatalf("opened %x", pt)
	}
}

// With a rekey after each message, a frame is only valid at its position.
func TestLinkRejectsOutOfOrder(t *testing.T) {
	send := NewLinkCipher(linkTestKey())
	var frames [][]byte
	for i := range 3 {
		ct, err := send.Seal(nil, []byte{byte(i), 1, 2, 3})
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, ct)
	}
	tampered := bytes.Clone(frames[1])
	tampered[0] ^= 0x80
	truncated := frames[1][:len(frames[1])-1]
	for _, c := range []struct {
		name  string
		order [][]byte
	}{
		{"replay", [][]byte{frames[0], frames[0]}},
		{"reorder", [][]byte{frames[0], frames[2]}},
		{"skip first", [][]byte{frames[1]}},
		{"tampered", [][]byte{frames[0], tampered}},
		{"truncated", [][]byte{frames[0], truncated}},
		{"shorter than a tag", [][]byte{frames[0], frames[1][:TagLen-1]}},
	} {
		t.Run(c.name, func(t *testing.T) {
			recv := NewLinkCipher(linkTestKey())
			last := len(c.order) - 1
			for i, f := range c.order[:last] {
				if _, err := recv.Open(nil, f); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			if _, err := recv.Open(nil, c.order[last]); !errors.Is(err, ErrAuthentication) {
				t.Fatalf("last frame: %v, want ErrAuthentication", err)
			}
		})
	}
}

// LinkCipher is flynn/noise's CipherState with a Rekey after each message.
func TestLinkCipherMatchesFlynn(t *testing.T) {
	k := linkTestKey()
	ours := NewLinkCipher(k)
	theirs := noise.UnsafeNewCipherState(ikSuite(), k, 0)
	for n := range 100 {
		msg := bytes.Repeat([]byte{byte(n)}, n*7)
		a, err := ours.Seal(nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := theirs.Encrypt(nil, nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		theirs.Rekey()
		if !bytes.Equal(a, b) {
			t.Fatalf("message %d: ours %x, flynn %x", n, a, b)
		}
		if ours.key != theirs.UnsafeKey() || ours.n != theirs.Nonce() {
			t.Fatalf("message %d: state differs", n)
		}
	}
}

func TestLinkNonceExhausted(t *testing.T) {
	l := newLinkCipher(linkTestKey(), rekeyNonce-1)
	ct, err := l.Seal(nil, []byte("last"))
	if err != nil {
		t.Fatalf("nonce 2^64-2: %v", err)
	}
	if _, err := l.Seal(nil, []byte("one more")); err == nil {
		t.Fatal("sealed with the reserved nonce 2^64-1")
	}
	r := newLinkCipher(linkTestKey(), rekeyNonce-1)
	if _, err := r.Open(nil, ct); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open(nil, ct); err == nil {
		t.Fatal("opened with the reserved nonce 2^64-1")
	}
}

func BenchmarkLinkSealOpen(b *testing.B) {
	for _, size := range []int{100, 65517} {
		b.Run(map[int]string{100: "100B", 65517: "64K"}[size], func(b *testing.B) {
			send, recv := NewLinkCipher(linkTestKey()), NewLinkCipher(linkTestKey())
			buf := make([]byte, size, size+TagLen)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			cpu := benchCPUTime()
			for b.Loop() {
				ct, err := send.Seal(buf[:0], buf)
				if err != nil {
					b.Fatal(err)
				}
				if buf, err = recv.Open(ct[:0], ct); err != nil {
					b.Fatal(err)
				}
			}
			benchReportCPU(b, cpu, size)
		})
	}
}
