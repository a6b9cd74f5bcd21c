package mail

import (
	"crypto/rand"
	"testing"
)

// BenchmarkSealOpen measures one message end to end: split, pad and seal
// every chunk, then open every chunk and join them.
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
				chunks := make([]Chunk, len(contents))
				for i, content := range contents {
					if chunks[i], err = Open(bob.secret, alice.public, content); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := Join(chunks); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
