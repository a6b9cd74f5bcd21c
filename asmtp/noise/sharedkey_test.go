package noise

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	flynn "github.com/flynn/noise"

	"github.com/asmtp/asmtp/asmtp/keys"
)

func sharedKeyTestHex(t testing.TB, dst []byte, s string) {
	t.Helper()
	if err := keys.DecodeHex(dst, s, "test vector"); err != nil {
		t.Fatal(err)
	}
}

// sharedKeyVectorInputs are the inputs of the computed vector below.
func sharedKeyVectorInputs(t testing.TB) (ephemeralSeed []byte, recipient ed25519.PrivateKey, psk keys.Seed, secret keys.SharedSecret) {
	ephemeralSeed = bytes.Repeat([]byte{0x01}, 32)
	recipient = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x07}, 32))
	// The passphrase seed of "asmtp" (PROTOCOL.md §10).
	sharedKeyTestHex(t, psk[:], "a6110c43aa7d69ce7abb83f8c5ce4f992fe1c29ae4ecee41a3ceee7938933831")
	sharedKeyTestHex(t, secret[:], "0808080808080808080808080808080808080808080808080808080808080848")
	return
}

// TestSealSharedSecretVector pins a fixed-randomness seal. COMPUTED BY US,
// not by upstream keynesis: it was produced by this implementation and
// reproduced by an independent Python script (hashlib BLAKE2b/HMAC, pyca
// ChaCha20Poly1305 and X25519, the Edwards→Montgomery map written out) that
// follows PROTOCOL.md §P.5 step by step. Cross-check against
// keynesis 1.4 when possible.
func TestSealSharedSecretVector(t *testing.T) {
	const want = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c" + // e.pub
		"9cdd13cda2b98f726550a8e07b6933876a094ca694e4c04ac82c4b644d3ab74d" + // enc(secret)
		"00a9d7c34493b9117277507bdfdc4e4b" // tag
	eSeed, recipient, psk, secret := sharedKeyVectorInputs(t)
	if got := keys.Public(recipient).String(); got != "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c" {
		t.Fatalf("recipient public key = %s", got)
	}
	sealed, err := SealSharedSecret(bytes.NewReader(eSeed), keys.Public(recipient), psk, secret)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sealed[:]); got != want {
		t.Fatalf("sealed =\n%s\nwant\n%s", got, want)
	}
	opened, err := OpenSharedSecret(recipient, psk, sealed[:])
	if err != nil {
		t.Fatal(err)
	}
	if opened != secret {
		t.Fatalf("opened %x, want %x", opened, secret)
	}
}

func TestSharedKeyInitialHash(t *testing.T) {
	s := newSymmetricState(SharedKeyProtocolName)
	want := append([]byte(SharedKeyProtocolName), make([]byte, 64-38)...)
	if len(SharedKeyProtocolName) != 38 || !bytes.Equal(s.h[:], want) || s.ck != s.h {
		t.Fatalf("initial h = %x", s.h)
	}
}

func TestSealSharedSecretRoundTrip(t *testing.T) {
	_, master, psk, _ := sharedKeyVectorInputs(t)
	secret, err := keys.GenerateSharedSecret(bytes.NewReader(bytes.Repeat([]byte{0xa5}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	rnd := bytes.NewReader(bytes.Repeat([]byte{0x33, 0x44}, 32))
	sealed, err := SealSharedSecret(rnd, keys.Public(master), psk, secret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenSharedSecret(master, psk, sealed[:])
	if err != nil {
		t.Fatal(err)
	}
	if got != secret {
		t.Fatalf("opened %x, want %x", got, secret)
	}
}

func TestOpenSharedSecretFailures(t *testing.T) {
	eSeed, master, psk, secret := sharedKeyVectorInputs(t)
	sealed, err := SealSharedSecret(bytes.NewReader(eSeed), keys.Public(master), psk, secret)
	if err != nil {
		t.Fatal(err)
	}
	otherMaster := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x09}, 32))
	otherPSK := psk
	otherPSK[0] ^= 1
	flip := func(i int) []byte {
		b := bytes.Clone(sealed[:])
		b[i] ^= 0x80
		return b
	}
	for _, c := range []struct {
		name    string
		master  ed25519.PrivateKey
		psk     keys.Seed
		sealed  []byte
		wantErr error // nil: any error (length checks)
	}{
		{"wrong psk", master, otherPSK, sealed[:], ErrSharedSecretOpen},
		{"wrong master", otherMaster, psk, sealed[:], ErrSharedSecretOpen},
		{"tampered ephemeral", master, psk, flip(0), ErrSharedSecretOpen},
		{"tampered ciphertext", master, psk, flip(40), ErrSharedSecretOpen},
		{"tampered tag", master, psk, flip(79), ErrSharedSecretOpen},
		{"truncated", master, psk, sealed[:79], nil},
		{"too long", master, psk, append(bytes.Clone(sealed[:]), 0), nil},
		{"empty", master, psk, nil, nil},
		{"short master key", master[:32], psk, sealed[:], nil},
	} {
		got, err := OpenSharedSecret(c.master, c.psk, c.sealed)
		if err == nil {
			t.Errorf("%s: opened %x", c.name, got)
			continue
		}
		if c.wantErr != nil && !errors.Is(err, c.wantErr) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.wantErr)
		}
	}
}

