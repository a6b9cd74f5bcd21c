package bridge

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
	"github.com/asmtp/asmtp/bridge/auth"
)

// tlsBridge runs a bridge with TLS on (cfg adds the implicit-TLS ports)
// and one account; it returns the bridge, the account's name and password.
func tlsBridge(t *testing.T, cfg Config) (b *Bridge, certFile, user, pw string) {
	t.Helper()
	e := accountstest.NewEnv(t)
	alice, pw := e.AddAccount(t, "alice")
	n := startNode(t, e.Dir, e.NodeKey)
	cfg.DataDir, cfg.IMAPAddr, cfg.SMTPAddr, cfg.TLS = e.Dir, "127.0.0.1:0", "127.0.0.1:0", true
	cfg.RefreshInterval, cfg.Logger = 200*time.Millisecond, accountstest.Logger()
	b, err := New(cfg, n, e.NodeKey)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "bridge", b.Run)
	return b, filepath.Join(e.Dir, auth.CertFile), alice.Name, pw
}

// tlsClients runs a Python client script that prints "ok" when it is done.
func tlsClients(t *testing.T, what, script string, args ...string) {
	t.Helper()
	out, err := exec.Command("python3", append([]string{"-c", script}, args...)...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("%s with the exported certificate: %v\n%s", what, err, out)
	}
}

// With TLS on, real clients (Python's imaplib and smtplib) upgrade with
// STARTTLS, verify the bridge's self-signed certificate from the exported
// file, and log in.
func TestBridgeSTARTTLS(t *testing.T) {
	b, cert, user, pw := tlsBridge(t, Config{})
	tlsClients(t, "STARTTLS", starttlsClients, b.IMAPAddr().String(), b.SMTPAddr().String(), cert, user, pw)
}

const starttlsClients = `
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

// With IMAPSAddr and SMTPSAddr set, real clients (Python's IMAP4_SSL and
// SMTP_SSL) speak TLS from the first byte on those ports, verify the
// bridge's self-signed certificate from the exported file, and log in. The
// IMAPS port listens on the wildcard address, which implicit TLS allows.
func TestBridgeImplicitTLS(t *testing.T) {
	b, cert, user, pw := tlsBridge(t, Config{IMAPSAddr: "0.0.0.0:0", SMTPSAddr: "127.0.0.1:0"})
	if b.IMAPSAddr() == nil || b.SMTPSAddr() == nil {
		t.Fatalf("implicit-TLS addresses %v, %v; want both", b.IMAPSAddr(), b.SMTPSAddr())
	}
	tlsClients(t, "implicit TLS", implicitTLSClients, port(b.IMAPSAddr()), port(b.SMTPSAddr()), cert, user, pw)
}

const implicitTLSClients = `
import imaplib, smtplib, ssl, sys
imaps_port, smtps_port, cafile, user, pw = sys.argv[1:]
ctx = ssl.create_default_context(cafile=cafile)
m = imaplib.IMAP4_SSL("127.0.0.1", int(imaps_port), ssl_context=ctx)
assert "STARTTLS" not in m.capabilities, m.capabilities
m.login(user, pw)
typ, data = m.select("INBOX")
assert typ == "OK", (typ, data)
m.logout()
with smtplib.SMTP_SSL("127.0.0.1", int(smtps_port), context=ctx, timeout=30) as s:
    s.ehlo()
    assert not s.has_extn("starttls")
    s.login(user, pw)
# An unverified certificate is refused: the client checks it for real.
try:
    imaplib.IMAP4_SSL("127.0.0.1", int(imaps_port), ssl_context=ssl.create_default_context())
except ssl.SSLCertVerificationError:
    pass
else:
    sys.exit("connected without trusting the bridge's certificate")
print("ok")
`

func port(a net.Addr) string { return strconv.Itoa(a.(*net.TCPAddr).Port) }

// Implicit-TLS ports without TLS are a configuration mistake, refused
// before anything listens; without them the addresses are nil.
func TestImplicitTLSNeedsTLS(t *testing.T) {
	for _, cfg := range []Config{{IMAPSAddr: "127.0.0.1:0"}, {SMTPSAddr: "127.0.0.1:0"}} {
		e := accountstest.NewEnv(t)
		cfg.DataDir, cfg.IMAPAddr, cfg.SMTPAddr, cfg.Logger = e.Dir, "127.0.0.1:0", "127.0.0.1:0", accountstest.Logger()
		if _, err := New(cfg, nil, e.NodeKey); err == nil || !strings.Contains(err.Error(), "needs Config.TLS") {
			t.Errorf("New with %+v: %v, want a refusal naming Config.TLS", cfg, err)
		}
	}
	e := accountstest.NewEnv(t)
	b, err := New(Config{DataDir: e.Dir, IMAPAddr: "127.0.0.1:0", SMTPAddr: "127.0.0.1:0", Logger: accountstest.Logger()}, nil, e.NodeKey)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if b.IMAPSAddr() != nil || b.SMTPSAddr() != nil {
		t.Errorf("implicit-TLS addresses %v, %v without them configured", b.IMAPSAddr(), b.SMTPSAddr())
	}
}
