// Package auth is what the bridge's three servers (bridge/imapserver,
// bridge/smtpserver and bridge/carddav) share about who a client is: the
// Authenticator interface they check logins with, ErrBadCredentials, a
// TokenAuthenticator for tests and benchmarks, and the self-signed TLS
// certificate they all serve (LoadOrCreateCertificate).
//
// It sits below the servers so that none of them imports another: the
// bridge's real Authenticator, over the account registry, is
// accounts.Authenticator, and one value of it is given to all three so
// their logins share its limits.
package auth
