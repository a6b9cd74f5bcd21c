package noise

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/flynn/noise"
)

const (
	// ProtocolIK is the Noise protocol name of the link handshake (§6); it is
	// hashed into the initial handshake hash.
	ProtocolIK = "Noise_IK_ed25519_ChaChaPoly_BLAKE2b"
	// DHEd25519 is keynesis' name for Diffie-Hellman over Ed25519 keys (§4).
	DHEd25519 = "ed25519"

	// HashLen is the BLAKE2b-512 output length: the size of the handshake
	// hash, and so of the session id.
	HashLen = 64
	// KeyLen is the size of a public key and of a DH output.
	KeyLen = 32
	// TagLen is the size of a ChaCha20-Poly1305 authentication tag.
	TagLen = 16

	// IKMessage1Len is the initiator's message: e (32) ‖ enc(s) (32+16) ‖
	// enc(empty payload) (16).
	IKMessage1Len = KeyLen + KeyLen + TagLen + TagLen // 96
	// IKMessage2Len is the responder's message: e (32) ‖ enc(empty payload) (16).
	IKMessage2Len = KeyLen + TagLen // 48
)

// ErrAuthentication is returned when a Noise message does not decrypt: the
// peers do not share the keys they believe they share, or the bytes were
// altered.
var ErrAuthentication = errors.New("noise: message authentication failed")

// Handshake is one side of the IK link handshake. The initiator writes
// message 1 and reads message 2; the responder reads message 1 and writes
// message 2. After the last message, Split yields the link ciphers.
type Handshake struct {
	hs        *noise.HandshakeState
	initiator bool
	remote    keys.PublicKey
	send      *LinkCipher
	recv      *LinkCipher
	sessionID [HashLen]byte
}

// NewInitiator starts a handshake with the responder whose Ed25519 key is
// remote. rng supplies the ephemeral key; nil means crypto/rand.
func NewInitiator(rng io.Reader, local ed25519.PrivateKey, remote keys.PublicKey) (*Handshake, error) {
	if len(local) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ik initiator: local key is %d bytes, want %d", len(local), ed25519.PrivateKeySize)
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   ikSuite(),
		Random:        rng,
		Pattern:       noise.HandshakeIK,
		Initiator:     true,
		StaticKeypair: ikStatic(local),
		PeerStatic:    remote[:],
	})
	if err != nil {
		return nil, fmt.Errorf("ik initiator: %w", err)
	}
	return &Handshake{hs: hs, initiator: true, remote: remote}, nil
}

// NewResponder starts the responder's side of a handshake. rng supplies the
// ephemeral key; nil means crypto/rand.
func NewResponder(rng io.Reader, local ed25519.PrivateKey) (*Handshake, error) {
	if len(local) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ik responder: local key is %d bytes, want %d", len(local), ed25519.PrivateKeySize)
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   ikSuite(),
		Random:        rng,
		Pattern:       noise.HandshakeIK,
		Initiator:     false,
		StaticKeypair: ikStatic(local),
	})
	if err != nil {
		return nil, fmt.Errorf("ik responder: %w", err)
	}
	return &Handshake{hs: hs}, nil
}

// WriteMessage appends this side's next handshake message (with an empty
// payload) to dst: IKMessage1Len bytes for the initiator, IKMessage2Len for
// the responder.
func (h *Handshake) WriteMessage(dst []byte) ([]byte, error) {
	out, cs1, cs2, err := h.hs.WriteMessage(dst, nil)
	if err != nil {
		return nil, fmt.Errorf("ik write message %d: %w", h.hs.MessageIndex()+1, err)
	}
	if cs1 != nil {
		h.finish(cs1, cs2)
	}
	return out, nil
}

