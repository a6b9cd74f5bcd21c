package bridge

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/imapserver"
)

// With TLS on, real clients (Python's imaplib and smtplib) upgrade with
// STARTTLS, verify the bridge's self-signed certificate from the exported
// file, and log in.
func TestBridgeSTARTTLS(t *testing.T) {
	e := newTestEnv(t)
	alice, pw := e.addAccount(t, "alice")
	n := startNode(t, e.dir, e.nodeKey)
	b, err := New(Config{DataDir: e.dir, IMAPAddr: "127.0.0.1:0", SMTPAddr: "127.0.0.1:0", TLS: true,
		RefreshInterval: 200 * time.Millisecond, Logger: testLogger()}, n, e.nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "bridge", b.Run)

	script := `
import imaplib, smtplib, ssl, sys
imap, smtp, cafile, user, pw = sys.argv[1:]
ctx = ssl.create_default_context(cafile=cafile)
host, port = imap.rsplit(":", 1)
m = imaplib.IMAP4(host, int(port))
m.starttls(ssl_context=ctx)
m.login(user, pw)
m.logout()
host, port = smtp.rsplit(":", 1)
s = smtplib.SMTP(host, int(port))
s.starttls(context=ctx)
s.login(user, pw)
s.quit()
print("ok")
`
	cmd := exec.Command("python3", "-c", script, b.IMAPAddr().String(), b.SMTPAddr().String(),
		filepath.Join(e.dir, imapserver.CertFile), alice.Name, pw)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("STARTTLS with the exported certificate: %v\n%s", err, out)
	}
}
