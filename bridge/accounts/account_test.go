package accounts_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
	"github.com/asmtp/asmtp/mailstore"
)

func TestAccountLifecycle(t *testing.T) {
	e := accountstest.NewEnv(t)
	ctx := context.Background()
	alice, alicePW := e.AddAccount(t, "Alice")
	bob, bobPW, err := e.Reg.CreateAccount(ctx, e.Mail, e.NodeKey, "bob", "chosen by bob")
	if err != nil {
		t.Fatal(err)
	}
	if alice.Name != "alice" || bobPW != "chosen by bob" {
		t.Fatalf("name %q, password %q: want the name folded and the chosen password kept", alice.Name, bobPW)
	}

	list, err := e.Reg.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "alice" || list[1].Name != "bob" || list[0].Passport != alice.Passport {
		t.Fatalf("Accounts = %+v, want alice and bob", list)
	}
	p, err := passport.Import(list[0].Blocks, list[0].CreatedAt)
	if err != nil || p.ID() != alice.Passport {
		t.Fatalf("stored passport: %v, id %v; want alice's", err, p)
	}
	if m := p.MasterKeys(); len(m) != 1 || m[0].Key != alice.Device || m[0].Alias != accounts.PassportAlias {
		t.Errorf("passport master keys %+v, want the device key under alias %q", m, accounts.PassportAlias)
	}
	for _, name := range []string{"alice", "bob"} {
		if ok, err := e.Mail.AccountExists(ctx, name); !ok || err != nil {
			t.Errorf("mailstore account %s: %v, %v", name, ok, err)
		}
	}

	addr := alice.Address("asmtp").String()
	for _, c := range []struct {
		name, login, password string
		want                  string // account, or "" for accounts.ErrBadCredentials
	}{
		{"name", "alice", alicePW, "alice"},
		{"name in upper case", "ALICE", alicePW, "alice"},
		{"address", addr, alicePW, "alice"},
		{"address in upper case", strings.ToUpper(addr), alicePW, "alice"},
		{"chosen password", "bob", bobPW, "bob"},
		{"bob by address", bob.Address("asmtp").String(), bobPW, "bob"},
		{"wrong password", "alice", bobPW, ""},
		{"other's password by address", addr, bobPW, ""},
		{"unknown name", "carol", alicePW, ""},
		{"address at another domain", alice.Passport.String() + "@example.org", alicePW, ""},
		{"unknown address", strings.Repeat("0", 32) + "@asmtp", alicePW, ""},
		{"empty", "", "", ""},
	} {
		got, err := e.Reg.Authenticate(ctx, c.login, c.password, "asmtp")
		if c.want == "" {
			if !errors.Is(err, accounts.ErrBadCredentials) {
				t.Errorf("%s: Authenticate = %q, %v; want accounts.ErrBadCredentials", c.name, got, err)
			}
		} else if got != c.want || err != nil {
			t.Errorf("%s: Authenticate = %q, %v; want %q", c.name, got, err, c.want)
		}
	}

	newPW, err := e.Reg.ResetPassword(ctx, "ALICE", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reg.Authenticate(ctx, "alice", alicePW, "asmtp"); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Errorf("old password after reset: %v, want accounts.ErrBadCredentials", err)
	}
	if got, err := e.Reg.Authenticate(ctx, addr, newPW, "asmtp"); got != "alice" || err != nil {
		t.Errorf("new password after reset: %q, %v", got, err)
	}
	if _, err := e.Reg.ResetPassword(ctx, "carol", ""); !errors.Is(err, accounts.ErrNoAccount) {
		t.Errorf("reset of an unknown account: %v, want accounts.ErrNoAccount", err)
	}
	if _, _, err := e.Reg.CreateAccount(ctx, e.Mail, e.NodeKey, "ALICE", ""); !errors.Is(err, accounts.ErrAccountExists) {
		t.Errorf("second alice: %v, want accounts.ErrAccountExists", err)
	}
}

