package mail

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"testing"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/noise"
)

// testRand is a deterministic io.Reader for keys, ids and ephemerals.
func testRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

type party struct {
	secret keys.SharedSecret
	public keys.SharedKey
}

func newParty(t testing.TB, seed byte) party {
	t.Helper()
	s, err := keys.GenerateSharedSecret(testRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return party{secret: s, public: s.Public()}
}

func testMessage(n int, seed byte) []byte {
	msg := make([]byte, n)
	if _, err := io.ReadFull(testRand(seed), msg); err != nil {
		panic(err)
	}
	return msg
}

func isBucket(n int) bool {
	b := BucketSizes()
	return slices.Contains(b[:], n)
}

func TestConstants(t *testing.T) {
	cases := []struct {
		name      string
		got, want int
	}{
		{"noise overhead", noise.SealOverhead, SealOverhead},
		{"max payload", MaxPayloadSize, 65388},
		{"chunk data", ChunkDataSize, 65359},
		{"max chunks", MaxChunks, 402},
		{"chunks of max message", ChunkCount(MaxMessageSize), MaxChunks},
		{"header", HeaderSize, 29},
		{"largest bucket", BucketSizes()[NumBuckets-1], MaxContentSize},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if MaxChunks > 0xffff {
		t.Errorf("MaxChunks %d does not fit a u16", MaxChunks)
	}
	if ChunkDataSize > 0xffff {
		t.Errorf("ChunkDataSize %d does not fit the u16 data length", ChunkDataSize)
	}
	b := BucketSizes()
	if payloadSize(b[0]) < HeaderSize {
		t.Errorf("smallest bucket %d cannot hold a header", b[0])
	}
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			t.Errorf("buckets not increasing: %v", b)
		}
	}
}

// TestRoundTrip seals messages of interesting sizes, opens the chunks in a
// shuffled order with duplicates, and checks the message comes out once and
// byte-identical.
func TestRoundTrip(t *testing.T) {
	small := payloadSize(BucketSmall) - HeaderSize
	cases := []struct {
		name   string
		size   int
		chunks int
		bucket int // every content's size
	}{
		{"empty", 0, 1, BucketSmall},
		{"one byte", 1, 1, BucketSmall},
		{"fills smallest bucket", small, 1, BucketSmall},
		{"one past smallest bucket", small + 1, 1, BucketMedium},
		{"fills medium bucket", payloadSize(BucketMedium) - HeaderSize, 1, BucketMedium},
		{"fills large bucket", payloadSize(BucketLarge) - HeaderSize, 1, BucketLarge},
		{"one past large bucket", payloadSize(BucketLarge) - HeaderSize + 1, 1, BucketMax},
		{"exactly one chunk", ChunkDataSize, 1, BucketMax},
		{"one past one chunk", ChunkDataSize + 1, 2, BucketMax},
		{"exactly three chunks", 3 * ChunkDataSize, 3, BucketMax},
		{"max message", MaxMessageSize, MaxChunks, BucketMax},
	}
	alice, bob := newParty(t, 1), newParty(t, 2)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := testMessage(c.size, byte(i))
			id, err := NewMessageID(testRand(byte(100 + i)))
			if err != nil {
				t.Fatal(err)
			}
			contents, err := Seal(testRand(byte(i)), alice.secret, bob.public, id, msg)
			if err != nil {
				t.Fatal(err)
			}
			if len(contents) != c.chunks {
				t.Fatalf("%d contents, want %d", len(contents), c.chunks)
			}
			for j, content := range contents {
				if len(content) != c.bucket {
					t.Fatalf("content %d is %d bytes, want bucket %d", j, len(content), c.bucket)
				}
			}

			// Opened in any order, some twice: each chunk says where it goes.
			byIndex := make([]Chunk, len(contents))
			for _, j := range shuffledWithDuplicates(len(contents), uint64(i)) {
				chunk, err := Open(bob.secret, alice.public, contents[j])
				if err != nil {
					t.Fatalf("open content %d: %v", j, err)
				}
				if chunk.Sender != alice.public || chunk.ID != id || chunk.Kind != KindMail || int(chunk.Index) != j {
					t.Fatalf("content %d opened as sender %s id %s kind %s index %d", j, chunk.Sender, chunk.ID, chunk.Kind, chunk.Index)
				}
				byIndex[chunk.Index] = chunk
			}
			got, err := Join(byIndex)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Data, msg) || got.ID != id || got.Kind != KindMail || got.Sender != alice.public {
				t.Fatalf("reassembled %d bytes id %s, want %d bytes id %s", len(got.Data), got.ID, len(msg), id)
			}
		})
	}
}

