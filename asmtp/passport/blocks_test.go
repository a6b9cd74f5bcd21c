package passport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/asmtp/asmtp/asmtp/keys"
)

func TestEncodeDecodeBlocks(t *testing.T) {
	blocks := newScenario(t).p.Blocks()
	data := EncodeBlocks(blocks)
	if n := binary.BigEndian.Uint32(data); int(n) != blocks[0].Len() {
		t.Fatalf("first length = %d, want %d", n, blocks[0].Len())
	}
	got, err := DecodeBlocks(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(blocks) {
		t.Fatalf("%d blocks, want %d", len(got), len(blocks))
	}
	for i := range got {
		if got[i].ID() != blocks[i].ID() {
			t.Fatalf("block %d differs", i)
		}
	}
	if got, err := DecodeBlocks(nil); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v, %v", got, err)
	}
}

func TestImportRejects(t *testing.T) {
	sc := newScenario(t)
	b := sc.p.Blocks()
	g, b1, b2 := b[0], b[1], b[2]
	other, _, err := Create(testRand(9), t0, "other", keyB, testPSK(t))
	if err != nil {
		t.Fatal(err)
	}
	// fork: another child of b1.
	fork := mustSign(t, kt(t, 121), b1.ID(), keyA, DeregisterMasterKey{keys.Public(keyB), kt(t, 121)})
	// byB: a block on the genesis by B, which is not a key of the passport.
	byB := mustSign(t, kt(t, 10), g.ID(), keyB, DeregisterMasterKey{keys.Public(keyA), kt(t, 10)})
	lenPrefix := func(n uint32, rest []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, n), rest...) }
	enc := EncodeBlocks

	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNoGenesis},
		{"length cut", enc(b)[:2], ErrMalformed},
		{"length beyond data", lenPrefix(uint32(g.Len()+1), g.Bytes()), ErrMalformed},
		{"length below a header", lenPrefix(HeaderSize-1, make([]byte, HeaderSize-1)), ErrMalformed},
		{"length above a block", lenPrefix(MaxBlockSize+1, make([]byte, MaxBlockSize+1)), ErrMalformed},
		{"huge length", lenPrefix(0xffffffff, g.Bytes()), ErrMalformed},
		{"garbage block", lenPrefix(HeaderSize, make([]byte, HeaderSize)), ErrContentHash},
		{"trailing bytes", append(enc(b), 0, 0, 0), ErrMalformed},
		{"no genesis", enc([]*Block{b1, b2}), ErrNoGenesis},
		{"orphan", enc([]*Block{g, b2}), ErrOrphan},
		{"duplicate", enc([]*Block{g, b1, b1, b2}), ErrDuplicateBlock},
		{"duplicate genesis", enc([]*Block{g, g}), ErrDuplicateBlock},
		{"two genesis blocks", enc([]*Block{g, other.Blocks()[0]}), ErrFork},
		{"fork", enc([]*Block{g, b1, b2, fork}), ErrFork},
		{"invalid chain", enc([]*Block{g, byB}), ErrUnauthorized},
	} {
		p, err := Import(c.data, at(200))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if err == nil || p != nil {
			t.Errorf("%s: got a passport", c.name)
		}
	}
}

// TestImportTruncated cuts a valid export at every length: a cut on a block
// boundary is a shorter valid passport, any other cut is an error.
func TestImportTruncated(t *testing.T) {
	blocks := newScenario(t).p.Blocks()
	data := EncodeBlocks(blocks)
	boundaries := map[int]int{} // byte length -> block count
	off := 0
	for i, b := range blocks {
		off += 4 + b.Len()
		boundaries[off] = i + 1
	}
	for n := 1; n < len(data); n++ {
		p, err := Import(data[:n], at(200))
		if count, ok := boundaries[n]; ok {
			if err != nil || len(p.Blocks()) != count {
				t.Fatalf("cut at %d (block boundary): %v", n, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("cut at %d imported", n)
		}
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("cut at %d: err = %v, want ErrMalformed", n, err)
		}
	}
	if p, err := Import(data, at(200)); err != nil || !bytes.Equal(p.Export(), data) {
		t.Fatalf("full import: %v", err)
	}
}
