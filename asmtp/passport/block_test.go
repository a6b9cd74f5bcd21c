package passport

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/asmtp/asmtp/asmtp/keys"
)

// genesisVector is a genesis block COMPUTED BY US (not by upstream): Create
// at 2021-02-17T15:32:45Z, alias "laptop", author = Ed25519 seed 0x07×32,
// psk = PassphraseSeed("asmtp"), randomness = 0x08×32 (the shared secret,
// clamped to 08…0848) ‖ 0x01×32 (the ephemeral seed). Its layout, hashes and
// both signatures were checked by an independent Python script; its sealed
// secret is the noise package's seal vector.
const (
	genesisVector   = "000001190221561d2322e2b055d99a843b91fe803ce1eb6900000000000000000000000000000000ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22cfed71826a22b38549d70d5bff99211ce7566e7af4398cbf5b6d58ab5ec51b8307e3a8023382e988d628ae82feb6eb5ab999a022e8afcff46b4c82e5a81c0be0b0001ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c6c6170746f700000000000000000000000000000000000000000000000000000000000000000000000000000000000000221561d0221642d3c0324b5dc86bdc4582f2969b37efa49d73685acff0500085dbf27081825dfe129aaf45ebe396bc1bbde3b8c7f9432e9a13bbf52203fa7b699a667ffbe93b40400030131d4ab6aceec961137917037936e60716fac573afe94d9da84a8020448dfc1120221561dea4a6c63e29c520a8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c9cdd13cda2b98f726550a8e07b6933876a094ca694e4c04ac82c4b644d3ab74d00a9d7c34493b9117277507bdfdc4e4b"
	genesisVectorID = "4358c88e3094d8c0458fe2fc816e2cb5"
	genesisShared   = "31d4ab6aceec961137917037936e60716fac573afe94d9da84a8020448dfc112"
)

func TestGenesisVector(t *testing.T) {
	rnd := bytes.NewReader(append(bytes.Repeat([]byte{0x08}, 32), bytes.Repeat([]byte{0x01}, 32)...))
	p, secret, err := Create(rnd, t0, "laptop", keyA, testPSK(t))
	if err != nil {
		t.Fatal(err)
	}
	g := p.Blocks()[0]
	if got := hex.EncodeToString(g.Bytes()); got != genesisVector {
		t.Fatalf("genesis =\n%s\nwant\n%s", got, genesisVector)
	}
	if p.ID().String() != genesisVectorID {
		t.Fatalf("id = %s", p.ID())
	}
	if sk := mustSharedKey(t, p); sk.String() != genesisShared || sk != secret.Public() {
		t.Fatalf("shared key = %s", sk)
	}
	raw, _ := hex.DecodeString(genesisVector)
	b, err := ParseBlock(raw)
	if err != nil {
		t.Fatal(err)
	}
	h := b.Header()
	if h.Time != 0x0221561d || h.ContentSize != uint16(len(raw)-HeaderSize) || b.ID().String() != genesisVectorID {
		t.Fatalf("parsed header = %+v", h)
	}
	if got, err := p.UnsealSharedSecret(keyA, testPSK(t)); err != nil || got != secret {
		t.Fatalf("unseal = %x, %v", got, err)
	}
}

func TestLayoutConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"header", HeaderSize, 136},
		{"header signed prefix", headerSignedSize, 72},
		{"register master key", RegisterMasterKeySize, 152},
		{"register signed prefix", registerSignedSize, 88},
		{"deregister master key", DeregisterMasterKeySize, 36},
		{"set shared key minimum", SetSharedKeyMinSize, 37},
		{"sealed recipient", SealedRecipientSize, 88},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// rawBlock assembles a block over content with a correct header, lets mut
// change the header, then signs it with author.
func rawBlock(t testing.TB, content []byte, author ed25519.PrivateKey, mut func(h []byte)) []byte {
	t.Helper()
	b := make([]byte, HeaderSize, HeaderSize+len(content))
	binary.BigEndian.PutUint16(b[2:], uint16(len(content)))
	binary.BigEndian.PutUint32(b[4:], uint32(kt(t, 0)))
	ch := HashOf(content)
	copy(b[8:], ch[:])
	pub := keys.Public(author)
	copy(b[40:], pub[:])
	if mut != nil {
		mut(b)
	}
	copy(b[72:], ed25519.Sign(author, b[:72]))
	return append(b, content...)
}

// signedReg signs e as its key would, without NewRegisterMasterKey's checks.
func signedReg(key ed25519.PrivateKey, e RegisterMasterKey) RegisterMasterKey {
	e.Key = keys.Public(key)
	p := e.appendPayload(nil)
	copy(e.Signature[:], ed25519.Sign(key, p[:registerSignedSize]))
	return e
}

