package accounts

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestNewToken(t *testing.T) {
	format := regexp.MustCompile(`^[a-z2-7]{26}$`) // 128 bits of base32
	seen := make(map[string]bool)
	for range 100 {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !format.MatchString(tok) {
			t.Fatalf("token %q is not 26 lower-case base32 characters", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q drawn twice", tok)
		}
		seen[tok] = true
	}
}

func TestPasswordHashes(t *testing.T) {
	token, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tokenHash, err := hashToken(token)
	if err != nil {
		t.Fatal(err)
	}
	const chosen = "correct horse battery"
	chosenHash, err := hashChosen(chosen)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tokenHash, "$blake2b$") || !strings.HasPrefix(chosenHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("schemes not recorded: %q, %q", tokenHash, chosenHash)
	}
	if again, _ := hashToken(token); again == tokenHash {
		t.Error("two hashes of one token are equal: no salt")
	}
	for _, c := range []struct {
		name, hash, password string
		want                 bool
	}{
		{"token", tokenHash, token, true},
		{"token, upper case", tokenHash, strings.ToUpper(token), false},
		{"token prefix", tokenHash, token[:25], false},
		{"token plus a character", tokenHash, token + "a", false},
		{"empty for token", tokenHash, "", false},
		{"chosen", chosenHash, chosen, true},
		{"chosen prefix", chosenHash, chosen[:len(chosen)-1], false},
		{"chosen against token hash", tokenHash, chosen, false},
		{"token against chosen hash", chosenHash, token, false},
		{"dummy hash", dummyHash, "", false},
	} {
		got, err := verifyPassword(c.hash, c.password)
		if err != nil || got != c.want {
			t.Errorf("%s: verify = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestVerifyRejectsMalformedHashes(t *testing.T) {
	for _, h := range []string{
		"",
		"plain text",
		"$md5$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$blake2b$c2FsdHNhbHQ",
		"$blake2b$!!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA", // 4 GiB
		"$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
	} {
		if ok, err := verifyPassword(h, "password"); ok || !errors.Is(err, errBadHash) {
			t.Errorf("verifyPassword(%q) = %v, %v; want errBadHash", h, ok, err)
		}
	}
}

func TestChosenPasswordMinimumLength(t *testing.T) {
	if _, err := hashChosen(strings.Repeat("x", MinPasswordLength-1)); err == nil {
		t.Errorf("a %d-character password was accepted", MinPasswordLength-1)
	}
	if _, err := hashChosen(strings.Repeat("x", MinPasswordLength)); err != nil {
		t.Errorf("a %d-character password was refused: %v", MinPasswordLength, err)
	}
}

// The comparison is constant time by construction: both sides are
// fixed-length digests compared with subtle.ConstantTimeCompare, so what
// is compared never depends on the password's length or content. This
// checks the first half: digest lengths do not follow the password.
func TestDigestsHaveFixedLength(t *testing.T) {
	salt := make([]byte, saltBytes)
	for _, pw := range []string{"", "a", strings.Repeat("b", 1000)} {
		if n := len(tokenDigest(salt, pw)); n != hashBytes {
			t.Errorf("digest of a %d-byte password has %d bytes, want %d", len(pw), n, hashBytes)
		}
	}
}
