package card

import (
	"bytes"
	"errors"
	"testing"

	"github.com/asmtp/asmtp/asmtp/mail"
)

// An update is padded to the smallest mail bucket that holds it and
// decodes to the blocks it carries.
func TestUpdateRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		blocks int
		size   int
	}{
		{1, mail.BucketSmall - mail.SealOverhead},
		{mail.BucketSmall - mail.SealOverhead - offUpdateBlocks, mail.BucketSmall - mail.SealOverhead},
		{mail.BucketSmall - mail.SealOverhead - offUpdateBlocks + 1, mail.BucketMedium - mail.SealOverhead},
		{MaxUpdateBlocks, mail.MaxPayloadSize},
	} {
		blocks := bytes.Repeat([]byte{0x5a}, tc.blocks)
		p, err := EncodeUpdate(blocks)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != tc.size || !IsUpdate(p) || IsCard(p) {
			t.Errorf("%d-byte passport: %d-byte plaintext (want %d), IsUpdate %v", tc.blocks, len(p), tc.size, IsUpdate(p))
		}
		got, err := DecodeUpdate(p)
		if err != nil || !bytes.Equal(got, blocks) {
			t.Errorf("%d-byte passport: decoded %d bytes, %v", tc.blocks, len(got), err)
		}
	}
	if _, err := EncodeUpdate(make([]byte, MaxUpdateBlocks+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized passport: %v, want ErrMalformed", err)
	}
}

// DecodeUpdate refuses every break of the layout.
func TestDecodeUpdateRejects(t *testing.T) {
	good, err := EncodeUpdate([]byte("passport"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
		want error
	}{
		{"card kind", func(p []byte) []byte { p[2] = Kind; return p }, ErrNotCard},
		{"reserved byte", func(p []byte) []byte { p[3] = 1; return p }, ErrMalformed},
		{"not a bucket size", func(p []byte) []byte { return p[:len(p)-1] }, ErrMalformed},
		{"zero length", func(p []byte) []byte { p[offUpdateLen+3] = 0; return p }, ErrMalformed},
		{"length past the end", func(p []byte) []byte { p[offUpdateLen] = 0xff; return p }, ErrMalformed},
		{"padding not zero", func(p []byte) []byte { p[len(p)-1] = 1; return p }, ErrMalformed},
	} {
		p := tc.edit(bytes.Clone(good))
		if _, err := DecodeUpdate(p); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
