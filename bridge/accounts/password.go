package accounts

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/blake2b"
)

// Bridge passwords (the IMAP/SMTP login secret) are stored as PHC-style
// strings naming their scheme, so each row says how to check it:
//
//	$blake2b$<salt>$<hash>                        generated 128-bit tokens
//	$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>   passwords a person chose
//
// A random 128-bit token cannot be guessed, so a fast keyed hash is enough
// and logins stay cheap. A chosen password may be weak, so it gets
// Argon2id with OWASP's minimum parameters (19 MiB, 2 passes, 1 lane):
// a mail client opens several connections at once and each login pays the
// memory, so the parameters are kept at the recommended floor.
const (
	tokenBytes        = 16 // 128 bits
	saltBytes         = 16
	hashBytes         = 32
	MinPasswordLength = 8 // for a chosen --bridge-password

	schemeToken    = "blake2b"
	schemeArgon2id = "argon2id"
	argonMemoryKiB = 19 * 1024
	argonPasses    = 2
	argonLanes     = 1
	// Bounds on stored Argon2id parameters, so a corrupt row cannot make a
	// login allocate gigabytes.
	maxArgonMemoryKiB = 1 << 20
	maxArgonPasses    = 16
)

var (
	tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)
	b64           = base64.RawStdEncoding
	// errBadHash is a stored hash that does not parse.
	errBadHash = errors.New("malformed password hash")
)

// NewToken returns a fresh bridge password: 128 random bits as 26
// lower-case base32 characters (letters and digits 2-7, easy to type).
func NewToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new bridge password: %w", err)
	}
	return strings.ToLower(tokenEncoding.EncodeToString(b)), nil
}

// hashToken hashes a generated token (fast, keyed by a random salt).
func hashToken(token string) (string, error) {
	salt, err := newSalt()
	if err != nil {
		return "", err
	}
	return "$" + schemeToken + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(tokenDigest(salt, token)), nil
}

// hashChosen hashes a password a person chose (Argon2id).
func hashChosen(password string) (string, error) {
	if len(password) < MinPasswordLength {
		return "", fmt.Errorf("bridge password: %d characters; use at least %d, or let a random one be generated", len(password), MinPasswordLength)
	}
	salt, err := newSalt()
	if err != nil {
		return "", err
	}
	sum := argon2.IDKey([]byte(password), salt, argonPasses, argonMemoryKiB, argonLanes, hashBytes)
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", schemeArgon2id, argon2.Version, argonMemoryKiB, argonPasses, argonLanes,
		b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

func newSalt() ([]byte, error) {
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("password salt: %w", err)
	}
	return salt, nil
}

func tokenDigest(salt []byte, token string) []byte {
	h, err := blake2b.New256(salt)
	if err != nil {
		panic("bridge: blake2b rejected a 16-byte key: " + err.Error()) // sizes are constants
	}
	h.Write([]byte(token))
	return h.Sum(nil)
}

// checkPassword is verifyPassword at the same cost for every login: a
// generated token's fast check is followed by an Argon2id evaluation of
// dummyHash, with the parameters chosen passwords get, so neither a token
// account nor an unknown name (checked against dummyHash) answers faster
// than an account with a chosen password, and the time of an answer does
// not tell which account names exist.
func checkPassword(stored, password string) (bool, error) {
	ok, err := verifyPassword(stored, password)
	if !strings.HasPrefix(stored, "$"+schemeArgon2id+"$") {
		verifyPassword(dummyHash, password)
	}
	return ok, err
}

// verifyPassword reports whether password matches the stored hash. The
// final comparison is constant time; a malformed hash is an error.
func verifyPassword(stored, password string) (bool, error) {
	parts := strings.Split(stored, "$")
	var salt, want, got []byte
	var err error
	switch {
	case len(parts) == 4 && parts[0] == "" && parts[1] == schemeToken:
		if salt, want, err = decodeSaltHash(parts[2], parts[3]); err != nil {
			return false, err
		}
		got = tokenDigest(salt, password)
	case len(parts) == 6 && parts[0] == "" && parts[1] == schemeArgon2id:
		var version, memory, passes, lanes int
		if _, err := fmt.Sscanf(parts[2]+" "+parts[3], "v=%d m=%d,t=%d,p=%d", &version, &memory, &passes, &lanes); err != nil ||
			version != argon2.Version || memory < 8 || memory > maxArgonMemoryKiB || passes < 1 || passes > maxArgonPasses || lanes < 1 || lanes > 255 {
			return false, fmt.Errorf("argon2id parameters %q: %w", parts[2]+"$"+parts[3], errBadHash)
		}
		if salt, want, err = decodeSaltHash(parts[4], parts[5]); err != nil {
			return false, err
		}
		got = argon2.IDKey([]byte(password), salt, uint32(passes), uint32(memory), uint8(lanes), uint32(len(want)))
	default:
		return false, fmt.Errorf("unknown password scheme: %w", errBadHash)
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func decodeSaltHash(salt, hash string) ([]byte, []byte, error) {
	s, err1 := b64.DecodeString(salt)
	h, err2 := b64.DecodeString(hash)
	if err1 != nil || err2 != nil || len(s) < 8 || len(h) < 16 {
		return nil, nil, errBadHash
	}
	return s, h, nil
}