func TestSealSharedSecretErrors(t *testing.T) {
	_, master, psk, secret := sharedKeyVectorInputs(t)
	if _, err := SealSharedSecret(bytes.NewReader(make([]byte, 31)), keys.Public(master), psk, secret); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short randomness: err = %v", err)
	}
	var bad keys.PublicKey
	bad[0] = 2 // not on the curve
	if _, err := SealSharedSecret(bytes.NewReader(make([]byte, 32)), bad, psk, secret); !errors.Is(err, keys.ErrBadPoint) {
		t.Errorf("invalid recipient: err = %v", err)
	}
}

// sharedKeyEd25519DH lets flynn/noise use keynesis' Ed25519 DH.
type sharedKeyEd25519DH struct{}

func (sharedKeyEd25519DH) GenerateKeypair(r io.Reader) (flynn.DHKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(r, seed); err != nil {
		return flynn.DHKey{}, err
	}
	pub := keys.Public(ed25519.NewKeyFromSeed(seed))
	return flynn.DHKey{Private: seed, Public: pub[:]}, nil
}

func (sharedKeyEd25519DH) DH(priv, pub []byte) ([]byte, error) {
	var p keys.PublicKey
	copy(p[:], pub)
	out, err := keys.Ed25519DH(ed25519.NewKeyFromSeed(priv), p)
	return out[:], err
}

func (sharedKeyEd25519DH) DHLen() int     { return 32 }
func (sharedKeyEd25519DH) DHName() string { return "ed25519" }

// TestSymmetricStateMatchesFlynn checks the BLAKE2b symmetric state
// (MixHash, MixKey, MixKeyAndHash, HKDF, EncryptAndHash, nonce layout)
// against flynn/noise running the STANDARD Npsk0 order. Only the order of
// two steps differs in the keynesis construction.
func TestSymmetricStateMatchesFlynn(t *testing.T) {
	eSeed, recipient, psk, secret := sharedKeyVectorInputs(t)
	rs := keys.Public(recipient)
	hs, err := flynn.NewHandshakeState(flynn.Config{
		CipherSuite:           flynn.NewCipherSuite(sharedKeyEd25519DH{}, flynn.CipherChaChaPoly, flynn.HashBLAKE2b),
		Random:                bytes.NewReader(eSeed),
		Pattern:               flynn.HandshakeN,
		Initiator:             true,
		PresharedKey:          psk[:],
		PresharedKeyPlacement: 0,
		PeerStatic:            rs[:],
	})
	if err != nil {
		t.Fatal(err)
	}
	want, _, _, err := hs.WriteMessage(nil, secret[:])
	if err != nil {
		t.Fatal(err)
	}

	e := ed25519.NewKeyFromSeed(eSeed)
	ePub := keys.Public(e)
	s := newSymmetricState("Noise_Npsk0_ed25519_ChaChaPoly_BLAKE2b")
	s.mixHash(nil)
	s.mixHash(rs[:]) // standard: pre-message first
	s.mixKeyAndHash(psk[:])
	s.mixEphemeral(ePub)
	dh, err := keys.Ed25519DH(e, rs)
	if err != nil {
		t.Fatal(err)
	}
	s.mixKey(dh[:])
	got := append(ePub[:], s.encryptAndHash(secret[:])...)
	if !bytes.Equal(got, want) {
		t.Fatalf("symmetric state disagrees with flynn/noise:\n got %x\nwant %x", got, want)
	}

	// And the keynesis order really is different from the standard one.
	sealed, err := SealSharedSecret(bytes.NewReader(eSeed), rs, psk, secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(sealed[32:], want[32:]) {
		t.Fatal("keynesis order produced the standard Npsk0 ciphertext")
	}
}
