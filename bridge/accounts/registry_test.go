package accounts_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
)

func TestChangesSeesOtherConnections(t *testing.T) {
	e := accountstest.NewEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	changes := e.Reg.Changes(ctx)
	other, _ := accountstest.OpenStores(t, e.Dir) // as asmtpd-cli would
	select {
	case <-changes:
		t.Fatal("a change before any commit")
	case <-time.After(2 * accounts.ChangePollInterval):
	}
	if _, _, err := other.CreateAccount(ctx, e.Mail, e.NodeKey, "alice", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-time.After(10 * accounts.ChangePollInterval):
		t.Fatal("no change seen after another connection committed")
	}
	cancel()
	for range changes { // drains, and ends once the channel is closed
	}
}

func TestDataFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bridge")
	if err := os.Mkdir(dir, 0o755); err != nil { // made by someone else, too open
		t.Fatal(err)
	}
	e := &accountstest.Env{Dir: dir, NodeKey: accountstest.NodeKey(t)}
	e.Reg, e.Mail = accountstest.OpenStores(t, dir)
	e.AddAccount(t, "alice") // writes both databases, so their WAL files exist
	checkModes(t, dir)
}

// checkModes checks that dir is 0700 and every file in it 0600.
func checkModes(t testing.TB, dir string) {
	t.Helper()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v, %v; want mode 0700", dir, fi.Mode(), err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range entries {
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, de.Name())
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", de.Name(), fi.Mode().Perm())
		}
	}
	for _, want := range []string{accounts.RegistryFile, accounts.RegistryFile + "-wal", accounts.MailFile, accounts.MailFile + "-wal"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("no %s among %v", want, names)
		}
	}
}
