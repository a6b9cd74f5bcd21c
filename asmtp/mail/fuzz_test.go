package mail

import (
	"bytes"
	"errors"
	"testing"

	"github.com/asmtp/asmtp/asmtp/noise"
)

// chunkEqual compares two chunks field by field.
func chunkEqual(a, b Chunk) bool {
	return a.Sender == b.Sender && a.ID == b.ID && a.Kind == b.Kind && a.Index == b.Index &&
		a.Count == b.Count && a.Total == b.Total && bytes.Equal(a.Data, b.Data)
}

// FuzzDecodePayload: DecodePayload never panics, every error is one of the
// package's classes, and whatever decodes is valid, of a bucket size, and
// survives an encode/decode round trip (byte for byte when it was padded to
// the smallest bucket, as senders do).
func FuzzDecodePayload(f *testing.F) {
	f.Add([]byte("hello"))
	f.Add([]byte{Marker, Version, byte(KindMail)})
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := DecodePayload(p)
		if err != nil {
			if !errors.Is(err, ErrLegacy) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrKind) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error: %v", err)
			}
			if errors.Is(err, ErrLegacy) != IsLegacy(p) {
				t.Fatalf("ErrLegacy = %v for IsLegacy = %v", err, IsLegacy(p))
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("decoded chunk invalid: %v", err)
		}
		if !isBucket(len(p) + SealOverhead) {
			t.Fatalf("accepted a %d-byte payload", len(p))
		}
		enc, err := EncodePayload(c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := DecodePayload(enc)
		if err != nil || !chunkEqual(c, again) {
			t.Fatalf("round trip: %v", err)
		}
		if len(enc) == len(p) && !bytes.Equal(enc, p) {
			t.Fatal("same-size re-encoding differs")
		}
		if len(enc) > len(p) {
			t.Fatalf("re-encoded into a larger bucket: %d > %d", len(enc), len(p))
		}
	})
}

// FuzzOpen seals an arbitrary payload from alice to bob and opens it: the
// result must agree with DecodePayload (or be legacy text), a flipped bit
// must fail authentication, and another expected sender must be refused.
func FuzzOpen(f *testing.F) {
	alice, bob, eve := newParty(f, 1), newParty(f, 2), newParty(f, 3)
	f.Add([]byte("hello"), uint32(0))
	f.Add([]byte("hello"), uint32(77))
	f.Fuzz(func(t *testing.T, p []byte, flip uint32) {
		if len(p) > MaxPayloadSize {
			return
		}
		content, err := noise.Seal(testRand(byte(flip)), alice.secret, bob.public, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Open(bob.secret, eve.public, content); !errors.Is(err, ErrWrongSender) {
			t.Fatalf("other expected sender: %v", err)
		}
		if flip != 0 {
			bit := int(flip-1) % (8 * len(content))
			content[bit/8] ^= 1 << (bit % 8)
			if _, err := Open(bob.secret, alice.public, content); !errors.Is(err, noise.ErrAuthentication) {
				t.Fatalf("flipped bit %d: %v", bit, err)
			}
			return
		}
		got, err := Open(bob.secret, alice.public, content)
		if IsLegacy(p) {
			want := Chunk{Sender: alice.public, ID: LegacyID(content), Kind: KindLegacyText, Count: 1, Total: uint32(len(p)), Data: p}
			if err != nil || !chunkEqual(got, want) {
				t.Fatalf("legacy payload: %+v, %v", got, err)
			}
			return
		}
		want, wantErr := DecodePayload(p)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("Open: %v, DecodePayload: %v", err, wantErr)
		}
		want.Sender = alice.public
		if err == nil && !chunkEqual(got, want) {
			t.Fatal("Open and DecodePayload disagree")
		}
	})
}
