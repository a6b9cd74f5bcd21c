package topic

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
)

func mustSharedKey(t testing.TB, s string) keys.SharedKey {
	t.Helper()
	k, err := keys.ParseSharedKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Vector from PROTOCOL.md §10 (computed, not produced by upstream).
const (
	vectorKeyA  = "7353f1e7fb03b2346638b4e2b93f810c84853787970be0844df63cdc9979a01d"
	vectorKeyB  = "cf71feb4eb176849217727f286a9c87c80b071b23084d0013334d59786605a24"
	vectorTopic = "c36c548f1edf99c501ea0e51ccda1eb7781ad959907bc8abff68993cb6bddc99"
)

func TestDeriveVector(t *testing.T) {
	a, b := mustSharedKey(t, vectorKeyA), mustSharedKey(t, vectorKeyB)
	for _, c := range []struct {
		name string
		x, y keys.SharedKey
	}{{"a,b", a, b}, {"b,a", b, a}} {
		if got := Derive(c.x, c.y).String(); got != vectorTopic {
			t.Errorf("Derive(%s) = %s, want %s", c.name, got, vectorTopic)
		}
	}
	if Derive(a, a) == Derive(a, b) {
		t.Error("different pairs gave the same topic")
	}
}

// TestDeriveComputedVector: the topic between the shared keys of the
// passport genesis vector (secret 08…0848) and of secret 08 09…09 49.
// COMPUTED BY US with this code and checked with Python's
// hashlib.pbkdf2_hmac and with golang.org/x/crypto/pbkdf2 in a separate
// program; not produced by upstream.
func TestDeriveComputedVector(t *testing.T) {
	a := mustSharedKey(t, "31d4ab6aceec961137917037936e60716fac573afe94d9da84a8020448dfc112")
	b := mustSharedKey(t, "57db4b359f23ae5e146e4e2512056704722506348c150c14753d0c933d04d421")
	if got, want := Derive(a, b).String(), "b83c5e567cd10101872598193b7df8bca44b4adeaacf34b305d24a0efeeeb37d"; got != want {
		t.Fatalf("Derive = %s, want %s", got, want)
	}
}

func TestPassportTopicVector(t *testing.T) {
	id, err := passport.ParseHash("00112233445566778899aabbccddeeff")
	if err != nil {
		t.Fatal(err)
	}
	tp := ForPassport(id)
	if got, want := tp.String(), "00000000000000000000000000000000"+"00112233445566778899aabbccddeeff"; got != want {
		t.Fatalf("passport topic = %s, want %s", got, want)
	}
	if got, ok := tp.Passport(); !ok || got != id {
		t.Fatalf("Passport() = %s, %v", got, ok)
	}
	conv, err := Parse(vectorTopic)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := conv.Passport(); ok {
		t.Fatal("a conversation topic parsed as a passport topic")
	}
}

func countingCache(size int) (*Cache, *atomic.Int64) {
	c := NewCache(size)
	var n atomic.Int64
	c.derive = func(a, b keys.SharedKey) Topic {
		n.Add(1)
		var t Topic
		copy(t[:], a[:16])
		copy(t[16:], b[:16])
		return t
	}
	return c, &n
}

func key(b byte) keys.SharedKey { return keys.SharedKey{b} }

func TestCacheMatchesDerive(t *testing.T) {
	a, b := mustSharedKey(t, vectorKeyA), mustSharedKey(t, vectorKeyB)
	c := NewCache(4)
	if got := c.Derive(b, a).String(); got != vectorTopic {
		t.Fatalf("miss = %s", got)
	}
	if got := c.Derive(a, b).String(); got != vectorTopic || c.Len() != 1 {
		t.Fatalf("hit = %s, len %d", got, c.Len())
	}
}

func TestCacheLRU(t *testing.T) {
	c, n := countingCache(2)
	x, y, z := key(1), key(2), key(3)
	c.Derive(x, y)
	c.Derive(x, z)
	c.Derive(y, x) // hit, refreshes {x,y}
	if n.Load() != 2 {
		t.Fatalf("%d derivations, want 2", n.Load())
	}
	c.Derive(y, z) // evicts {x,z}, the least recently used
	if c.Len() != 2 {
		t.Fatalf("len = %d", c.Len())
	}
	c.Derive(x, y) // still cached
	if n.Load() != 3 {
		t.Fatalf("%d derivations after hit, want 3", n.Load())
	}
	c.Derive(z, x) // was evicted
	if n.Load() != 4 {
		t.Fatalf("%d derivations after evicted pair, want 4", n.Load())
	}
	if NewCache(0).size != 1 {
		t.Fatal("size 0 not raised to 1")
	}
}

func TestCacheConcurrent(t *testing.T) {
	c, n := countingCache(8)
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			a, b := key(byte(i%4)), key(0xff)
			if i%2 == 0 {
				a, b = b, a
			}
			want := Topic{}
			lo, hi := orderPair(a, b)
			copy(want[:], lo[:16])
			copy(want[16:], hi[:16])
			if got := c.Derive(a, b); got != want {
				t.Errorf("goroutine %d: wrong topic", i)
			}
		})
	}
	wg.Wait()
	if n.Load() != 4 {
		t.Fatalf("%d derivations for 4 pairs", n.Load())
	}
}

func BenchmarkDerive(b *testing.B) {
	x, y := mustSharedKey(b, vectorKeyA), mustSharedKey(b, vectorKeyB)
	for b.Loop() {
		Derive(x, y)
	}
}

func BenchmarkCacheHit(b *testing.B) {
	x, y := mustSharedKey(b, vectorKeyA), mustSharedKey(b, vectorKeyB)
	c := NewCache(1024)
	c.Derive(x, y)
	for b.Loop() {
		c.Derive(y, x)
	}
}
