package bridge

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/imapserver"
)

// With IMAPSAddr and SMTPSAddr set, real clients (Python's IMAP4_SSL and
// SMTP_SSL) speak TLS from the first byte on those ports, verify the
// bridge's self-signed certificate from the exported file, and log in. The
// IMAPS port listens on the wildcard address, which implicit TLS allows.
func TestBridgeImplicitTLS(t *testing.T) {
	e := newTestEnv(t)
	alice, pw := e.addAccount(t, "alice")
	n := startNode(t, e.dir, e.nodeKey)
	b, err := New(Config{DataDir: e.dir, IMAPAddr: "127.0.0.1:0", SMTPAddr: "127.0.0.1:0", TLS: true,
		IMAPSAddr: "0.0.0.0:0", SMTPSAddr: "127.0.0.1:0",
		RefreshInterval: 200 * time.Millisecond, Logger: testLogger()}, n, e.nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "bridge", b.Run)
	if b.IMAPSAddr() == nil || b.SMTPSAddr() == nil {
		t.Fatalf("implicit-TLS addresses %v, %v; want both", b.IMAPSAddr(), b.SMTPSAddr())
	}

	script := `
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
	cmd := exec.Command("python3", "-c", script, port(b.IMAPSAddr()), port(b.SMTPSAddr()),
		filepath.Join(e.dir, imapserver.CertFile), alice.Name, pw)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("implicit TLS with the exported certificate: %v\n%s", err, out)
	}
}

func port(a net.Addr) string { return strconv.Itoa(a.(*net.TCPAddr).Port) }

// Implicit-TLS ports without TLS are a configuration mistake, refused
// before anything listens; without them the addresses are nil.
func TestImplicitTLSNeedsTLS(t *testing.T) {
	for _, cfg := range []Config{{IMAPSAddr: "127.0.0.1:0"}, {SMTPSAddr: "127.0.0.1:0"}} {
		e := newTestEnv(t)
		cfg.DataDir, cfg.IMAPAddr, cfg.SMTPAddr, cfg.Logger = e.dir, "127.0.0.1:0", "127.0.0.1:0", testLogger()
		if _, err := New(cfg, nil, e.nodeKey); err == nil || !strings.Contains(err.Error(), "needs Config.TLS") {
			t.Errorf("New with %+v: %v, want a refusal naming Config.TLS", cfg, err)
		}
	}
	e := newTestEnv(t)
	b, err := New(Config{DataDir: e.dir, IMAPAddr: "127.0.0.1:0", SMTPAddr: "127.0.0.1:0", Logger: testLogger()}, nil, e.nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if b.IMAPSAddr() != nil || b.SMTPSAddr() != nil {
		t.Errorf("implicit-TLS addresses %v, %v without them configured", b.IMAPSAddr(), b.SMTPSAddr())
	}
}