func TestAccountNames(t *testing.T) {
	for _, c := range []struct {
		in, want string // want "" = invalid
	}{
		{"alice", "alice"},
		{"Alice.Smith-2_x", "alice.smith-2_x"},
		{"0", "0"},
		{strings.Repeat("a", accounts.MaxAccountNameLen), strings.Repeat("a", accounts.MaxAccountNameLen)},
		{strings.Repeat("a", accounts.MaxAccountNameLen+1), ""},
		{"", ""},
		{".alice", ""},
		{"-alice", ""},
		{"alice@asmtp", ""},
		{"al ice", ""},
		{"al\x00ice", ""},
		{"zoë", ""},
	} {
		got, err := accounts.CheckAccountName(c.in)
		if (err == nil) != (c.want != "") || got != c.want {
			t.Errorf("accounts.CheckAccountName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestSecrets(t *testing.T) {
	e := accountstest.NewEnv(t)
	ctx := context.Background()
	a, _ := e.AddAccount(t, "alice")
	s, err := e.Reg.Secrets(ctx, e.NodeKey, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if keys.Public(s.Device) != a.Device {
		t.Error("unsealed device key does not match the account's")
	}
	p, err := passport.Import(a.Blocks, a.CreatedAt)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := p.SharedKey(); s.SharedSecret.Public() != k {
		t.Error("shared secret does not match the passport's shared key")
	}

	wrong := accountstest.NodeKey(t)
	if _, err := e.Reg.Secrets(ctx, wrong, "alice"); !errors.Is(err, accounts.ErrWrongNodeKey) {
		t.Errorf("Secrets with another node key: %v, want accounts.ErrWrongNodeKey", err)
	}
	if _, _, err := e.Reg.CreateAccount(ctx, e.Mail, wrong, "bob", ""); !errors.Is(err, accounts.ErrWrongNodeKey) {
		t.Errorf("CreateAccount with another node key: %v, want accounts.ErrWrongNodeKey", err)
	}
	if err := e.Reg.CheckNodeKey(ctx, wrong); !errors.Is(err, accounts.ErrWrongNodeKey) {
		t.Errorf("CheckNodeKey with another node key: %v, want accounts.ErrWrongNodeKey", err)
	}
	if err := e.Reg.CheckNodeKey(ctx, e.NodeKey); err != nil {
		t.Errorf("CheckNodeKey with the right key: %v", err)
	}
	if _, err := e.Reg.Secrets(ctx, e.NodeKey, "bob"); !errors.Is(err, accounts.ErrNoAccount) {
		t.Errorf("Secrets of an unknown account: %v, want accounts.ErrNoAccount", err)
	}
	// Sealed values are bound to their row: swapping accounts' seeds fails.
	e.AddAccount(t, "carol")
	if _, err := e.Reg.DB().ExecContext(ctx, `UPDATE accounts SET sealed_device_seed =
		(SELECT sealed_device_seed FROM accounts WHERE name = 'carol') WHERE name = 'alice'`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reg.Secrets(ctx, e.NodeKey, "alice"); !errors.Is(err, accounts.ErrWrongNodeKey) {
		t.Errorf("Secrets with carol's sealed seed in alice's row: %v, want an error", err)
	}
}

// failingMail fails to create mailboxes.
type failingMail struct{}

func (failingMail) CreateAccount(context.Context, string) error { return errors.New("disk full") }

func TestCreateAccountFailureLeavesNoAccount(t *testing.T) {
	e := accountstest.NewEnv(t)
	ctx := context.Background()
	if _, _, err := e.Reg.CreateAccount(ctx, failingMail{}, e.NodeKey, "alice", ""); err == nil {
		t.Fatal("CreateAccount succeeded although the mailboxes could not be made")
	}
	if list, err := e.Reg.Accounts(ctx); err != nil || len(list) != 0 {
		t.Fatalf("Accounts = %v, %v; want none", list, err)
	}
	// Mailboxes left by an earlier attempt are taken over.
	if err := e.Mail.CreateAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Reg.CreateAccount(ctx, e.Mail, e.NodeKey, "alice", ""); err != nil {
		t.Fatalf("CreateAccount over leftover mailboxes: %v", err)
	}
	if err := e.Mail.CreateAccount(ctx, "alice"); !errors.Is(err, mailstore.ErrAccountExists) {
		t.Fatalf("mailstore: %v", err)
	}
}
