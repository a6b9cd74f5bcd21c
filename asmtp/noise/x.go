package noise

import (
	"errors"
	"fmt"
	"io"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/flynn/noise"
)

const (
	// ProtocolX is the Noise protocol name of the mail content seal (§11.2).
	ProtocolX = "Noise_X_25519_ChaChaPoly_BLAKE2b"

	// SealOverhead is what Seal adds to the plaintext: e (32) ‖ enc(s)
	// (32+16) ‖ the payload's tag (16).
	SealOverhead = KeyLen + KeyLen + TagLen + TagLen // 96
	// MaxSealed is the Noise limit on a message (Noise spec §3).
	MaxSealed = noise.MaxMsgLen // 65535
	// MaxSealPlaintext is the largest plaintext Seal accepts. A Topic
	// message carries less (65388 bytes of plaintext, §8).
	MaxSealPlaintext = MaxSealed - SealOverhead // 65439
)

// XKey is a Curve25519 static key pair for Noise X: a shared secret with
// its public half computed once. Seal and Open need both halves, and the
// public one costs an X25519 base-point multiplication, a quarter of a
// seal's X25519 work and a third of an open's; whoever seals or opens many
// messages with one key (every chunk of a mail, every message of a topic)
// makes an XKey once and uses its methods. The zero XKey is not usable:
// make one with NewXKey.
type XKey struct {
	secret keys.SharedSecret
	public keys.SharedKey
}

// NewXKey computes the public half of secret.
func NewXKey(secret keys.SharedSecret) XKey {
	return XKey{secret: secret, public: secret.Public()}
}

// Public is the key's public half, X25519(secret, 9).
func (k XKey) Public() keys.SharedKey { return k.public }

// errZeroXKey is an XKey not made by NewXKey.
var errZeroXKey = errors.New("zero XKey: make it with NewXKey")

// Seal encrypts plaintext from the holder of senderSecret to the holder of
// the Curve25519 key recipient with the one-way Noise X pattern:
// e (32) ‖ enc(s) (48) ‖ enc(plaintext) (len+16). rng supplies the
// ephemeral key; nil means crypto/rand. It is NewXKey(senderSecret).Seal:
// to seal several messages with one key, keep the XKey.
func Seal(rng io.Reader, senderSecret keys.SharedSecret, recipient keys.SharedKey, plaintext []byte) ([]byte, error) {
	return NewXKey(senderSecret).Seal(rng, recipient, plaintext)
}

// Seal is the package's Seal with k as the sender's key.
func (k XKey) Seal(rng io.Reader, recipient keys.SharedKey, plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxSealPlaintext {
		return nil, fmt.Errorf("noise x seal: %d-byte plaintext, maximum %d", len(plaintext), MaxSealPlaintext)
	}
	if k.public == (keys.SharedKey{}) {
		return nil, fmt.Errorf("noise x seal: %w", errZeroXKey)
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   xSuite(),
		Random:        rng,
		Pattern:       noise.HandshakeX,
		Initiator:     true,
		StaticKeypair: noise.DHKey{Private: k.secret[:], Public: k.public[:]},
		PeerStatic:    recipient[:],
	})
	if err != nil {
		return nil, fmt.Errorf("noise x seal: %w", err)
	}
	out, _, _, err := hs.WriteMessage(make([]byte, 0, SealOverhead+len(plaintext)), plaintext)
	if err != nil {
		return nil, fmt.Errorf("noise x seal: %w", err)
	}
	return out, nil
}

// Open decrypts a message made by Seal for the holder of recipientSecret.
// It returns the sender's static Curve25519 key, which the caller must
// compare with the key of the contact it expects: anyone can seal to
// anyone. A message that does not decrypt gives an error wrapping
// ErrAuthentication. It is NewXKey(recipientSecret).Open: to open several
// messages with one key, keep the XKey.
func Open(recipientSecret keys.SharedSecret, sealed []byte) (sender keys.SharedKey, plaintext []byte, err error) {
	return NewXKey(recipientSecret).Open(sealed)
}

// Open is the package's Open with k as the recipient's key.
func (k XKey) Open(sealed []byte) (sender keys.SharedKey, plaintext []byte, err error) {
	if len(sealed) < SealOverhead {
		return sender, nil, fmt.Errorf("noise x open: %d bytes, minimum %d", len(sealed), SealOverhead)
	}
	if len(sealed) > MaxSealed {
		return sender, nil, fmt.Errorf("noise x open: %d bytes, maximum %d", len(sealed), MaxSealed)
	}
	if k.public == (keys.SharedKey{}) {
		return sender, nil, fmt.Errorf("noise x open: %w", errZeroXKey)
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   xSuite(),
		Pattern:       noise.HandshakeX,
		Initiator:     false,
		StaticKeypair: noise.DHKey{Private: k.secret[:], Public: k.public[:]},
	})
	if err != nil {
		return sender, nil, fmt.Errorf("noise x open: %w", err)
	}
	plaintext, _, _, err = hs.ReadMessage(make([]byte, 0, len(sealed)-SealOverhead), sealed)
	if err != nil {
		return sender, nil, fmt.Errorf("noise x open: %w (%v)", ErrAuthentication, err)
	}
	rs := hs.PeerStatic()
	if len(rs) != KeyLen {
		return sender, nil, errors.New("noise x open: no sender key") // unreachable: X always carries s
	}
	copy(sender[:], rs)
	return sender, plaintext, nil
}

// xSuite is standard X25519, ChaChaPoly, BLAKE2b (BLAKE2b-512). Its X25519
// (x/crypto, hence crypto/ecdh) also computes a public key it does not
// need, doubling the cost of each DH; we keep it rather than carry a
// Montgomery ladder of our own.
func xSuite() noise.CipherSuite {
	return noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2b)
}