// ReadMessage processes the peer's next handshake message, which must be
// exactly IKMessage1Len (responder) or IKMessage2Len (initiator) bytes and
// carry an empty payload. A message that does not decrypt gives an error
// wrapping ErrAuthentication; an invalid Ed25519 point one wrapping
// keys.ErrBadPoint.
func (h *Handshake) ReadMessage(msg []byte) error {
	index := h.hs.MessageIndex() + 1
	want := IKMessage1Len
	if h.initiator {
		want = IKMessage2Len
	}
	if len(msg) != want {
		return fmt.Errorf("ik read message %d: %d bytes, want %d", index, len(msg), want)
	}
	payload, cs1, cs2, err := h.hs.ReadMessage(nil, msg)
	if errors.Is(err, keys.ErrBadPoint) {
		return fmt.Errorf("ik read message %d: %w", index, err)
	}
	if err != nil {
		return fmt.Errorf("ik read message %d: %w (%v)", index, ErrAuthentication, err)
	}
	if len(payload) != 0 {
		return fmt.Errorf("ik read message %d: unexpected %d-byte payload", index, len(payload))
	}
	if !h.initiator {
		copy(h.remote[:], h.hs.PeerStatic())
	}
	if cs1 != nil {
		h.finish(cs1, cs2)
	}
	return nil
}

// finish keeps the link ciphers and the session id. cs1 carries
// initiator-to-responder traffic, cs2 the reverse.
func (h *Handshake) finish(cs1, cs2 *noise.CipherState) {
	c1 := newLinkCipher(cs1.UnsafeKey(), cs1.Nonce())
	c2 := newLinkCipher(cs2.UnsafeKey(), cs2.Nonce())
	if h.initiator {
		h.send, h.recv = c1, c2
	} else {
		h.send, h.recv = c2, c1
	}
	copy(h.sessionID[:], h.hs.ChannelBinding())
}

// Remote is the peer's static Ed25519 key: the one given to NewInitiator,
// or, on the responder, the one revealed by message 1.
func (h *Handshake) Remote() keys.PublicKey { return h.remote }

// Complete reports whether both handshake messages have been processed.
func (h *Handshake) Complete() bool { return h.send != nil }

// Split returns the link ciphers (send: this side to the peer, recv: the
// peer to this side) and the session id, the final handshake hash, which
// is the same on both sides.
func (h *Handshake) Split() (send, recv *LinkCipher, sessionID [HashLen]byte, err error) {
	if !h.Complete() {
		return nil, nil, sessionID, errors.New("ik split: handshake not complete")
	}
	return h.send, h.recv, h.sessionID, nil
}

// ikSuite is ed25519 DH, ChaChaPoly, BLAKE2b (BLAKE2b-512).
func ikSuite() noise.CipherSuite {
	return noise.NewCipherSuite(ed25519DH{}, noise.CipherChaChaPoly, noise.HashBLAKE2b)
}

func ikStatic(local ed25519.PrivateKey) noise.DHKey {
	return noise.DHKey{Private: local, Public: local[ed25519.SeedSize:]}
}

// ed25519DH is keynesis' "ed25519" Noise DH function (§4): a private key is
// an Ed25519 key (seed ‖ public), a public key its Edwards encoding, and DH
// is X25519 on the clamped SHA-512 scalar and the Montgomery form of the
// peer's point. Invalid points are rejected (keys.ErrBadPoint).
type ed25519DH struct{}

// GenerateKeypair draws a 32-byte Ed25519 seed from rng.
func (ed25519DH) GenerateKeypair(rng io.Reader) (noise.DHKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rng, seed); err != nil {
		return noise.DHKey{}, fmt.Errorf("ed25519 ephemeral key: %w", err)
	}
	k := ed25519.NewKeyFromSeed(seed)
	return noise.DHKey{Private: k, Public: k[ed25519.SeedSize:]}, nil
}

// DH is keys.Ed25519DH.
func (ed25519DH) DH(private, public []byte) ([]byte, error) {
	if len(private) != ed25519.PrivateKeySize || len(public) != KeyLen {
		return nil, fmt.Errorf("ed25519 dh: key sizes %d/%d, want %d/%d", len(private), len(public), ed25519.PrivateKeySize, KeyLen)
	}
	out, err := keys.Ed25519DH(ed25519.PrivateKey(private), keys.PublicKey(public))
	if err != nil {
		return nil, err
	}
	return out[:], nil
}

func (ed25519DH) DHLen() int     { return KeyLen }
func (ed25519DH) DHName() string { return DHEd25519 }
