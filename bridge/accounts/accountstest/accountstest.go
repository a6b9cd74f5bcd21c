// Package accountstest sets up what tests of the bridge's packages start
// from: a registry and a mailstore in a fresh data directory with the node
// key their secrets are sealed with, accounts in them, and passports of
// people outside the bridge to add as contacts.
package accountstest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/mailstore"
)

// Env is a registry and mailstore in a fresh data directory, and the node
// key their secrets are sealed with.
type Env struct {
	Dir     string
	Reg     *accounts.Registry
	Mail    *mailstore.DB
	NodeKey ed25519.PrivateKey
}

// NewEnv opens both stores in a temporary directory, closed when the test
// ends.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	e := &Env{Dir: t.TempDir(), NodeKey: NodeKey(t)}
	e.Reg, e.Mail = OpenStores(t, e.Dir)
	return e
}

// OpenStores opens the registry and the mailstore in dir, as asmtpd and
// asmtpd-cli do, closed when the test ends.
func OpenStores(t testing.TB, dir string) (*accounts.Registry, *mailstore.DB) {
	t.Helper()
	ctx := context.Background()
	reg, err := accounts.OpenRegistry(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	mail, err := accounts.OpenMailstore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mail.Close() })
	return reg, mail
}

// AddAccount creates an account with a generated password.
func (e *Env) AddAccount(t testing.TB, name string) (accounts.Account, string) {
	t.Helper()
	a, pw, err := e.Reg.CreateAccount(context.Background(), e.Mail, e.NodeKey, name, "")
	if err != nil {
		t.Fatal(err)
	}
	return a, pw
}

// NodeKey is a fresh Ed25519 key.
func NodeKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Outsider is someone else's passport, with what its owner needs to
// update it.
type Outsider struct {
	Passport *passport.Passport
	Device   ed25519.PrivateKey
	PSK      keys.Seed
}

// NewOutsider makes a passport with a fresh device key.
func NewOutsider(t testing.TB) *Outsider {
	t.Helper()
	o := &Outsider{Device: NodeKey(t)}
	rand.Read(o.PSK[:])
	var err error
	if o.Passport, _, err = passport.Create(rand.Reader, time.Now(), "phone", o.Device, o.PSK); err != nil {
		t.Fatal(err)
	}
	return o
}

// SharedKey is the outsider's current shared key.
func (o *Outsider) SharedKey() keys.SharedKey {
	k, _ := o.Passport.SharedKey()
	return k
}

// Rotate publishes a new shared key in a new block.
func (o *Outsider) Rotate(t testing.TB) {
	t.Helper()
	b := o.Passport.Next()
	if _, err := b.RotateSharedKey(rand.Reader, o.PSK); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finalize(o.Device, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// OwnSharedKey is the shared key in an account's own passport.
func OwnSharedKey(t testing.TB, a accounts.Account) keys.SharedKey {
	t.Helper()
	p, err := passport.Import(a.Blocks, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k, _ := p.SharedKey()
	return k
}

// Logger is the logger tests give the servers and workers: silent, or at
// debug level on stderr when ASMTP_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("ASMTP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
