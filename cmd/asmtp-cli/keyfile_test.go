package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
)

// The key file keeps the device seed and shared secret sealed under the
// passphrase: they open with it, never appear in clear, and a wrong
// passphrase or a changed file is an error rather than another identity.
func TestKeyFile(t *testing.T) {
	var s secrets
	if _, err := rand.Read(s.seed[:]); err != nil {
		t.Fatal(err)
	}
	own, shared, err := passport.Create(rand.Reader, time.Now(), "laptop", s.device(), keys.Seed{1})
	if err != nil {
		t.Fatal(err)
	}
	s.shared = shared
	f, err := sealKeyFile(rand.Reader, "pass", "laptop", s, own)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), keyFileName)
	if err := writeKeyFile(path, f); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range [][]byte{s.seed[:], s.shared[:], s.device().Seed()} {
		if bytes.Contains(raw, secret) || strings.Contains(string(raw), keys.PublicKey(secret).String()) ||
			strings.Contains(string(raw), base64.StdEncoding.EncodeToString(secret)[:40]) {
			t.Fatal("a secret is in the key file in clear")
		}
	}
	read, err := readKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}

	flipped := read
	flipped.Sealed = append([]byte{}, read.Sealed...)
	flipped.Sealed[0] ^= 1
	otherKey := read
	otherKey.DeviceKey = keys.Public(newNodeKey(t)).String()
	tests := []struct {
		name string
		f    keyFile
		pass string
		err  error // nil: opens to s
	}{
		{"right passphrase", read, "pass", nil},
		{"wrong passphrase", read, "Pass", errWrongPassphrase},
		{"changed ciphertext", flipped, "pass", errWrongPassphrase},
		{"another device key", otherKey, "pass", errWrongPassphrase},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.f.open(tc.pass)
			if !errors.Is(err, tc.err) {
				t.Fatalf("open: %v, want %v", err, tc.err)
			}
			if tc.err == nil && got != s {
				t.Fatal("opened other secrets")
			}
		})
	}
	p, err := read.ownPassport(time.Now())
	if err != nil || p.ID() != own.ID() {
		t.Fatalf("own passport %v, %v", p, err)
	}
}
