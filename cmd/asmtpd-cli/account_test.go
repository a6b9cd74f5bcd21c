package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
)

// cli runs the built asmtpd-cli binary.
type cli struct {
	t   *testing.T
	bin string
	env []string
}

func buildCLI(t *testing.T) *cli {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "asmtpd-cli")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, passwordEnv+"=") {
			env = append(env, kv)
		}
	}
	return &cli{t: t, bin: bin, env: env}
}

// run runs the binary with args and extra environment variables, and
// returns stdout, stderr and its error.
func (c *cli) run(env []string, args ...string) (string, string, error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(append([]string(nil), c.env...), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// ok runs the binary and fails the test if it fails.
func (c *cli) ok(env []string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(env, args...)
	if err != nil {
		c.t.Fatalf("asmtpd-cli %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// fields parses "key: value" lines, checking that the keys come in order.
func fields(t *testing.T, out string, keys ...string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(keys) {
		t.Fatalf("output has %d lines, want %d (%s):\n%s", len(lines), len(keys), strings.Join(keys, ", "), out)
	}
	m := make(map[string]string)
	for i, l := range lines {
		k, v, ok := strings.Cut(l, ": ")
		if !ok || k != keys[i] {
			t.Fatalf("line %d is %q, want %q first", i+1, l, keys[i]+": ")
		}
		m[k] = v
	}
	return m
}

func TestAccountAndContactCommands(t *testing.T) {
	c := buildCLI(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(c.ok(nil, "default-config")), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok(nil, "generate-new-key", "--entropy-output", filepath.Join(dir, "entropy.txt"), "--password", "node pw")
	keyPW := []string{passwordEnv + "=node pw"}

	alice := fields(t, c.ok(keyPW, "account", "add", "--config", cfg, "--name", "Alice"),
		"address", "imap", "smtp", "carddav", "username", "password")
	want := map[string]*regexp.Regexp{
		"address":  regexp.MustCompile(`^[0-9a-f]{32}@asmtp$`),
		"imap":     regexp.MustCompile(`^127\.0\.0\.1:1143$`),
		"smtp":     regexp.MustCompile(`^127\.0\.0\.1:1587$`),
		"carddav":  regexp.MustCompile(`^http://127\.0\.0\.1:1808/$`),
		"username": regexp.MustCompile(`^alice$`),
		"password": regexp.MustCompile(`^[a-z2-7]{26}$`),
	}
	for k, re := range want {
		if !re.MatchString(alice[k]) {
			t.Errorf("%s: %q does not match %s", k, alice[k], re)
		}
	}
	bob := fields(t, c.ok(keyPW, "account", "add", "--config", cfg, "--name", "bob", "--bridge-password", "bob's own password"),
		"address", "imap", "smtp", "carddav", "username", "password")
	if bob["password"] != "bob's own password" || bob["address"] == alice["address"] {
		t.Errorf("bob: %v", bob)
	}
	_, errOut, err := c.run([]string{passwordEnv + "=not the node pw"}, "account", "add", "--config", cfg, "--name", "carol")
	if err == nil || !strings.Contains(errOut, "wrong key password or different node key") {
		t.Errorf("account add with a wrong key password: %v, %q; want a wrong-password error", err, errOut)
	}
	checkBridgeModes(t, filepath.Join(dir, "bridge"))

	list := c.ok(nil, "account", "list", "--config", cfg)
	if !strings.Contains(list, "alice  "+alice["address"]) || !strings.Contains(list, "bob    "+bob["address"]) || strings.Contains(list, "carol") {
		t.Errorf("account list:\n%s", list)
	}

	alicePassport := filepath.Join(dir, "alice.passport")
	c.ok(nil, "account", "export-passport", "--config", cfg, "--name", "alice", "--output", alicePassport)
	data, err := os.ReadFile(alicePassport)
	if err != nil {
		t.Fatal(err)
	}
	p, err := passport.Import(data, time.Now())
	if err != nil || p.ID().String()+"@asmtp" != alice["address"] {
		t.Fatalf("exported passport: %v, %v; want alice's", p, err)
	}
	if out := c.ok(nil, "account", "export-passport", "--config", cfg, "--name", "alice"); out != string(data) {
		t.Error("export-passport to stdout differs from --output")
	}

	added := fields(t, c.ok(nil, "contact", "add", "--config", cfg, "--account", "bob", "--name", "Alice Liddell", "--passport", alicePassport),
		"name", "address", "status")
	if added["address"] != alice["address"] || added["status"] != "ready" {
		t.Errorf("contact add --passport: %v", added)
	}
	const carolID = "00112233445566778899aabbccddeeff"
	pending := fields(t, c.ok(nil, "contact", "add", "--config", cfg, "--account", "bob", "--name", "Carol", "--id", strings.ToUpper(carolID)+"@ASMTP"),
		"name", "address", "status")
	if pending["address"] != carolID+"@asmtp" || !strings.HasPrefix(pending["status"], "pending") {
		t.Errorf("contact add --id: %v", pending)
	}
	if _, _, err := c.run(nil, "contact", "add", "--config", cfg, "--account", "bob", "--name", "Dave"); err == nil {
		t.Error("contact add without --passport or --id succeeded")
	}
	contacts := c.ok(nil, "contact", "list", "--config", cfg, "--account", "bob")
	// A new contact waits for its card (naming v2) until the daemon has
	// exchanged cards with it; a pending one has no naming yet.
	if !regexp.MustCompile(`Alice Liddell +`+alice["address"]+` +ready +awaiting card `).MatchString(contacts) ||
		!regexp.MustCompile(`Carol +`+carolID+`@asmtp +pending +- `).MatchString(contacts) {
		t.Errorf("contact list:\n%s", contacts)
	}
	vcf := c.ok(nil, "contact", "export", "--config", cfg, "--account", "bob", "--format", "vcard")
	for _, line := range []string{"FN:Alice Liddell\r\n", "EMAIL;TYPE=INTERNET:" + alice["address"] + "\r\n", "FN:Carol\r\n"} {
		if !strings.Contains(vcf, line) {
			t.Errorf("vCard export lacks %q:\n%s", line, vcf)
		}
	}
	c.ok(nil, "contact", "rename", "--config", cfg, "--account", "bob", "--name", "carol", "--to", "Caroline")
	if _, _, err := c.run(nil, "contact", "rename", "--config", cfg, "--account", "bob", "--name", "caroline", "--to", "alice liddell"); err == nil {
		t.Error("contact rename to another contact's petname succeeded")
	}
	if contacts := c.ok(nil, "contact", "list", "--config", cfg, "--account", "bob"); !strings.Contains(contacts, "Caroline") {
		t.Errorf("contact list after rename:\n%s", contacts)
	}
	c.ok(nil, "contact", "remove", "--config", cfg, "--account", "bob", "--name", "caroline")
	if contacts := c.ok(nil, "contact", "list", "--config", cfg, "--account", "bob"); strings.Contains(contacts, "Carol") {
		t.Errorf("contact list after remove:\n%s", contacts)
	}

	reset := fields(t, c.ok(nil, "account", "reset-password", "--config", cfg, "--name", "alice"), "username", "password")
	if reset["username"] != "alice" || reset["password"] == alice["password"] {
		t.Fatalf("reset-password: %v", reset)
	}
	ctx := context.Background()
	reg, err := accounts.OpenRegistry(ctx, filepath.Join(dir, "bridge"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if _, err := reg.Authenticate(ctx, "alice", alice["password"], "asmtp"); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Errorf("old password after reset-password: %v, want refused", err)
	}
	if name, err := reg.Authenticate(ctx, alice["address"], reset["password"], "asmtp"); name != "alice" || err != nil {
		t.Errorf("new password after reset-password: %q, %v", name, err)
	}

	before, err := reg.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.run([]string{passwordEnv + "=not the node pw"}, "account", "rotate-key", "--config", cfg, "--name", "alice"); err == nil {
		t.Error("rotate-key with a wrong node key password succeeded")
	}
	rotated := fields(t, c.ok(keyPW, "account", "rotate-key", "--config", cfg, "--name", "alice"), "account", "shared key")
	after, err := reg.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if old, now := accountstest.OwnSharedKey(t, before), accountstest.OwnSharedKey(t, after); old == now || rotated["shared key"] != now.String() {
		t.Errorf("rotate-key: %v; shared key %s before, %s after", rotated, old, now)
	}
}

// checkBridgeModes checks that dir is 0700 and every file in it 0600.
func checkBridgeModes(t *testing.T, dir string) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v, %v; want mode 0700", dir, fi.Mode(), err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) < 2 {
		t.Fatalf("%s holds %d files, %v; want the registry and the mailstore", dir, len(entries), err)
	}
	for _, de := range entries {
		fi, err := de.Info()
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", de.Name(), fi.Mode().Perm(), err)
		}
	}
}
