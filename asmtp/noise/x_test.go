package noise

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	"github.com/asmtp/asmtp/asmtp/keys"
	"golang.org/x/crypto/chacha20"
)

// xTestRand is a deterministic stream for reproducible seals.
func xTestRand(t testing.TB, seed byte) io.Reader {
	t.Helper()
	key := bytes.Repeat([]byte{seed}, chacha20.KeySize)
	c, err := chacha20.NewUnauthenticatedCipher(key, make([]byte, chacha20.NonceSize))
	if err != nil {
		t.Fatal(err)
	}
	return xTestStream{c}
}

type xTestStream struct{ c *chacha20.Cipher }

func (s xTestStream) Read(p []byte) (int, error) {
	clear(p)
	s.c.XORKeyStream(p, p)
	return len(p), nil
}

func xTestSecret(t testing.TB, b byte) keys.SharedSecret {
	t.Helper()
	s, err := keys.GenerateSharedSecret(bytes.NewReader(bytes.Repeat([]byte{b}, keys.SharedSecretSize)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestXRoundTrip(t *testing.T) {
	alice, bob := xTestSecret(t, 1), xTestSecret(t, 2)
	for _, n := range []int{0, 1, 1024, 65388, MaxSealPlaintext} {
		msg := bytes.Repeat([]byte{0xa5}, n)
		sealed, err := Seal(nil, alice, bob.Public(), msg)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if len(sealed) != n+SealOverhead {
			t.Fatalf("%d bytes sealed to %d, want %d", n, len(sealed), n+SealOverhead)
		}
		sender, pt, err := Open(bob, sealed)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if sender != alice.Public() {
			t.Fatalf("%d bytes: sender %s, want %s", n, sender, alice.Public())
		}
		if !bytes.Equal(pt, msg) {
			t.Fatalf("%d bytes: plaintext differs", n)
		}
	}
}

func TestXSealIsRandomised(t *testing.T) {
	alice, bob := xTestSecret(t, 1), xTestSecret(t, 2)
	a, err := Seal(xTestRand(t, 1), alice, bob.Public(), []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Seal(xTestRand(t, 1), alice, bob.Public(), []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Seal(xTestRand(t, 2), alice, bob.Public(), []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("the same randomness gave different seals")
	}
	if bytes.Equal(a, c) {
		t.Fatal("different randomness gave the same seal")
	}
}

func TestXSealErrors(t *testing.T) {
	alice, bob := xTestSecret(t, 1), xTestSecret(t, 2)
	if _, err := Seal(nil, alice, bob.Public(), make([]byte, MaxSealPlaintext+1)); err == nil {
		t.Error("sealed an over-long plaintext")
	}
	if _, err := Seal(nil, alice, keys.SharedKey{}, []byte("x")); err == nil {
		t.Error("sealed to the all-zero (low-order) key")
	}
	if _, err := Seal(io.LimitReader(nil, 0), alice, bob.Public(), []byte("x")); err == nil {
		t.Error("sealed without randomness")
	}
}

func TestXOpenRejects(t *testing.T) {
	alice, bob, carol := xTestSecret(t, 1), xTestSecret(t, 2), xTestSecret(t, 3)
	msg := []byte("the quick brown fox")
	sealed, err := Seal(nil, alice, bob.Public(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(carol, sealed); !errors.Is(err, ErrAuthentication) {
		t.Errorf("wrong recipient: %v, want ErrAuthentication", err)
	}
	for pos := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			b := bytes.Clone(sealed)
			b[pos] ^= bit
			if _, _, err := Open(bob, b); err == nil {
				t.Errorf("byte %d ^ %#x accepted", pos, bit)
			}
		}
	}
	for n := range len(sealed) {
		if _, _, err := Open(bob, sealed[:n]); err == nil {
			t.Errorf("truncated to %d bytes accepted", n)
		}
	}
	if _, _, err := Open(bob, append(bytes.Clone(sealed), 0)); err == nil {
		t.Error("extended by one byte accepted")
	}
	if _, _, err := Open(bob, make([]byte, MaxSealed+1)); err == nil {
		t.Error("over-long input accepted")
	}
	if _, _, err := Open(bob, make([]byte, SealOverhead)); err == nil {
		t.Error("all-zero input accepted")
	}
}

// BenchmarkSealOpen: a seal and an open per op, with the package
// functions (each recomputes its key's public half) and with XKeys made
// once.
func BenchmarkSealOpen(b *testing.B) {
	alice, bob := xTestSecret(b, 1), xTestSecret(b, 2)
	aliceKey, bobKey := NewXKey(alice), NewXKey(bob)
	for _, c := range []struct {
		name string
		size int
	}{{"1KiB", 1 << 10}, {"60KiB", 60 << 10}} {
		b.Run(c.name, func(b *testing.B) {
			msg := make([]byte, c.size)
			b.SetBytes(int64(c.size))
			cpu := benchCPUTime()
			for b.Loop() {
				sealed, err := Seal(nil, alice, bob.Public(), msg)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := Open(bob, sealed); err != nil {
					b.Fatal(err)
				}
			}
			benchReportCPU(b, cpu, c.size)
		})
		b.Run(c.name+"/XKey", func(b *testing.B) {
			msg := make([]byte, c.size)
			b.SetBytes(int64(c.size))
			cpu := benchCPUTime()
			for b.Loop() {
				sealed, err := aliceKey.Seal(nil, bobKey.Public(), msg)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := bobKey.Open(sealed); err != nil {
					b.Fatal(err)
				}
			}
			benchReportCPU(b, cpu, c.size)
		})
	}
}

// An XKey seals and opens exactly as the package functions do: the same
// bytes from the same randomness (the vector below included), and each
// opens the other's seals.
func TestXKeyMatchesFunctions(t *testing.T) {
	alice, bob := xTestSecret(t, 1), xTestSecret(t, 2)
	aliceKey, bobKey := NewXKey(alice), NewXKey(bob)
	if aliceKey.Public() != alice.Public() {
		t.Fatal("XKey public half differs from SharedSecret.Public")
	}
	for _, n := range []int{0, 5, 1024, MaxSealPlaintext} {
		msg := bytes.Repeat([]byte{0x3c}, n)
		viaFunc, err := Seal(xTestRand(t, 9), alice, bob.Public(), msg)
		if err != nil {
			t.Fatal(err)
		}
		viaKey, err := aliceKey.Seal(xTestRand(t, 9), bobKey.Public(), msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(viaFunc, viaKey) {
			t.Fatalf("%d bytes: XKey.Seal and Seal differ", n)
		}
		sender, pt, err := bobKey.Open(viaFunc)
		if err != nil || sender != alice.Public() || !bytes.Equal(pt, msg) {
			t.Fatalf("%d bytes: XKey.Open: %s, %d bytes, %v", n, sender, len(pt), err)
		}
	}
	if _, err := (XKey{}).Seal(nil, bob.Public(), []byte("x")); err == nil {
		t.Error("the zero XKey sealed")
	}
	sealed, _ := Seal(nil, alice, bob.Public(), []byte("x"))
	if _, _, err := (XKey{}).Open(sealed); err == nil {
		t.Error("the zero XKey opened")
	}
	if _, _, err := NewXKey(xTestSecret(t, 3)).Open(sealed); !errors.Is(err, ErrAuthentication) {
		t.Errorf("wrong recipient XKey: %v, want ErrAuthentication", err)
	}
}

// A seal with fixed keys: sender secret 00 01×30 41, recipient secret
// 00 02×30 42, ephemeral 05×32, plaintext "hello". Cross-checked with an
// independent implementation (Python, pyca/cryptography).
func TestXSealVector(t *testing.T) {
	const (
		alicePub = "a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209"
		bobPub   = "ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587d59"
		want     = "50a61409b1ddd0325e9b16b700e719e9772c07000b1bd7786e907c653d20495d569f08570d5cbea081b707ae5d2c342d84b5fd012374b716ab4d413f4885a84fc6b73bfd0f8ca868182f10b04581bec690a5ff8548f7c34e12ca3fde14e3dd6f2d43e09bc4"
	)
	alice, bob := xTestSecret(t, 1), xTestSecret(t, 2)
	if got := alice.Public().String(); got != alicePub {
		t.Fatalf("sender public = %s", got)
	}
	if got := bob.Public().String(); got != bobPub {
		t.Fatalf("recipient public = %s", got)
	}
	sealed, err := Seal(bytes.NewReader(bytes.Repeat([]byte{5}, 32)), alice, bob.Public(), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sealed); got != want {
		t.Fatalf("sealed = %s, want %s", got, want)
	}
	sender, pt, err := Open(bob, sealed)
	if err != nil || sender != alice.Public() || string(pt) != "hello" {
		t.Fatalf("open: %s %q %v", sender, pt, err)
	}
	viaKey, err := NewXKey(alice).Seal(bytes.NewReader(bytes.Repeat([]byte{5}, 32)), bob.Public(), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(viaKey); got != want {
		t.Fatalf("XKey sealed = %s, want %s", got, want)
	}
}