func TestParseBlockRejects(t *testing.T) {
	t0k := kt(t, 0)
	regA := mustRegister(t, keyA, "laptop", Hash{}, t0k)
	shared := sharedKeyFor(t, t0k, keyA)
	valid := appendEntry(appendEntry(nil, regA), shared)
	entry := func(e Entry) []byte { return appendEntry(nil, e) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	reg := func(alias string, created, timeout Time) []byte {
		return entry(signedReg(keyA, RegisterMasterKey{Alias: alias, CreatedAt: created, RegistrationTimeout: timeout}))
	}
	sharedRaw := entry(shared)
	good := rawBlock(t, valid, keyA, nil)

	for _, c := range []struct {
		name  string
		block []byte
		want  error // nil: must parse
	}{
		{"valid", good, nil},
		{"valid, no entries", rawBlock(t, nil, keyA, nil), nil},
		{"empty", nil, ErrMalformed},
		{"shorter than a header", good[:HeaderSize-1], ErrMalformed},
		{"longer than the largest block", make([]byte, MaxBlockSize+1), ErrMalformed},
		{"version 1", rawBlock(t, valid, keyA, func(h []byte) { h[1] = 1 }), ErrMalformed},
		{"content_size too large", rawBlock(t, valid, keyA, func(h []byte) { binary.BigEndian.PutUint16(h[2:], uint16(len(valid)+1)) }), ErrMalformed},
		{"content_size too small", rawBlock(t, valid, keyA, func(h []byte) { binary.BigEndian.PutUint16(h[2:], uint16(len(valid)-1)) }), ErrMalformed},
		{"truncated content", good[:len(good)-1], ErrMalformed},
		{"content hash", rawBlock(t, valid, keyA, func(h []byte) { h[8] ^= 1 }), ErrContentHash},
		{"content changed", cat(good[:len(good)-1], []byte{good[len(good)-1] ^ 1}), ErrContentHash},
		{"signature", cat(good[:100], []byte{good[100] ^ 1}, good[101:]), ErrBadSignature},
		{"signed field changed", cat(good[:7], []byte{good[7] ^ 1}, good[8:]), ErrBadSignature},
		{"author changed", cat(good[:40], []byte{good[40] ^ 1}, good[41:]), ErrBadSignature},
		{"entry type 0", rawBlock(t, cat(valid, []byte{0, 0}), keyA, nil), ErrMalformed},
		{"entry type 4", rawBlock(t, cat([]byte{0, 4}, valid[2:]), keyA, nil), ErrMalformed},
		{"trailing byte", rawBlock(t, cat(valid, []byte{0}), keyA, nil), ErrMalformed},
		{"type without payload", rawBlock(t, cat(valid, []byte{0, 1}), keyA, nil), ErrMalformed},
		{"register truncated", rawBlock(t, valid[:EntryTypeSize+RegisterMasterKeySize-1], keyA, nil), ErrMalformed},
		{"register signature", rawBlock(t, cat(valid[:40], []byte{valid[40] ^ 1}, valid[41:]), keyA, nil), ErrBadSignature},
		{"register timeout not created+3600", rawBlock(t, reg("laptop", t0k, t0k+1), keyA, nil), ErrMalformed},
		{"register timeout before created", rawBlock(t, reg("laptop", t0k, t0k-1), keyA, nil), ErrMalformed},
		{"register created_at overflows", rawBlock(t, reg("laptop", 0xffffffff, 0xffffffff), keyA, nil), ErrMalformed},
		{"register alias not ASCII", rawBlock(t, reg("l\xe4ptop", t0k, t0k+RegistrationTimeout), keyA, nil), ErrMalformed},
		{"register alias bytes after NUL", rawBlock(t, reg("lap\x00top", t0k, t0k+RegistrationTimeout), keyA, nil), ErrMalformed},
		{"deregister truncated", rawBlock(t, entry(DeregisterMasterKey{keys.Public(keyA), t0k})[:EntryTypeSize+DeregisterMasterKeySize-1], keyA, nil), ErrMalformed},
		{"shared key count 0", rawBlock(t, cat(sharedRaw[:2], []byte{0}, sharedRaw[3:EntryTypeSize+SetSharedKeyMinSize]), keyA, nil), ErrMalformed},
		{"shared key count 0 with a recipient", rawBlock(t, cat(sharedRaw[:2], []byte{0}, sharedRaw[3:]), keyA, nil), ErrMalformed},
		{"shared key count 2, one recipient", rawBlock(t, cat(sharedRaw[:2], []byte{2}, sharedRaw[3:]), keyA, nil), ErrMalformed},
		{"shared key shorter than minimum", rawBlock(t, sharedRaw[:EntryTypeSize+SetSharedKeyMinSize-1], keyA, nil), ErrMalformed},
		{"shared key recipient truncated", rawBlock(t, sharedRaw[:len(sharedRaw)-1], keyA, nil), ErrMalformed},
	} {
		b, err := ParseBlock(c.block)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			} else if !bytes.Equal(b.Bytes(), c.block) || b.ID() != HashOf(c.block[:HeaderSize]) {
				t.Errorf("%s: round trip differs", c.name)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

// TestParseBlockPrefixes: no proper prefix of a valid block parses.
func TestParseBlockPrefixes(t *testing.T) {
	good := newScenario(t).p.Blocks()[1].Bytes()
	for n := range len(good) {
		if _, err := ParseBlock(good[:n]); err == nil {
			t.Fatalf("prefix of %d bytes parsed", n)
		}
	}
}

func TestParseBlockDoesNotAlias(t *testing.T) {
	good := newScenario(t).p.Blocks()[0].Bytes()
	b, err := ParseBlock(good)
	if err != nil {
		t.Fatal(err)
	}
	good[0] = 0xff
	if b.Bytes()[0] != 0 {
		t.Fatal("block shares the caller's buffer")
	}
}
