package accounts

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
)

func TestSealer(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	sealed, err := s.seal("alice", fieldDeviceSeed, secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value contains the secret")
	}
	again, _ := s.seal("alice", fieldDeviceSeed, secret)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of one value are equal: nonce reused")
	}
	same, err := newSealer(key) // derived again, as after a restart
	if err != nil {
		t.Fatal(err)
	}
	if got, err := same.open("alice", fieldDeviceSeed, sealed); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open = %x, %v; want the secret", got, err)
	}

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	other, err := newSealer(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for _, c := range []struct {
		name, account, field string
		s                    *sealer
		sealed               []byte
	}{
		{"other node key", "alice", fieldDeviceSeed, other, sealed},
		{"other account", "bob", fieldDeviceSeed, s, sealed},
		{"other field", "alice", fieldPassportSeed, s, sealed},
		{"tampered", "alice", fieldDeviceSeed, s, tampered},
	} {
		if _, err := c.s.open(c.account, c.field, c.sealed); !errors.Is(err, ErrWrongNodeKey) {
			t.Errorf("%s: open err = %v, want ErrWrongNodeKey", c.name, err)
		}
	}
	if _, err := s.open("alice", fieldDeviceSeed, sealed[:20]); err == nil {
		t.Error("a truncated value opened")
	}
}