// shuffledWithDuplicates returns every index in [0, n) in random order, with
// about a third of them repeated.
func shuffledWithDuplicates(n int, seed uint64) []int {
	r := mrand.New(mrand.NewPCG(seed, 7))
	order := make([]int, 0, n+n/3+1)
	for i := range n {
		order = append(order, i)
	}
	for range n/3 + 1 {
		order = append(order, r.IntN(n))
	}
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// TestPaddingOnlyBuckets checks, without sealing, that every message size
// gives payloads of bucket sizes only: the smallest that fits for one
// chunk, the largest for every chunk of several.
func TestPaddingOnlyBuckets(t *testing.T) {
	var sizes []int
	for n := 0; n <= 3*ChunkDataSize+2; n += 997 {
		sizes = append(sizes, n)
	}
	for _, b := range BucketSizes() {
		edge := payloadSize(b) - HeaderSize
		sizes = append(sizes, edge-1, edge, edge+1)
	}
	sizes = append(sizes, MaxMessageSize-1, MaxMessageSize)
	msg := make([]byte, MaxMessageSize)
	for _, n := range sizes {
		chunks, err := Split(MessageID{1}, KindMail, msg[:n])
		if err != nil {
			t.Fatalf("split %d: %v", n, err)
		}
		for _, c := range chunks {
			p, err := EncodePayload(c)
			if err != nil {
				t.Fatalf("encode %d-byte message chunk %d: %v", n, c.Index, err)
			}
			want := MaxPayloadSize
			if len(chunks) == 1 {
				want = smallestFit(HeaderSize + n)
			}
			if len(p) != want || !isBucket(len(p)+SealOverhead) {
				t.Fatalf("%d-byte message chunk %d: payload %d bytes, want %d", n, c.Index, len(p), want)
			}
		}
	}
}

func smallestFit(n int) int {
	for _, b := range BucketSizes() {
		if n <= payloadSize(b) {
			return payloadSize(b)
		}
	}
	return -1
}

func TestSplitRejects(t *testing.T) {
	cases := []struct {
		name string
		kind Kind
		size int
		want error
	}{
		{"too large", KindMail, MaxMessageSize + 1, ErrMalformed},
		{"legacy kind", KindLegacyText, 10, ErrKind},
		{"reserved kind", Kind(2), 10, ErrKind},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Split(MessageID{}, c.kind, make([]byte, c.size))
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	alice, bob, eve := newParty(t, 1), newParty(t, 2), newParty(t, 3)
	seal := func(from party, msg []byte) []byte {
		contents, err := Seal(testRand(9), from.secret, bob.public, MessageID{7}, msg)
		if err != nil {
			t.Fatal(err)
		}
		return contents[0]
	}
	good := seal(alice, []byte("Subject: hi\r\n\r\nhello\r\n"))
	flip := func(i int) []byte {
		c := bytes.Clone(good)
		c[i] ^= 0x01
		return c
	}
	cases := []struct {
		name    string
		secret  keys.SharedSecret
		content []byte
		want    error
	}{
		{"wrong sender", bob.secret, seal(eve, []byte("hello")), ErrWrongSender},
		{"wrong recipient", eve.secret, good, noise.ErrAuthentication},
		{"tampered ephemeral", bob.secret, flip(0), noise.ErrAuthentication},
		{"tampered static", bob.secret, flip(40), noise.ErrAuthentication},
		{"tampered payload", bob.secret, flip(200), noise.ErrAuthentication},
		{"tampered tag", bob.secret, flip(len(good) - 1), noise.ErrAuthentication},
		{"truncated", bob.secret, good[:len(good)-1], noise.ErrAuthentication},
		{"too long", bob.secret, make([]byte, MaxContentSize+1), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(c.secret, alice.public, c.content)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	if _, err := Open(bob.secret, alice.public, good); err != nil {
		t.Fatalf("untampered content: %v", err)
	}
}

// validPayload is the encoded payload of chunk index of an n-byte message.
func validPayload(t *testing.T, n, index int) []byte {
	t.Helper()
	chunks, err := Split(MessageID{0xaa}, KindMail, testMessage(n, 5))
	if err != nil {
		t.Fatal(err)
	}
	p, err := EncodePayload(chunks[index])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecodePayloadRejects(t *testing.T) {
	put16 := func(p []byte, off int, v uint16) []byte { p[off], p[off+1] = byte(v>>8), byte(v); return p }
	put32 := func(p []byte, off int, v uint32) []byte {
		p[off], p[off+1], p[off+2], p[off+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		return p
	}
	one := func() []byte { return validPayload(t, 100, 0) }             // 1-chunk, smallest bucket
	two := func() []byte { return validPayload(t, ChunkDataSize+5, 1) } // last of 2 chunks
	cases := []struct {
		name string
		p    []byte
		want error
	}{
		{"empty is legacy", nil, ErrLegacy},
		{"text is legacy", []byte("hello"), ErrLegacy},
		{"marker only", []byte{Marker}, ErrMalformed},
		{"version 0", func() []byte { p := one(); p[offVersion] = 0; return p }(), ErrVersion},
		{"version 2", func() []byte { p := one(); p[offVersion] = 2; return p }(), ErrVersion},
		{"not a bucket size", one()[:payloadSize(BucketSmall)-1], ErrMalformed},
		{"header only", []byte{Marker, Version, byte(KindMail)}, ErrMalformed},
		{"kind 0", func() []byte { p := one(); p[offKind] = 0; return p }(), ErrKind},
		{"reserved kind", func() []byte { p := one(); p[offKind] = 2; return p }(), ErrKind},
		{"count 0", put16(one(), offCount, 0), ErrMalformed},
		{"index = count", put16(one(), offIndex, 1), ErrMalformed},
		{"count above max", put16(put16(two(), offCount, MaxChunks+1), offIndex, 0), ErrMalformed},
		{"total above max", put32(one(), offTotal, MaxMessageSize+1), ErrMalformed},
		{"count inconsistent with total", put16(two(), offCount, 3), ErrMalformed},
		{"total inconsistent with count", put32(one(), offTotal, ChunkDataSize+1), ErrMalformed},
		{"data length too short", put16(one(), offDataLen, 99), ErrMalformed},
		{"data length too long", put16(one(), offDataLen, 101), ErrMalformed},
		{"data length past payload", put16(one(), offDataLen, 0xffff), ErrMalformed},
		{"nonzero padding", func() []byte { p := one(); p[len(p)-1] = 1; return p }(), ErrMalformed},
		{"nonzero first padding byte", func() []byte { p := one(); p[offData+100] = 0x80; return p }(), ErrMalformed},
		{"multi-chunk in small bucket", func() []byte {
			c, err := DecodePayload(two())
			if err != nil {
				t.Fatal(err)
			}
			p := make([]byte, payloadSize(BucketSmall))
			copy(p, two()[:HeaderSize+len(c.Data)])
			return p
		}(), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodePayload(c.p)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	for _, p := range [][]byte{one(), two(), validPayload(t, 0, 0)} {
		if _, err := DecodePayload(p); err != nil {
			t.Fatalf("valid payload rejected: %v", err)
		}
	}
}

// TestDecodeAcceptsLargerBucket: a sender may pad a one-chunk message more
// than needed; receivers accept any bucket that fits.
func TestDecodeAcceptsLargerBucket(t *testing.T) {
	small := validPayload(t, 100, 0)
	for _, b := range BucketSizes() {
		p := make([]byte, payloadSize(b))
		copy(p, small)
		c, err := DecodePayload(p)
		if err != nil {
			t.Fatalf("bucket %d: %v", b, err)
		}
		if !bytes.Equal(c.Data, testMessage(100, 5)) {
			t.Fatalf("bucket %d: data differs", b)
		}
	}
}

func TestChunkValidate(t *testing.T) {
	cases := []struct {
		name string
		c    Chunk
		ok   bool
	}{
		{"empty mail", Chunk{Kind: KindMail, Count: 1}, true},
		{"zero chunk", Chunk{}, false},
		{"legacy", Chunk{Kind: KindLegacyText, Count: 1, Total: 3, Data: []byte("abc")}, true},
		{"legacy total mismatch", Chunk{Kind: KindLegacyText, Count: 1, Total: 4, Data: []byte("abc")}, false},
		{"legacy two chunks", Chunk{Kind: KindLegacyText, Count: 2, Index: 1, Total: 3, Data: []byte("abc")}, false},
		{"legacy too long", Chunk{Kind: KindLegacyText, Count: 1, Total: MaxPayloadSize + 1, Data: make([]byte, MaxPayloadSize+1)}, false},
		{"reserved kind", Chunk{Kind: 3, Count: 1}, false},
		{"mail data mismatch", Chunk{Kind: KindMail, Count: 1, Total: 2, Data: []byte("a")}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.c.Validate(); (err == nil) != c.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestLegacyPayload(t *testing.T) {
	alice, bob := newParty(t, 1), newParty(t, 2)
	cases := []struct {
		name string
		text []byte
	}{
		{"ascii", []byte("Message to bob (00112233)\nhello\n")},
		{"empty", nil},
		{"utf-8", []byte("é café ✉")},
		{"utf-8 bom", []byte("\xef\xbb\xbfhi")},
		{"utf-16 bom", []byte("\xff\xfeh\x00i\x00")},
		{"invalid utf-8", []byte("\x80\xf7abc")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !IsLegacy(c.text) {
				t.Fatalf("IsLegacy(%q) = false", c.text)
			}
			content, err := noise.Seal(testRand(3), alice.secret, bob.public, c.text)
			if err != nil {
				t.Fatal(err)
			}
			chunk, err := Open(bob.secret, alice.public, content)
			if err != nil {
				t.Fatal(err)
			}
			if chunk.Kind != KindLegacyText || chunk.ID != LegacyID(content) || chunk.Count != 1 || !bytes.Equal(chunk.Data, c.text) {
				t.Fatalf("opened as %+v", chunk)
			}
			if m, err := Join([]Chunk{chunk}); err != nil || !bytes.Equal(m.Data, c.text) || m.Kind != KindLegacyText {
				t.Fatalf("joined as %+v, %v", m, err)
			}
		})
	}
	// Typed text never starts with the marker; a payload that does is ours.
	if IsLegacy([]byte{Marker}) {
		t.Fatal("IsLegacy(marker) = true")
	}
}

func TestJoin(t *testing.T) {
	msg := testMessage(3*ChunkDataSize-7, 4)
	chunks, err := Split(MessageID{9}, KindMail, msg)
	if err != nil {
		t.Fatal(err)
	}
	otherID, err := Split(MessageID{8}, KindMail, msg)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		chunks []Chunk
		ok     bool
	}{
		{"in order", chunks, true},
		{"reversed", []Chunk{chunks[2], chunks[1], chunks[0]}, true},
		{"missing", chunks[:2], false},
		{"duplicate", []Chunk{chunks[0], chunks[1], chunks[1]}, false},
		{"mixed ids", []Chunk{chunks[0], otherID[1], chunks[2]}, false},
		{"none", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Join(c.chunks)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if c.ok && !bytes.Equal(m.Data, msg) {
				t.Fatal("joined message differs")
			}
		})
	}
	m, err := Join([]Chunk{{Kind: KindMail, Count: 1}})
	if err != nil || len(m.Data) != 0 {
		t.Fatalf("empty message: %v", err)
	}
}

func ExampleSeal() {
	alice, _ := keys.GenerateSharedSecret(testRand(1))
	bob, _ := keys.GenerateSharedSecret(testRand(2))
	id, _ := NewMessageID(testRand(3))
	contents, _ := Seal(testRand(4), alice, bob.Public(), id, []byte("Subject: hi\r\n\r\nhello\r\n"))
	chunk, err := Open(bob, alice.Public(), contents[0])
	fmt.Println(len(contents), len(contents[0]), chunk.Count, err)
	// Output: 1 2048 1 <nil>
}
