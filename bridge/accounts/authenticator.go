package accounts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/bridge/loginlimit"
)

// Authenticator checks IMAP and SMTP logins against the registry: the user
// name is the account name or its pseudo-address, in any case, and the
// password the account's bridge password. It reads the registry on every
// login, so new accounts and reset passwords count at once.
//
// One Authenticator serves both servers, and every check goes through its
// loginlimit.Limiter: a bounded number of Argon2id evaluations at once,
// and guesses at an account, or from a source, spaced out after a few
// failures (see package loginlimit). An unknown name is limited and costs
// like a known one: it is keyed by the name as written, and checked against
// a dummy hash.
type Authenticator struct {
	reg    *Registry
	domain string
	limit  *loginlimit.Limiter
}

var _ auth.Authenticator = (*Authenticator)(nil)

// NewAuthenticator authenticates against reg; domain is the pseudo-address
// domain. limits configure its loginlimit.Limiter.
func NewAuthenticator(reg *Registry, domain string, limits loginlimit.Options) *Authenticator {
	return &Authenticator{reg: reg, domain: domain, limit: loginlimit.New(limits)}
}

// Authenticate implements auth.Authenticator: it returns the account
// name (the mailstore account), ErrBadCredentials, or a
// *loginlimit.BusyError when the attempt was refused unchecked.
func (a *Authenticator) Authenticate(ctx context.Context, username, password string, remote net.Addr) (string, error) {
	name, hash, err := a.reg.loginHash(ctx, username, a.domain)
	if err != nil {
		return "", err
	}
	key := name
	if name == "" {
		// "?" cannot start an account name; the length bound keeps the
		// Limiter's memory bounded whatever a client sends.
		key = "?" + strings.ToLower(username[:min(len(username), 320)])
	}
	ok, err := a.limit.Check(ctx, loginlimit.Source(remote), key, func() (bool, error) {
		return checkPassword(hash, password)
	})
	var busy *loginlimit.BusyError
	switch {
	case errors.As(err, &busy):
		return "", err
	case err != nil:
		return "", fmt.Errorf("authenticate %s: %w", name, err)
	case !ok || name == "":
		return "", ErrBadCredentials
	}
	return name, nil
}
