package bridge

import (
	"context"
	"net"

	"github.com/asmtp/asmtp/bridge/imapserver"
)

// Authenticator checks IMAP (and later SMTP) logins against the registry:
// the user name is the account name or its pseudo-address, in any case,
// and the password the account's bridge password. It reads the registry
// on every login, so new accounts and reset passwords count at once.
type Authenticator struct {
	reg    *Registry
	domain string
}

var _ imapserver.Authenticator = (*Authenticator)(nil)

// NewAuthenticator authenticates against reg; domain is the pseudo-address
// domain.
func NewAuthenticator(reg *Registry, domain string) *Authenticator {
	return &Authenticator{reg: reg, domain: domain}
}

// Authenticate implements imapserver.Authenticator: it returns the account
// name (the mailstore account) or ErrBadCredentials.
func (a *Authenticator) Authenticate(ctx context.Context, username, password string, _ net.Addr) (string, error) {
	return a.reg.Authenticate(ctx, username, password, a.domain)
}
