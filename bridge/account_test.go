package bridge

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/mailstore"
)

func TestAccountLifecycle(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	alice, alicePW := e.addAccount(t, "Alice")
	bob, bobPW, err := e.reg.CreateAccount(ctx, e.mail, e.nodeKey, "bob", "chosen by bob")
	if err != nil {
		t.Fatal(err)
	}
	if alice.Name != "alice" || bobPW != "chosen by bob" {
		t.Fatalf("name %q, password %q: want the name folded and the chosen password kept", alice.Name, bobPW)
	}

	list, err := e.reg.Accounts(ctx)
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
	if m := p.MasterKeys(); len(m) != 1 || m[0].Key != alice.Device || m[0].Alias != passportAlias {
		t.Errorf("passport master keys %+v, want the device key under alias %q", m, passportAlias)
	}
	for _, name := range []string{"alice", "bob"} {
		if ok, err := e.mail.AccountExists(ctx, name); !ok || err != nil {
			t.Errorf("mailstore account %s: %v, %v", name, ok, err)
		}
	}

	addr := alice.Address("asmtp").String()
	for _, c := range []struct {
		name, login, password string
		want                  string // account, or "" for ErrBadCredentials
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
		got, err := e.reg.Authenticate(ctx, c.login, c.password, "asmtp")
		if c.want == "" {
			if !errors.Is(err, ErrBadCredentials) {
				t.Errorf("%s: Authenticate = %q, %v; want ErrBadCredentials", c.name, got, err)
			}
		} else if got != c.want || err != nil {
			t.Errorf("%s: Authenticate = %q, %v; want %q", c.name, got, err, c.want)
		}
	}

	newPW, err := e.reg.ResetPassword(ctx, "ALICE", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Authenticate(ctx, "alice", alicePW, "asmtp"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password after reset: %v, want ErrBadCredentials", err)
	}
	if got, err := e.reg.Authenticate(ctx, addr, newPW, "asmtp"); got != "alice" || err != nil {
		t.Errorf("new password after reset: %q, %v", got, err)
	}
	if _, err := e.reg.ResetPassword(ctx, "carol", ""); !errors.Is(err, ErrNoAccount) {
		t.Errorf("reset of an unknown account: %v, want ErrNoAccount", err)
	}
	if _, _, err := e.reg.CreateAccount(ctx, e.mail, e.nodeKey, "ALICE", ""); !errors.Is(err, ErrAccountExists) {
		t.Errorf("second alice: %v, want ErrAccountExists", err)
	}
}

func TestAccountNames(t *testing.T) {
	for _, c := range []struct {
		in, want string // want "" = invalid
	}{
		{"alice", "alice"},
		{"Alice.Smith-2_x", "alice.smith-2_x"},
		{"0", "0"},
		{strings.Repeat("a", MaxAccountNameLen), strings.Repeat("a", MaxAccountNameLen)},
		{strings.Repeat("a", MaxAccountNameLen+1), ""},
		{"", ""},
		{".alice", ""},
		{"-alice", ""},
		{"alice@asmtp", ""},
		{"al ice", ""},
		{"al\x00ice", ""},
		{"zoë", ""},
	} {
		got, err := CheckAccountName(c.in)
		if (err == nil) != (c.want != "") || got != c.want {
			t.Errorf("CheckAccountName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestSecrets(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	a, _ := e.addAccount(t, "alice")
	s, err := e.reg.Secrets(ctx, e.nodeKey, "alice")
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

	wrong := newNodeKey(t)
	if _, err := e.reg.Secrets(ctx, wrong, "alice"); !errors.Is(err, ErrWrongNodeKey) {
		t.Errorf("Secrets with another node key: %v, want ErrWrongNodeKey", err)
	}
	if _, _, err := e.reg.CreateAccount(ctx, e.mail, wrong, "bob", ""); !errors.Is(err, ErrWrongNodeKey) {
		t.Errorf("CreateAccount with another node key: %v, want ErrWrongNodeKey", err)
	}
	if err := e.reg.CheckNodeKey(ctx, wrong); !errors.Is(err, ErrWrongNodeKey) {
		t.Errorf("CheckNodeKey with another node key: %v, want ErrWrongNodeKey", err)
	}
	if err := e.reg.CheckNodeKey(ctx, e.nodeKey); err != nil {
		t.Errorf("CheckNodeKey with the right key: %v", err)
	}
	if _, err := e.reg.Secrets(ctx, e.nodeKey, "bob"); !errors.Is(err, ErrNoAccount) {
		t.Errorf("Secrets of an unknown account: %v, want ErrNoAccount", err)
	}
	// Sealed values are bound to their row: swapping accounts' seeds fails.
	e.addAccount(t, "carol")
	if _, err := e.reg.db.ExecContext(ctx, `UPDATE accounts SET sealed_device_seed =
		(SELECT sealed_device_seed FROM accounts WHERE name = 'carol') WHERE name = 'alice'`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Secrets(ctx, e.nodeKey, "alice"); !errors.Is(err, ErrWrongNodeKey) {
		t.Errorf("Secrets with carol's sealed seed in alice's row: %v, want an error", err)
	}
}

// failingMail fails to create mailboxes.
type failingMail struct{}

func (failingMail) CreateAccount(context.Context, string) error { return errors.New("disk full") }

func TestCreateAccountFailureLeavesNoAccount(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	if _, _, err := e.reg.CreateAccount(ctx, failingMail{}, e.nodeKey, "alice", ""); err == nil {
		t.Fatal("CreateAccount succeeded although the mailboxes could not be made")
	}
	if list, err := e.reg.Accounts(ctx); err != nil || len(list) != 0 {
		t.Fatalf("Accounts = %v, %v; want none", list, err)
	}
	// Mailboxes left by an earlier attempt are taken over.
	if err := e.mail.CreateAccount(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.reg.CreateAccount(ctx, e.mail, e.nodeKey, "alice", ""); err != nil {
		t.Fatalf("CreateAccount over leftover mailboxes: %v", err)
	}
	if err := e.mail.CreateAccount(ctx, "alice"); !errors.Is(err, mailstore.ErrAccountExists) {
		t.Fatalf("mailstore: %v", err)
	}
}

func TestWriteSettings(t *testing.T) {
	a := Account{Name: "alice"}
	base := Config{Domain: "asmtp", IMAPAddr: "127.0.0.1:1143", SMTPAddr: "127.0.0.1:1587"}
	withTLS := base
	withTLS.IMAPSAddr, withTLS.SMTPSAddr = "[::]:993", "[::]:465"
	withDAV := base
	withDAV.CardDAVAddr = "127.0.0.1:1808"
	davTLS := withTLS
	davTLS.TLS, davTLS.CardDAVAddr = true, "0.0.0.0:1808"
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"plain ports", base, "address: " + a.Address("asmtp").String() + "\nimap: 127.0.0.1:1143\nsmtp: 127.0.0.1:1587\nusername: alice\npassword: pw\n"},
		{"carddav", withDAV, "address: " + a.Address("asmtp").String() + "\nimap: 127.0.0.1:1143\nsmtp: 127.0.0.1:1587\ncarddav: http://127.0.0.1:1808/\nusername: alice\npassword: pw\n"},
		{"carddav beyond loopback is https", davTLS, "address: " + a.Address("asmtp").String() + "\nimap: 127.0.0.1:1143\nsmtp: 127.0.0.1:1587\nimaps: [::]:993\nsmtps: [::]:465\ncarddav: https://0.0.0.0:1808/\nusername: alice\npassword: pw\n"},
		{"implicit TLS", withTLS, "address: " + a.Address("asmtp").String() + "\nimap: 127.0.0.1:1143\nsmtp: 127.0.0.1:1587\nimaps: [::]:993\nsmtps: [::]:465\nusername: alice\npassword: pw\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteSettings(&b, tt.cfg, a, "pw"); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tt.want)
			}
		})
	}
}
