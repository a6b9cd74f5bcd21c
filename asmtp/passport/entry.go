package passport

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/noise"
)

// EntryType is the u16 BE tag in front of every entry.
type EntryType uint16

// Entry types.
const (
	EntryRegisterMasterKey   EntryType = 0x0001
	EntryDeregisterMasterKey EntryType = 0x0002
	EntrySetSharedKey        EntryType = 0x0003
)

// Entry layout constants (sizes exclude the 2-byte type unless noted).
const (
	EntryTypeSize = 2

	MaxAliasLen = 32
	// RegistrationTimeout is registration_timeout - created_at, in seconds.
	RegistrationTimeout = 3600
	// RegisterMasterKeySize: key 32 ‖ alias 32 ‖ passport_id 16 ‖
	// created_at 4 ‖ registration_timeout 4 ‖ signature 64.
	RegisterMasterKeySize = keys.PublicKeySize + MaxAliasLen + HashSize + 4 + 4 + ed25519.SignatureSize
	// registerSignedSize is the prefix of the payload the key signs.
	registerSignedSize = RegisterMasterKeySize - ed25519.SignatureSize

	// DeregisterMasterKeySize: key 32 ‖ created_at 4.
	DeregisterMasterKeySize = keys.PublicKeySize + 4

	// SetSharedKeyMinSize: count 1 ‖ shared key 32 ‖ created_at 4.
	SetSharedKeyMinSize = 1 + keys.PublicKeySize + 4
	// RecipientIDSize is the prefix of a master key that names a recipient.
	RecipientIDSize = 8
	// SealedRecipientSize: recipient id 8 ‖ sealed secret 80.
	SealedRecipientSize = RecipientIDSize + noise.SealedSharedSecretSize
	// MaxRecipients is the largest SetSharedKey count (a u8; 0 is rejected).
	MaxRecipients = math.MaxUint8
)

// Entry is one of RegisterMasterKey, DeregisterMasterKey, SetSharedKey.
type Entry interface {
	Type() EntryType
	appendPayload(b []byte) []byte
}

// RegisterMasterKey adds a master key. It is signed by the key itself over
// payload bytes [0..88), proving possession.
type RegisterMasterKey struct {
	Key   keys.PublicKey
	Alias string
	// PassportID is zero for the genesis self-registration and the passport
	// id otherwise, so the entry cannot be replayed into another passport.
	PassportID          Hash
	CreatedAt           Time
	RegistrationTimeout Time
	Signature           [ed25519.SignatureSize]byte
}

// DeregisterMasterKey removes a master key. The block signature covers it.
type DeregisterMasterKey struct {
	Key       keys.PublicKey
	CreatedAt Time
}

// SealedRecipient is one master key's copy of a sealed shared secret.
type SealedRecipient struct {
	// ID is the first RecipientIDSize bytes of the master key.
	ID     [RecipientIDSize]byte
	Sealed [noise.SealedSharedSecretSize]byte
}

// SetSharedKey publishes a new Curve25519 shared key and its secret sealed
// to master keys (normally all active ones).
type SetSharedKey struct {
	Key        keys.SharedKey
	CreatedAt  Time
	Recipients []SealedRecipient
}

// Type implements Entry.
func (RegisterMasterKey) Type() EntryType { return EntryRegisterMasterKey }

// Type implements Entry.
func (DeregisterMasterKey) Type() EntryType { return EntryDeregisterMasterKey }

// Type implements Entry.
func (SetSharedKey) Type() EntryType { return EntrySetSharedKey }

// RecipientID is the recipient id of a master key.
func RecipientID(k keys.PublicKey) [RecipientIDSize]byte {
	var id [RecipientIDSize]byte
	copy(id[:], k[:RecipientIDSize])
	return id
}

