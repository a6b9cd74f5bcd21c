package bridge

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/asmtp/asmtp/mailstore"
)

// testEnv is a registry and mailstore in a fresh data directory, and the
// node key their secrets are sealed with.
type testEnv struct {
	dir     string
	reg     *Registry
	mail    *mailstore.DB
	nodeKey ed25519.PrivateKey
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	e := &testEnv{dir: t.TempDir(), nodeKey: newNodeKey(t)}
	e.reg, e.mail = openStores(t, e.dir)
	return e
}

func openStores(t testing.TB, dir string) (*Registry, *mailstore.DB) {
	t.Helper()
	ctx := context.Background()
	reg, err := OpenRegistry(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	mail, err := OpenMailstore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mail.Close() })
	return reg, mail
}

// addAccount creates an account with a generated password.
func (e *testEnv) addAccount(t testing.TB, name string) (Account, string) {
	t.Helper()
	a, pw, err := e.reg.CreateAccount(context.Background(), e.mail, e.nodeKey, name, "")
	if err != nil {
		t.Fatal(err)
	}
	return a, pw
}

func TestChangesSeesOtherConnections(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	changes := e.reg.Changes(ctx)
	other, _ := openStores(t, e.dir) // as asmtpd-cli would
	select {
	case <-changes:
		t.Fatal("a change before any commit")
	case <-time.After(2 * ChangePollInterval):
	}
	if _, _, err := other.CreateAccount(ctx, e.mail, e.nodeKey, "alice", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-time.After(10 * ChangePollInterval):
		t.Fatal("no change seen after another connection committed")
	}
	cancel()
	for range changes { // drains, and ends once the channel is closed
	}
}
