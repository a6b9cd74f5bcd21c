package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
)

// Authenticator checks a client's credentials and names the mailstore
// account they open. It is called for LOGIN and AUTHENTICATE PLAIN; remote is
// the client's address. It should return ErrBadCredentials for wrong
// credentials, a *loginlimit.BusyError for an attempt it refused to check,
// and another error only for failures of its own. Limiting attempts is its
// job: TokenAuthenticator's random tokens cannot be guessed, a chosen
// password needs a loginlimit.Limiter.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string, remote net.Addr) (account string, err error)
}

// ErrBadCredentials is what an Authenticator returns for a wrong username or
// password.
var ErrBadCredentials = errors.New("auth: bad credentials")

// TokenAuthenticator accepts each username with its random token (a bridge
// password) and opens the account of the same name. Comparison is constant
// time over SHA-256 digests, so neither the token nor its length leaks; a
// random token needs no slow hash.
type TokenAuthenticator struct {
	tokens map[string][sha256.Size]byte
}

// NewTokenAuthenticator takes username → token.
func NewTokenAuthenticator(tokens map[string]string) *TokenAuthenticator {
	a := &TokenAuthenticator{tokens: make(map[string][sha256.Size]byte, len(tokens))}
	for user, token := range tokens {
		a.tokens[user] = sha256.Sum256([]byte(token))
	}
	return a
}

// Authenticate implements Authenticator.
func (a *TokenAuthenticator) Authenticate(_ context.Context, username, password string, _ net.Addr) (string, error) {
	want, known := a.tokens[username]
	got := sha256.Sum256([]byte(password))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !known {
		return "", ErrBadCredentials
	}
	return username, nil
}
