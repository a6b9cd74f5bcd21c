package auth

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTokenAuthenticator(t *testing.T) {
	a := NewTokenAuthenticator(map[string]string{"alice": "tok-a", "bob": "tok-b"})
	tests := []struct {
		user, pass, account string
		ok                  bool
	}{
		{"alice", "tok-a", "alice", true},
		{"bob", "tok-b", "bob", true},
		{"alice", "tok-b", "", false},
		{"alice", "tok-a ", "", false},
		{"alice", "", "", false},
		{"carol", "tok-a", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		account, err := a.Authenticate(context.Background(), tt.user, tt.pass, nil)
		if tt.ok != (err == nil) || account != tt.account || (err != nil && !errors.Is(err, ErrBadCredentials)) {
			t.Errorf("%q/%q: account %q, err %v", tt.user, tt.pass, account, err)
		}
	}
	// A token check costs microseconds, not a password hash's milliseconds.
	start := time.Now()
	for range 10000 {
		a.Authenticate(context.Background(), "alice", "wrong", nil)
	}
	if per := time.Since(start) / 10000; per > 100*time.Microsecond {
		t.Errorf("token check takes %v per login", per)
	}
}
