package passport

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// fuzzNow is late enough for every seed block.
var fuzzNow = at(3600)

func FuzzParseBlock(f *testing.F) {
	genesis, err := hex.DecodeString(genesisVector)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(genesis)
	for _, b := range newScenario(f).p.Blocks() {
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBlock(data)
		if err != nil {
			return
		}
		if !bytes.Equal(b.Bytes(), data) || b.ID() != HashOf(data[:HeaderSize]) {
			t.Fatal("parsed block does not round-trip")
		}
		// The entry encoding is canonical: re-encoding gives the content back.
		var content []byte
		for _, e := range b.Entries() {
			content = appendEntry(content, e)
		}
		if !bytes.Equal(content, data[HeaderSize:]) {
			t.Fatalf("entries re-encode to %x, content %x", content, data[HeaderSize:])
		}
	})
}

func FuzzParseBlocks(f *testing.F) {
	blocks := newScenario(f).p.Blocks()
	f.Add(EncodeBlocks(blocks))
	f.Add(EncodeBlocks([]*Block{blocks[2], blocks[0], blocks[1]}))
	f.Add(EncodeBlocks(blocks[:1]))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Import(data, fuzzNow)
		if err != nil {
			return
		}
		again, err := Import(p.Export(), fuzzNow)
		if err != nil {
			t.Fatalf("export does not re-import: %v", err)
		}
		if again.ID() != p.ID() || !bytes.Equal(again.Export(), p.Export()) {
			t.Fatal("re-import differs")
		}
		if len(p.Export()) != len(data) {
			t.Fatalf("export is %d bytes, input %d", len(p.Export()), len(data))
		}
	})
}
