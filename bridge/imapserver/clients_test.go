package imapserver

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/bridge/listen"
)

// TestImaplibSession drives a whole client session with Python's imaplib.
func TestImaplibSession(t *testing.T) {
	ts := startServer(t)
	out := runTool(t, time.Minute, "python3", "testdata/imaplib_session.py", "127.0.0.1", ts.port(), testUser, testToken)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("imaplib output %q: %v", out, err)
	}
	caps, _ := got["capabilities"].([]any)
	for _, c := range []string{"IDLE", "UIDPLUS", "MOVE", "UNSELECT", "NAMESPACE", "SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS",
		"ESEARCH", "LITERAL+", "APPENDLIMIT=26214400", "ENABLE", "ID", "SASL-IR", "BINARY", "CONDSTORE", "QRESYNC"} {
		if !slices.Contains(caps, any(c)) {
			t.Errorf("capability %s missing from %v", c, caps)
		}
	}
	checks := []struct {
		key, want string
	}{
		{"login", "OK"},
		{"list", `(\HasNoChildren \Sent) "/" "Sent"`},
		{"create", "OK"},
		{"list_projects", `(\HasChildren) "/" "Projects"`},
		{"list_projects", `(\HasNoChildren) "/" "Projects/2024"`},
		{"append", "[APPENDUID "},
		{"select", "1"},
		{"search", "1"},
		{"fetch_meta", `FLAGS (\Seen $Label \Recent)`},
		{"fetch_meta", "RFC822.SIZE 179"},
		{"size", "179"},
		{"fetch_meta", `INTERNALDATE " 5-Mar-2024 10:00:00 +0000"`},
		{"fetch_meta", `ENVELOPE ("Tue, 05 Mar 2024 10:00:00 +0000" "imaplib test" (("Carol" NIL "carol" "example.org"))`},
		{"fetch_meta", `BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 31 1 NIL NIL NIL NIL)`},
		{"body_exact", "true"},
		{"header_fields", "Subject: imaplib test\r\n\r\n"},
		{"store", `FLAGS (\Seen \Flagged $Label \Recent)`},
		{"copy", "OK"},
		{"move", "OK"},
		{"status_projects", "MESSAGES 1 UIDNEXT 2 UNSEEN 0"},
		{"status_archive", "MESSAGES 1"},
		{"archive_flags", `FLAGS (\Seen \Flagged $Label \Recent)`},
		{"expunge", "OK"},
		{"rename", "OK"},
		{"delete_parent", "NO"}, // has a child
		{"delete_child", "OK"},
		{"select_missing", "NO"},
		{"logout", "BYE"},
	}
	for _, c := range checks {
		var s string
		switch v := got[c.key].(type) {
		case string:
			s = v
		case []any:
			for _, item := range v {
				s += fmt.Sprint(item) + "\n"
			}
		default:
			s = fmt.Sprint(v)
		}
		if !strings.Contains(s, c.want) {
			t.Errorf("%s = %q, want it to contain %q", c.key, s, c.want)
		}
	}
}

// TestCurl uses curl's IMAP support: LIST, APPEND (upload), FETCH by UID
// and a custom command.
func TestCurl(t *testing.T) {
	ts := startServer(t)
	base := "imap://127.0.0.1:" + ts.port()
	login := testUser + ":" + testToken
	msg := "From: dave@example.org\r\nSubject: from curl\r\n\r\nuploaded by curl\r\n"
	file := filepath.Join(t.TempDir(), "msg.eml")
	os.WriteFile(file, []byte(msg), 0o600)

	if out := runTool(t, 30*time.Second, "curl", "-sS", "-u", login, base+"/"); !strings.Contains(out, `\Sent) "/" "Sent"`) {
		t.Errorf("curl LIST: %q", out)
	}
	runTool(t, 30*time.Second, "curl", "-sS", "-u", login, "-T", file, base+"/INBOX")
	if out := runTool(t, 30*time.Second, "curl", "-sS", "-u", login, base+"/INBOX;UID=1"); out != msg {
		t.Errorf("curl FETCH UID 1 = %q, want %q", out, msg)
	}
	if out := runTool(t, 30*time.Second, "curl", "-sS", "-u", login, base+"/INBOX", "-X", "UID SEARCH SUBJECT curl"); !strings.Contains(out, "SEARCH 1") {
		t.Errorf("curl UID SEARCH: %q", out)
	}
	if out := runTool(t, 30*time.Second, "curl", "-sS", "-u", login, base+"/", "-X", "STATUS INBOX (MESSAGES)"); !strings.Contains(out, "MESSAGES 1") {
		t.Errorf("curl STATUS: %q", out)
	}
	// Wrong password: curl fails, and says so.
	cmd := []string{"-sS", "-u", testUser + ":wrong", base + "/"}
	if out, err := execOutput(needTool(t, "curl"), cmd...); err == nil || !strings.Contains(out, "Login denied") {
		t.Errorf("curl with a wrong password: %v %q", err, out)
	}
}

// TestTLS: STARTTLS and implicit TLS with the generated self-signed
// certificate, verified by curl against the exported PEM file.
func TestTLS(t *testing.T) {
	certDir := t.TempDir()
	cert, certPath, err := auth.LoadOrCreateCertificate(certDir)
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := auth.LoadOrCreateCertificate(certDir)
	if err != nil || !again.Leaf.Equal(cert.Leaf) {
		t.Fatalf("certificate not reused from %s: %v", certDir, err)
	}
	if info, _ := os.Stat(filepath.Join(certDir, auth.KeyFile)); info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", info.Mode().Perm())
	}
	ts := startServer(t, func(o *Options) { o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}} })
	implicit, err := ts.srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ts.srv.ServeTLS(implicit)
	_, implicitPort, _ := strings.Cut(implicit.Addr().String(), ":")

	login := testUser + ":" + testToken
	starttls := runTool(t, 30*time.Second, "curl", "-sS", "--ssl-reqd", "--cacert", certPath, "-u", login, "imap://localhost:"+ts.port()+"/")
	if !strings.Contains(starttls, "INBOX") {
		t.Errorf("curl over STARTTLS: %q", starttls)
	}
	imaps := runTool(t, 30*time.Second, "curl", "-sS", "--cacert", certPath, "-u", login, "imaps://localhost:"+implicitPort+"/")
	if !strings.Contains(imaps, "INBOX") {
		t.Errorf("curl over implicit TLS: %q", imaps)
	}
	c := dialRaw(t, ts.addr)
	if caps, _ := c.cmd("CAPABILITY"); !strings.Contains(strings.Join(caps, " "), "STARTTLS") {
		t.Errorf("STARTTLS not offered: %v", caps)
	}
}

// TestRefusesNonLoopbackWithoutTLS: the server will not serve plain text
// beyond this machine, and says why.
func TestRefusesNonLoopbackWithoutTLS(t *testing.T) {
	ts := startServer(t)
	for _, addr := range []string{"0.0.0.0:1143", "192.0.2.1:1143", "[::]:1143", ":1143"} {
		_, err := ts.srv.Listen(addr)
		if err == nil || !strings.Contains(err.Error(), "without TLS") {
			t.Errorf("Listen(%s) = %v, want a refusal explaining TLS", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0"} {
		if !listen.IsLoopback(addr) {
			t.Errorf("%s should count as loopback", addr)
		}
	}
}
