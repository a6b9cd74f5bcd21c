package accounts_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
	"github.com/asmtp/asmtp/mailstore"
)

// pausingMail creates the mailboxes, says so on stdout, and never returns:
// the process is killed between the mailboxes and the account row.
type pausingMail struct{ db *mailstore.DB }

func (m pausingMail) CreateAccount(ctx context.Context, name string) error {
	if err := m.db.CreateAccount(ctx, name); err != nil {
		return err
	}
	fmt.Println("mailboxes created")
	select {}
}

// TestCrashHelper is the process TestCreateAccountKilledMidway kills.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv("BRIDGE_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestCreateAccountKilledMidway")
	}
	seed, err := hex.DecodeString(os.Getenv("BRIDGE_CRASH_SEED"))
	if err != nil {
		t.Fatal(err)
	}
	reg, mail := accountstest.OpenStores(t, dir)
	_, _, err = reg.CreateAccount(context.Background(), pausingMail{mail}, ed25519.NewKeyFromSeed(seed), "alice", "")
	t.Fatalf("CreateAccount returned: %v", err)
}

// TestCreateAccountKilledMidway kills asmtpd-cli's work with SIGKILL after
// the mailboxes are made and before the account row commits: no account
// may exist afterwards, and adding it again must work.
func TestCreateAccountKilledMidway(t *testing.T) {
	dir := t.TempDir()
	key := accountstest.NodeKey(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
	cmd.Env = append(os.Environ(), "BRIDGE_CRASH_DIR="+dir, "BRIDGE_CRASH_SEED="+hex.EncodeToString(key.Seed()))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
wait:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatal("the helper exited before creating the mailboxes")
			}
			if line == "mailboxes created" {
				break wait
			}
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the helper did not create the mailboxes within 30 s")
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	ctx := context.Background()
	reg, mail := accountstest.OpenStores(t, dir)
	if list, err := reg.Accounts(ctx); err != nil || len(list) != 0 {
		t.Fatalf("after the crash: Accounts = %v, %v; want none", list, err)
	}
	if _, err := reg.Authenticate(ctx, "alice", "", "asmtp"); err != accounts.ErrBadCredentials {
		t.Fatalf("after the crash: Authenticate = %v, want accounts.ErrBadCredentials", err)
	}
	if ok, _ := mail.AccountExists(ctx, "alice"); !ok {
		t.Fatal("the helper was killed before it made the mailboxes: the test did not test the crash it is about")
	}
	if _, _, err := reg.CreateAccount(ctx, mail, key, "alice", ""); err != nil {
		t.Fatalf("adding the account again after the crash: %v", err)
	}
}