// NewRegisterMasterKey builds and signs a registration of key. passportID is
// zero only in a genesis block. The alias is printable ASCII, at most
// MaxAliasLen bytes.
func NewRegisterMasterKey(key ed25519.PrivateKey, alias string, passportID Hash, createdAt Time) (RegisterMasterKey, error) {
	var e RegisterMasterKey
	if len(key) != ed25519.PrivateKeySize {
		return e, fmt.Errorf("register master key: private key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if err := checkNewAlias(alias); err != nil {
		return e, fmt.Errorf("register master key: %w", err)
	}
	if createdAt > math.MaxUint32-RegistrationTimeout {
		return e, fmt.Errorf("register master key: created_at %d: %w", createdAt, ErrMalformed)
	}
	e = RegisterMasterKey{
		Key:                 keys.Public(key),
		Alias:               alias,
		PassportID:          passportID,
		CreatedAt:           createdAt,
		RegistrationTimeout: createdAt + RegistrationTimeout,
	}
	payload := e.appendPayload(nil)
	copy(e.Signature[:], ed25519.Sign(key, payload[:registerSignedSize]))
	return e, nil
}

func checkNewAlias(alias string) error {
	if len(alias) > MaxAliasLen {
		return fmt.Errorf("alias is %d bytes, at most %d: %w", len(alias), MaxAliasLen, ErrMalformed)
	}
	for i := 0; i < len(alias); i++ {
		if alias[i] < 0x20 || alias[i] > 0x7e {
			return fmt.Errorf("alias %q: not printable ASCII: %w", alias, ErrMalformed)
		}
	}
	return nil
}

func (e RegisterMasterKey) appendPayload(b []byte) []byte {
	b = append(b, e.Key[:]...)
	var alias [MaxAliasLen]byte
	copy(alias[:], e.Alias)
	b = append(b, alias[:]...)
	b = append(b, e.PassportID[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(e.CreatedAt))
	b = binary.BigEndian.AppendUint32(b, uint32(e.RegistrationTimeout))
	return append(b, e.Signature[:]...)
}

func (e DeregisterMasterKey) appendPayload(b []byte) []byte {
	b = append(b, e.Key[:]...)
	return binary.BigEndian.AppendUint32(b, uint32(e.CreatedAt))
}

func (e SetSharedKey) appendPayload(b []byte) []byte {
	b = append(b, byte(len(e.Recipients)))
	b = append(b, e.Key[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(e.CreatedAt))
	for _, r := range e.Recipients {
		b = append(b, r.ID[:]...)
		b = append(b, r.Sealed[:]...)
	}
	return b
}

// appendEntry appends type ‖ payload. Callers check SetSharedKey counts.
func appendEntry(b []byte, e Entry) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(e.Type()))
	return e.appendPayload(b)
}

// parseEntries parses block content: a concatenation of entries.
func parseEntries(content []byte) ([]Entry, error) {
	var entries []Entry
	for off := 0; off < len(content); {
		rest := content[off:]
		if len(rest) < EntryTypeSize {
			return nil, fmt.Errorf("entry at offset %d: %d trailing bytes: %w", off, len(rest), ErrMalformed)
		}
		t := EntryType(binary.BigEndian.Uint16(rest))
		payload := rest[EntryTypeSize:]
		var (
			e   Entry
			n   int
			err error
		)
		switch t {
		case EntryRegisterMasterKey:
			e, n, err = parseRegisterMasterKey(payload)
		case EntryDeregisterMasterKey:
			e, n, err = parseDeregisterMasterKey(payload)
		case EntrySetSharedKey:
			e, n, err = parseSetSharedKey(payload)
		default:
			err = fmt.Errorf("unknown entry type 0x%04x: %w", uint16(t), ErrMalformed)
		}
		if err != nil {
			return nil, fmt.Errorf("entry %d at offset %d: %w", len(entries), off, err)
		}
		entries = append(entries, e)
		off += EntryTypeSize + n
	}
	return entries, nil
}

func parseRegisterMasterKey(p []byte) (RegisterMasterKey, int, error) {
	var e RegisterMasterKey
	if len(p) < RegisterMasterKeySize {
		return e, 0, fmt.Errorf("register master key: %d bytes, want %d: %w", len(p), RegisterMasterKeySize, ErrMalformed)
	}
	p = p[:RegisterMasterKeySize]
	off := 0
	copy(e.Key[:], p[off:])
	off += keys.PublicKeySize
	alias, err := parseAlias(p[off : off+MaxAliasLen])
	if err != nil {
		return e, 0, fmt.Errorf("register master key: %w", err)
	}
	e.Alias = alias
	off += MaxAliasLen
	copy(e.PassportID[:], p[off:])
	off += HashSize
	e.CreatedAt = Time(binary.BigEndian.Uint32(p[off:]))
	off += 4
	e.RegistrationTimeout = Time(binary.BigEndian.Uint32(p[off:]))
	off += 4
	copy(e.Signature[:], p[off:])

	// Upstream requires created_at < registration_timeout and always writes
	// created_at + 3600; we require exactly that.
	if e.CreatedAt > math.MaxUint32-RegistrationTimeout || e.RegistrationTimeout != e.CreatedAt+RegistrationTimeout {
		return e, 0, fmt.Errorf("register master key: registration_timeout %d is not created_at %d + %d: %w",
			e.RegistrationTimeout, e.CreatedAt, RegistrationTimeout, ErrMalformed)
	}
	if !ed25519.Verify(e.Key[:], p[:registerSignedSize], e.Signature[:]) {
		return e, 0, fmt.Errorf("register master key %s: %w", e.Key, ErrBadSignature)
	}
	return e, RegisterMasterKeySize, nil
}

// parseAlias accepts ASCII followed by NUL padding only, so every alias has
// one encoding (upstream takes the bytes up to the first NUL, lossily).
func parseAlias(b []byte) (string, error) {
	n := len(b)
	if i := bytes.IndexByte(b, 0); i >= 0 {
		n = i
	}
	for i, c := range b {
		if i < n && c >= 0x80 {
			return "", fmt.Errorf("alias: byte 0x%02x is not ASCII: %w", c, ErrMalformed)
		}
		if i >= n && c != 0 {
			return "", fmt.Errorf("alias: non-NUL byte after the NUL padding: %w", ErrMalformed)
		}
	}
	return string(b[:n]), nil
}

func parseDeregisterMasterKey(p []byte) (DeregisterMasterKey, int, error) {
	var e DeregisterMasterKey
	if len(p) < DeregisterMasterKeySize {
		return e, 0, fmt.Errorf("deregister master key: %d bytes, want %d: %w", len(p), DeregisterMasterKeySize, ErrMalformed)
	}
	copy(e.Key[:], p)
	e.CreatedAt = Time(binary.BigEndian.Uint32(p[keys.PublicKeySize:]))
	return e, DeregisterMasterKeySize, nil
}

func parseSetSharedKey(p []byte) (SetSharedKey, int, error) {
	var e SetSharedKey
	if len(p) < SetSharedKeyMinSize {
		return e, 0, fmt.Errorf("set shared key: %d bytes, at least %d: %w", len(p), SetSharedKeyMinSize, ErrMalformed)
	}
	count := int(p[0])
	if count == 0 {
		return e, 0, fmt.Errorf("set shared key: no recipient: %w", ErrMalformed)
	}
	size := SetSharedKeyMinSize + count*SealedRecipientSize
	if len(p) < size {
		return e, 0, fmt.Errorf("set shared key: %d recipients need %d bytes, have %d: %w", count, size, len(p), ErrMalformed)
	}
	copy(e.Key[:], p[1:])
	e.CreatedAt = Time(binary.BigEndian.Uint32(p[1+keys.PublicKeySize:]))
	e.Recipients = make([]SealedRecipient, count)
	for i := range e.Recipients {
		r := p[SetSharedKeyMinSize+i*SealedRecipientSize:]
		copy(e.Recipients[i].ID[:], r)
		copy(e.Recipients[i].Sealed[:], r[RecipientIDSize:])
	}
	return e, size, nil
}
