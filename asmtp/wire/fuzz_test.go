package wire

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// FuzzReadFrame reads a stream of frames keyed with the §18.2 vector key
// (seed corpus: testdata/fuzz/FuzzReadFrame, frames that key produced).
// The reader must never panic, must stop at the first bad frame and then
// keep returning that error, and must only return plaintexts of frames
// that fit the limits.
func FuzzReadFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte) {
		r, _ := vectorConn(stream)
		consumed := 0
		for {
			p, err := r.ReadFrame(context.Background())
			if err != nil {
				if errors.Is(err, io.EOF) {
					if consumed != len(stream) {
						t.Fatalf("clean EOF after %d of %d bytes", consumed, len(stream))
					}
					return
				}
				if _, err2 := r.ReadFrame(context.Background()); err2 != err {
					t.Fatalf("error not final: %v then %v", err, err2)
				}
				return
			}
			if len(p) > MaxFramePlaintext {
				t.Fatalf("%d-byte plaintext", len(p))
			}
			consumed += FrameHeaderSize + len(p) + MinFrameLength
			if consumed > len(stream) {
				t.Fatalf("read past the input: %d of %d", consumed, len(stream))
			}
		}
	})
}

// FuzzDecodeMessage: Decode never panics, and every message it accepts
// encodes back to exactly its input (the encoding is canonical).
func FuzzDecodeMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if m != nil {
				t.Fatal("message returned with an error")
			}
			return
		}
		got, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded %x to %#v, which does not encode: %v", b, m, err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("decoded %x, re-encoded %x", b, got)
		}
	})
}
