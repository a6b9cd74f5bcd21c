package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/internal/wait"
)

// davClient is vdirsyncer syncing one account's address book into a
// local directory, and khard reading that directory: a real CardDAV
// client and a real address book program, as a user would set them up.
type davClient struct {
	dir, vdirsyncerConf, khardConf string
	book                           string // the synced collection's directory
}

func newDAVClient(t *testing.T, a mailAccount, url string) *davClient {
	t.Helper()
	c := &davClient{dir: t.TempDir()}
	c.vdirsyncerConf = filepath.Join(c.dir, "vdirsyncer.conf")
	c.khardConf = filepath.Join(c.dir, "khard.conf")
	c.book = filepath.Join(c.dir, "contacts", "contacts")
	// Discovery from the bare server URL: /.well-known/carddav, the
	// principal, its home set, then the one address book ("contacts").
	vconf := fmt.Sprintf(`[general]
status_path = "%[1]s/status/"

[pair asmtp]
a = "local"
b = "bridge"
collections = ["from b"]
conflict_resolution = "b wins"

[storage local]
type = "filesystem"
path = "%[1]s/contacts/"
fileext = ".vcf"

[storage bridge]
type = "carddav"
url = "%[2]s"
username = "%[3]s"
password = "%[4]s"
`, c.dir, url, a.Username, a.Password)
	kconf := fmt.Sprintf(`[addressbooks]
[[asmtp]]
path = %s

[general]
default_action = list
editor = /bin/true
merge_editor = /bin/true

[contact table]
display = formatted_name
`, c.book)
	for f, s := range map[string]string{c.vdirsyncerConf: vconf, c.khardConf: kconf} {
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := c.vdirsyncer("discover"); err != nil {
		t.Fatalf("vdirsyncer discover: %v\n%s", err, out)
	}
	return c
}

func (c *davClient) vdirsyncer(args ...string) (string, error) {
	cmd := exec.Command("vdirsyncer", append([]string{"-c", c.vdirsyncerConf}, args...)...)
	cmd.Stdin = strings.NewReader(strings.Repeat("y\n", 4)) // discover: create the local collection
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *davClient) sync(t *testing.T) {
	t.Helper()
	if out, err := c.vdirsyncer("sync"); err != nil {
		t.Fatalf("vdirsyncer sync: %v\n%s", err, out)
	}
}

// emails is what khard lists: address → name.
func (c *davClient) emails(t *testing.T) map[string]string {
	t.Helper()
	cmd := exec.Command("khard", "-c", c.khardConf, "email", "--parsable", "--remove-first-line")
	cmd.Env = append(os.Environ(), "HOME="+c.dir)
	out, err := cmd.CombinedOutput()
	if err != nil && !strings.Contains(string(out), "Found no contacts") {
		t.Fatalf("khard email: %v\n%s", err, out)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Split(line, "\t"); len(f) >= 2 && strings.Contains(f[0], "@") {
			m[f[0]] = f[1]
		}
	}
	return m
}

// cardFile is the local file of the card with address addr.
func (c *davClient) cardFile(t *testing.T, addr string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(c.book, "*.vcf"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), addr) {
			return f
		}
	}
	t.Fatalf("no local card with %s among %v", addr, files)
	return ""
}

// syncUntil syncs until khard shows what ok wants (the bridge may need a
// moment, e.g. to fetch a passport).
func (c *davClient) syncUntil(t *testing.T, what string, ok func(map[string]string) bool) {
	t.Helper()
	var got map[string]string
	wait.Until(t, 30*time.Second, what, func() bool {
		c.sync(t)
		got = c.emails(t)
		return ok(got)
	}, func() string { return fmt.Sprintf("khard shows %v", got) })
}

// contactList is `asmtpd-cli contact list` of account on p.
func (n *mailNet) contactList(t *testing.T, p *proc, account string) string {
	t.Helper()
	return n.cliEnv(t, p, "contact", "list", "--config", p.config(), "--account", account)
}

