package mail

import (
	"crypto/rand"
	"testing"
	"time"
)

// BenchmarkSealOpen measures one message end to end: split, pad and seal
// every chunk, then open every chunk and reassemble.
func BenchmarkSealOpen(b *testing.B) {
	sizes := []struct {
		name string
		n    int
	}{
		{"10KiB", 10 << 10},
		{"1MiB", 1 << 20},
	}
	alice, bob := newParty(b, 1), newParty(b, 2)
	for _, s := range sizes {
		b.Run(s.name, func(b *testing.B) {
			msg := testMessage(s.n, 1)
			a := newTestAssembler(b, DefaultAssemblerConfig())
			now := time.Unix(0, 0)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				id, err := NewMessageID(rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				contents, err := Seal(rand.Reader, alice.secret, bob.public, id, msg)
				if err != nil {
					b.Fatal(err)
				}
				var done bool
				for _, content := range contents {
					c, err := Open(bob.secret, alice.public, content)
					if err != nil {
						b.Fatal(err)
					}
					res, err := a.Add(now, c)
					if err != nil {
						b.Fatal(err)
					}
					done = res.Status == StatusComplete
				}
				if !done {
					b.Fatal("message not completed")
				}
			}
		})
	}
}
