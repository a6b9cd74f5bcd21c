package main

import (
	"crypto/cipher"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
)

// The device's identity at rest (the key file).
//
// Upstream asmtp-cli kept its device seed in clear. Here the seed, and the
// passport's shared secret unsealed with it, are encrypted under a key
// derived from the passphrase, the same passphrase that seals the shared
// secret inside the passport. scrypt rather than keynesis'
// EntropyWithPassword (1e6 PBKDF2 rounds, no check): scrypt is salted and
// memory-hard at a tenth of the time, and the AEAD tag makes a wrong
// passphrase an error instead of silently another identity. Caching the
// shared secret spares the 1e6-round passphrase seed on every run; it is
// re-derived only when the passport's shared key changes.
const (
	keyFileFormat = "asmtp-cli device key v1"

	scryptN = 1 << 15 // about 150 ms and 32 MiB
	scryptR = 8
	scryptP = 1
	// maxScryptN bounds what a key file may ask for (1 GiB of memory).
	maxScryptN = 1 << 20

	saltSize = 16
)

// errWrongPassphrase is returned when the key file does not open.
var errWrongPassphrase = errors.New("wrong passphrase (the key file does not decrypt)")

// keyFile is the JSON key file. Everything but sealed is public.
type keyFile struct {
	Format    string    `json:"format"`
	Alias     string    `json:"alias"`
	DeviceKey string    `json:"device_key"` // Ed25519 public key, hex
	Passport  []byte    `json:"passport"`   // PassportBlocks of the own passport
	KDF       kdfParams `json:"kdf"`
	Nonce     []byte    `json:"nonce"`  // XChaCha20-Poly1305
	Sealed    []byte    `json:"sealed"` // device seed ‖ shared secret
}

type kdfParams struct {
	Name string `json:"name"` // "scrypt"
	N    int    `json:"n"`
	R    int    `json:"r"`
	P    int    `json:"p"`
	Salt []byte `json:"salt"`
}

// secrets are what the key file protects.
type secrets struct {
	seed   keys.Seed         // upstream's device seed; the device key is seed.Ed25519()
	shared keys.SharedSecret // the passport's current shared secret
}

func (s secrets) device() ed25519.PrivateKey { return s.seed.Ed25519() }

// sealKeyFile encrypts s under passphrase. The salt and nonce come from rand.
func sealKeyFile(rand io.Reader, passphrase, alias string, s secrets, own *passport.Passport) (keyFile, error) {
	f := keyFile{
		Format:    keyFileFormat,
		Alias:     alias,
		DeviceKey: keys.Public(s.device()).String(),
		Passport:  own.Export(),
		KDF:       kdfParams{Name: "scrypt", N: scryptN, R: scryptR, P: scryptP, Salt: make([]byte, saltSize)},
		Nonce:     make([]byte, chacha20poly1305.NonceSizeX),
	}
	if _, err := io.ReadFull(rand, f.KDF.Salt); err != nil {
		return f, fmt.Errorf("seal key file: %w", err)
	}
	if _, err := io.ReadFull(rand, f.Nonce); err != nil {
		return f, fmt.Errorf("seal key file: %w", err)
	}
	aead, err := f.cipher(passphrase)
	if err != nil {
		return f, err
	}
	plain := append(append([]byte{}, s.seed[:]...), s.shared[:]...)
	f.Sealed = aead.Seal(nil, f.Nonce, plain, f.additionalData())
	return f, nil
}

// open decrypts the secrets and checks they match the public fields.
func (f keyFile) open(passphrase string) (secrets, error) {
	var s secrets
	aead, err := f.cipher(passphrase)
	if err != nil {
		return s, err
	}
	plain, err := aead.Open(nil, f.Nonce, f.Sealed, f.additionalData())
	if err != nil {
		return s, errWrongPassphrase
	}
	if len(plain) != keys.SeedSize+keys.SharedSecretSize {
		return s, fmt.Errorf("key file: %d secret bytes, want %d", len(plain), keys.SeedSize+keys.SharedSecretSize)
	}
	copy(s.seed[:], plain)
	if s.shared, err = keys.ParseSharedSecret(plain[keys.SeedSize:]); err != nil {
		return s, fmt.Errorf("key file: %w", err)
	}
	if got := keys.Public(s.device()).String(); got != f.DeviceKey {
		return s, fmt.Errorf("key file: the sealed seed gives device key %s, the file says %s", got, f.DeviceKey)
	}
	return s, nil
}

// additionalData binds the sealed secrets to the format and device key.
func (f keyFile) additionalData() []byte {
	return []byte(f.Format + "\x00" + f.DeviceKey)
}

// cipher derives the key file's AEAD from the passphrase.
func (f keyFile) cipher(passphrase string) (cipher.AEAD, error) {
	k := f.KDF
	if k.Name != "scrypt" || k.N < 2 || k.N > maxScryptN || k.N&(k.N-1) != 0 || k.R < 1 || k.R > 32 || k.P < 1 || k.P > 16 || len(k.Salt) < saltSize {
		return nil, fmt.Errorf("key file: unsupported key derivation %s N=%d r=%d p=%d", k.Name, k.N, k.R, k.P)
	}
	if len(f.Nonce) != chacha20poly1305.NonceSizeX {
		return nil, fmt.Errorf("key file: %d-byte nonce, want %d", len(f.Nonce), chacha20poly1305.NonceSizeX)
	}
	key, err := scrypt.Key([]byte(passphrase), k.Salt, k.N, k.R, k.P, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	return chacha20poly1305.NewX(key)
}

// ownPassport parses the passport stored in the key file.
func (f keyFile) ownPassport(now time.Time) (*passport.Passport, error) {
	p, err := passport.Import(f.Passport, now)
	if err != nil {
		return nil, fmt.Errorf("key file: own passport: %w", err)
	}
	return p, nil
}

// readKeyFile reads the key file; os.ErrNotExist (wrapped) means first run.
func readKeyFile(path string) (keyFile, error) {
	var f keyFile
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("read key file: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("read key file %s: %w", path, err)
	}
	if f.Format != keyFileFormat {
		return f, fmt.Errorf("read key file %s: format %q, want %q", path, f.Format, keyFileFormat)
	}
	return f, nil
}

// writeKeyFile replaces the key file atomically, readable by the user only.
func writeKeyFile(path string, f keyFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".asmtp-cli-key-*") // mode 0600
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	return nil
}