// TestCardDAVWithVdirsyncerAndKhard: alice's address book synced by
// vdirsyncer and read by khard. Contacts made with asmtpd-cli appear; a
// card made on the client with carol's address (an account on another
// node) becomes a contact alice's bridge delivers to; renames and deletes
// travel both ways; alice's login does not open dave's book.
func TestCardDAVWithVdirsyncerAndKhard(t *testing.T) {
	for _, tool := range []string{"vdirsyncer", "khard"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: run .ci/deps", tool)
		}
	}
	var carol, dave mailAccount
	n := startMailNet(t, func(n *mailNet) {
		carol = n.accountAdd(t, n.c, "carol")
		dave = n.accountAdd(t, n.a, "dave")
		n.cliEnv(t, n.c, "contact", "add", "--config", n.c.config(), "--account", "carol", "--name", "alice", "--passport", n.alicePassport)
		n.cliEnv(t, n.a, "contact", "add", "--config", n.a.config(), "--account", "dave", "--name", "Dave's secret friend", "--id", strings.Repeat("d", 32))
	})
	n.waitBridge(t, n.c, carol)
	client := newDAVClient(t, n.alice, n.alice.CardDAV)

	// From asmtpd-cli to the client.
	zed := strings.Repeat("e", 32) + "@asmtp"
	n.cliEnv(t, n.a, "contact", "add", "--config", n.a.config(), "--account", "alice", "--name", "Zed", "--id", zed)
	client.syncUntil(t, "contacts added with asmtpd-cli", func(m map[string]string) bool {
		return m[n.bob.Address] == "bob" && m[zed] == "Zed"
	})

	// From the client to the bridge: a new card with carol's address.
	card := "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:made-in-the-client\r\nFN:Carol\r\nN:;Carol;;;\r\nEMAIL;TYPE=INTERNET:" + carol.Address + "\r\nEND:VCARD\r\n"
	if err := os.WriteFile(filepath.Join(client.book, "made-in-the-client.vcf"), []byte(card), 0o600); err != nil {
		t.Fatal(err)
	}
	client.sync(t)
	readyRe := regexp.MustCompile(`(?m)^Carol +` + carol.Address + ` +ready`)
	wait.Until(t, 60*time.Second, "carol's passport fetched for the client's card", func() bool {
		return readyRe.MatchString(n.contactList(t, n.a, "alice"))
	})
	subject := "to the contact made in the client " + randHex(4)
	if out, err := n.sendRaw(t, n.alice, carol.Address, plainMail(n.alice.Address, carol.Address, subject, "hello carol\r\n")); err != nil {
		t.Fatalf("send to carol: %v %s", err, out)
	}
	if out, err := n.py("wait", carol.json(), subject, "1", "60"); err != nil {
		t.Fatalf("carol did not receive alice's mail: %v %s", err, out)
	}

	// Renames, both ways.
	client.syncUntil(t, "the client's card synced back", func(m map[string]string) bool { return m[carol.Address] == "Carol" })
	f := client.cardFile(t, carol.Address)
	b, _ := os.ReadFile(f)
	if err := os.WriteFile(f, []byte(strings.Replace(string(b), "FN:Carol", "FN:Caroline", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	client.sync(t)
	if !regexp.MustCompile(`(?m)^Caroline +` + carol.Address).MatchString(n.contactList(t, n.a, "alice")) {
		t.Errorf("after renaming in the client, the bridge has:\n%s", n.contactList(t, n.a, "alice"))
	}
	n.cliEnv(t, n.a, "contact", "rename", "--config", n.a.config(), "--account", "alice", "--name", "Zed", "--to", "Zeta")
	client.syncUntil(t, "a rename made with asmtpd-cli", func(m map[string]string) bool { return m[zed] == "Zeta" })

	// Deletes, both ways.
	if err := os.Remove(client.cardFile(t, zed)); err != nil {
		t.Fatal(err)
	}
	client.sync(t)
	if list := n.contactList(t, n.a, "alice"); strings.Contains(list, "Zeta") {
		t.Errorf("after deleting in the client, the bridge still has Zeta:\n%s", list)
	}
	n.cliEnv(t, n.a, "contact", "remove", "--config", n.a.config(), "--account", "alice", "--name", "bob")
	client.syncUntil(t, "a removal made with asmtpd-cli", func(m map[string]string) bool {
		_, bob := m[n.bob.Address]
		return !bob && m[carol.Address] == "Caroline"
	})

	// dave's book, with alice's login: vdirsyncer gets nothing.
	spy := newDAVClientAt(t, n.alice, strings.TrimSuffix(dave.CardDAV, "/")+"/dav/dave/books/contacts/")
	out, err := spy.vdirsyncer("sync")
	files, _ := filepath.Glob(filepath.Join(spy.dir, "contacts", "*", "*.vcf"))
	if err == nil || len(files) != 0 || strings.Contains(out, "secret friend") {
		t.Errorf("vdirsyncer on dave's book with alice's login: %v, %d cards\n%s", err, len(files), out)
	}
}

// newDAVClientAt is a vdirsyncer set up for the address book at url
// itself, without discovery.
func newDAVClientAt(t *testing.T, a mailAccount, url string) *davClient {
	t.Helper()
	c := &davClient{dir: t.TempDir()}
	c.vdirsyncerConf = filepath.Join(c.dir, "vdirsyncer.conf")
	conf := fmt.Sprintf(`[general]
status_path = "%[1]s/status/"

[pair asmtp]
a = "local"
b = "bridge"
collections = null

[storage local]
type = "filesystem"
path = "%[1]s/contacts/book/"
fileext = ".vcf"

[storage bridge]
type = "carddav"
url = "%[2]s"
username = "%[3]s"
password = "%[4]s"
`, c.dir, url, a.Username, a.Password)
	if err := os.MkdirAll(filepath.Join(c.dir, "contacts", "book"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.vdirsyncerConf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}
