package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/internal/wait"
)

// The bridge issue's Must-show, with three real asmtpd processes on
// loopback and real mail clients: alice's account on A, a relay B (bridge
// disabled), bob's account on C. A and C know only B; alice and bob are each
// other's contacts (export-passport + contact add), exactly as
// contrib/local-network.sh sets them up.

// mailAccount is what `asmtpd-cli account add` printed.
type mailAccount struct {
	Name     string `json:"name"`
	Address  string `json:"address"`
	IMAP     string `json:"imap"`
	SMTP     string `json:"smtp"`
	CardDAV  string `json:"carddav"`
	Username string `json:"username"`
	Password string `json:"password"`
}

func (a mailAccount) json() string {
	b, _ := json.Marshal(a)
	return string(b)
}

type mailNet struct {
	bin        string
	a, b, c    *proc
	alice, bob mailAccount
	tool       string // the Python helper
	dir        string

	alicePassport string // alice's exported passport
}

// startMailNet builds the binaries, configures the three nodes with fast
// gossip, adds the accounts and contacts, calls each setup (to add more
// while the nodes are down), starts B, A, C and waits until a probe mail
// from alice reaches bob.
func startMailNet(t *testing.T, setup ...func(*mailNet)) *mailNet {
	t.Helper()
	if testing.Short() {
		t.Skip("runs three asmtpd processes and mail clients")
	}
	for _, tool := range []string{"python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	began := time.Now()
	n := &mailNet{bin: buildBinaries(t), dir: t.TempDir()}
	n.tool = filepath.Join(n.dir, "mailtool.py")
	if err := os.WriteFile(n.tool, []byte(mailTool), 0o600); err != nil {
		t.Fatal(err)
	}
	n.a, n.b, n.c = newProc(t, n.bin, "a"), newProc(t, n.bin, "b"), newProc(t, n.bin, "c")
	generateKeys(t, n.a, n.b, n.c)
	n.a.writeConfig(t, []*proc{n.b})
	n.b.writeConfig(t, nil)
	n.c.writeConfig(t, []*proc{n.b})
	for _, p := range []*proc{n.a, n.b, n.c} {
		edits := [][2]string{
			{`minimum_time_elapsed: "10s"`, `minimum_time_elapsed: "1s"`},
			{`gossip_refresh_rate: "30s"`, `gossip_refresh_rate: "2s"`},
		}
		if p == n.b {
			edits = append(edits, [2]string{"enabled: true", "enabled: false"})
		}
		editConfig(t, p, edits)
	}
	n.alice = n.accountAdd(t, n.a, "alice")
	n.bob = n.accountAdd(t, n.c, "bob")
	alicePP, bobPP := filepath.Join(n.dir, "alice.passport"), filepath.Join(n.dir, "bob.passport")
	n.cliEnv(t, n.a, "account", "export-passport", "--config", n.a.config(), "--name", "alice", "--output", alicePP)
	n.cliEnv(t, n.c, "account", "export-passport", "--config", n.c.config(), "--name", "bob", "--output", bobPP)
	n.cliEnv(t, n.a, "contact", "add", "--config", n.a.config(), "--account", "alice", "--name", "bob", "--passport", bobPP)
	n.cliEnv(t, n.c, "contact", "add", "--config", n.c.config(), "--account", "bob", "--name", "alice", "--passport", alicePP)
	n.alicePassport = alicePP
	for _, f := range setup {
		f(n)
	}

	for _, p := range []*proc{n.b, n.a, n.c} {
		p.start(t)
	}
	for _, p := range []*proc{n.b, n.a, n.c} {
		p.waitListening(t)
	}
	n.waitBridge(t, n.a, n.alice)
	n.waitBridge(t, n.c, n.bob)
	up := time.Now()
	n.waitOverlay(t, "probe")
	t.Logf("network: nodes up after %v, first probe mail at bob %v later",
		up.Sub(began).Round(time.Millisecond), time.Since(up).Round(time.Millisecond))
	return n
}

func (p *proc) config() string { return filepath.Join(p.dir, "config.yaml") }

func editConfig(t *testing.T, p *proc, edits [][2]string) {
	t.Helper()
	b, err := os.ReadFile(p.config())
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, e := range edits {
		if !strings.Contains(cfg, e[0]) {
			t.Fatalf("config of %s has no %q", p.name, e[0])
		}
		cfg = strings.Replace(cfg, e[0], e[1], 1)
	}
	if err := os.WriteFile(p.config(), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// cliEnv runs asmtpd-cli with the node's key password in the environment.
func (n *mailNet) cliEnv(t *testing.T, p *proc, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(n.bin, "asmtpd-cli"), args...)
	cmd.Env = append(os.Environ(), "ASMTPD_KEY_PASSWORD="+p.password)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("asmtpd-cli %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

func (n *mailNet) accountAdd(t *testing.T, p *proc, name string) mailAccount {
	t.Helper()
	out := n.cliEnv(t, p, "account", "add", "--config", p.config(), "--name", name)
	a := mailAccount{Name: name}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "address":
			a.Address = v
		case "imap":
			a.IMAP = v
		case "smtp":
			a.SMTP = v
		case "carddav":
			a.CardDAV = v
		case "username":
			a.Username = v
		case "password":
			a.Password = v
		}
	}
	if a.Address == "" || a.IMAP == "" || a.SMTP == "" || a.Username == "" || a.Password == "" {
		t.Fatalf("account add printed %q", out)
	}
	return a
}

// waitBridge waits until the account's IMAP server accepts a login.
func (n *mailNet) waitBridge(t *testing.T, p *proc, a mailAccount) {
	t.Helper()
	var out string
	var err error
	wait.Until(t, 20*time.Second, "an IMAP login to the bridge of "+p.name, func() bool {
		out, err = n.py("count", a.json(), "ALL")
		return err == nil
	}, func() string { return fmt.Sprintf("%v %s", err, out) })
}

// waitOverlay sends probe mails from alice until one reaches bob.
func (n *mailNet) waitOverlay(t *testing.T, prefix string) {
	t.Helper()
	token := prefix + "-" + randHex(4)
	i := 0
	wait.Until(t, 90*time.Second, "a probe mail from alice at bob", func() bool {
		i++
		raw := plainMail(n.alice.Address, n.bob.Address, fmt.Sprintf("%s-%d", token, i), "probe\r\n")
		if out, err := n.sendRaw(t, n.alice, n.bob.Address, raw); err != nil {
			t.Logf("probe %d not submitted: %v %s", i, err, out)
		}
		_, err := n.py("wait", n.bob.json(), token, "1", "4")
		return err == nil
	})
}

func (n *mailNet) py(args ...string) (string, error) {
	cmd := exec.Command("python3", append([]string{n.tool}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sendRaw submits raw with Python's smtplib as account a.
func (n *mailNet) sendRaw(t *testing.T, a mailAccount, to string, raws ...[]byte) (string, error) {
	t.Helper()
	var files []string
	for i, raw := range raws {
		f := filepath.Join(t.TempDir(), fmt.Sprintf("m%d.eml", i))
		if err := os.WriteFile(f, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return n.py(append([]string{"send", a.json(), to}, files...)...)
}

// fetchAll returns bob's INBOX messages, raw, as IMAP serves them.
func (n *mailNet) fetchAll(t *testing.T, a mailAccount) [][]byte {
	t.Helper()
	out, err := n.py("fetch", a.json())
	if err != nil {
		t.Fatalf("imaplib fetch: %v\n%s", err, out)
	}
	var enc []string
	if err := json.Unmarshal([]byte(out), &enc); err != nil {
		t.Fatalf("fetch output: %v\n%.500s", err, out)
	}
	var msgs [][]byte
	for _, e := range enc {
		b, err := base64.StdEncoding.DecodeString(e)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	return msgs
}

// subjectCounts counts bob's INBOX messages by Subject.
func (n *mailNet) subjectCounts(t *testing.T, a mailAccount) map[string]int {
	t.Helper()
	out, err := n.py("subjects", a.json())
	if err != nil {
		t.Fatalf("imaplib subjects: %v\n%s", err, out)
	}
	var subs []string
	if err := json.Unmarshal([]byte(out), &subs); err != nil {
		t.Fatalf("subjects output: %v\n%.500s", err, out)
	}
	m := map[string]int{}
	for _, s := range subs {
		m[s]++
	}
	return m
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func plainMail(from, to, subject, body string) []byte {
	return fmt.Appendf(nil, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@e2e.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s",
		from, to, subject, time.Now().Format(time.RFC1123Z), randHex(12), body)
}

// bodyOf is what follows the header's empty line.
func bodyOf(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[i+4:]
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		return msg[i+2:]
	}
	return nil
}

// headerValue is the first field name's unfolded value in msg's header.
func headerValue(msg []byte, name string) string {
	hdr := msg
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		hdr = msg[:i+2]
	}
	lines := strings.Split(strings.ReplaceAll(string(hdr), "\r\n", "\n"), "\n")
	for i, l := range lines {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), name) {
			continue
		}
		for j := i + 1; j < len(lines) && (strings.HasPrefix(lines[j], " ") || strings.HasPrefix(lines[j], "\t")); j++ {
			v += lines[j]
		}
		return strings.TrimSpace(v)
	}
	return ""
}

// TestMailThreeNodes: plain, HTML, UTF-8 subject and a 5 MiB attachment
// through smtplib, one through swaks; bob reads them with imaplib, bodies
// byte-identical, From alice's pseudo-address even when forged; bob mirrors
// with mbsync.
func TestMailThreeNodes(t *testing.T) {
	t.Parallel()
	n := startMailNet(t)
	tok := randHex(4)
	from, to := n.alice.Address, n.bob.Address

	attachment := make([]byte, 5<<20)
	rand.Read(attachment)
	b64 := base64.StdEncoding.EncodeToString(attachment)
	var att strings.Builder
	for len(b64) > 76 {
		att.WriteString(b64[:76] + "\r\n")
		b64 = b64[76:]
	}
	att.WriteString(b64 + "\r\n")
	utfSubject := "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte("Grüße, ünïcödé ✉ "+tok)) + "?="
	mails := map[string][]byte{
		"plain-" + tok: plainMail(from, to, "plain-"+tok, "Hello bob,\r\nplain text, trailing spaces   \r\n.leading dot\r\n\r\n-- \r\nalice\r\n"),
		"html-" + tok: fmt.Appendf(nil, "From: %s\r\nTo: %s\r\nSubject: html-%s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"+
			"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello *bob*\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Hello <b>bob</b> &amp; caf\xc3\xa9</p></body></html>\r\n--b1--\r\n", from, to, tok),
		utfSubject: fmt.Appendf(nil, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nKörper mit UTF-8: 日本語 ✓\r\n", from, to, utfSubject),
		"attach-" + tok: fmt.Appendf(nil, "From: %s\r\nTo: %s\r\nSubject: attach-%s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n"+
			"--b2\r\nContent-Type: text/plain\r\n\r\n5 MiB attached\r\n--b2\r\nContent-Type: application/octet-stream; name=\"r.bin\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"r.bin\"\r\n\r\n%s--b2--\r\n", from, to, tok, att.String()),
		"forged-" + tok: plainMail("Mallory <ceo@bank.example>", to, "forged-"+tok, "forged From\r\n"),
	}
	order := []string{"plain-" + tok, "html-" + tok, utfSubject, "attach-" + tok, "forged-" + tok}
	var raws [][]byte
	for _, k := range order {
		raws = append(raws, mails[k])
	}
	sent := time.Now()
	if out, err := n.sendRaw(t, n.alice, to, raws...); err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	t.Logf("smtplib submitted 5 mails (one of 5 MiB) in %v", time.Since(sent).Round(time.Millisecond))

	swaksBody := "sent by swaks " + tok + "\r\n"
	if _, err := exec.LookPath("swaks"); err == nil {
		out, err := exec.Command("swaks", "--server", n.alice.SMTP, "--auth-user", n.alice.Username, "--auth-password", n.alice.Password,
			"--from", from, "--to", to, "--header", "Subject: swaks-"+tok, "--body", swaksBody, "--silent", "2").CombinedOutput()
		if err != nil {
			t.Errorf("swaks: %v\n%s", err, out)
		}
	} else {
		t.Errorf("swaks not installed")
	}

	// Latency: one more small mail, SMTP 250 → IMAP SEARCH finds it at bob.
	out, err := n.py("sendwait", n.alice.json(), n.bob.json(), "latency-"+tok, "30")
	if err != nil {
		t.Errorf("latency mail: %v\n%s", err, out)
	} else {
		t.Logf("SMTP 250 at A → bob's IMAP sees it at C: %s s", strings.TrimSpace(out))
	}

	if out, err := n.py("wait", n.bob.json(), tok, "7", "90"); err != nil {
		t.Fatalf("not all 7 mails at bob within 90 s: %v %s", err, out)
	}
	t.Logf("all 7 mails at bob %v after the first submission", time.Since(sent).Round(time.Millisecond))

	msgs := n.fetchAll(t, n.bob)
	bySubject := map[string][]byte{}
	for _, m := range msgs {
		bySubject[headerValue(m, "Subject")] = m
	}
	for _, k := range order {
		got, ok := bySubject[k]
		if !ok {
			t.Errorf("no message with Subject %q at bob (have %d messages)", k, len(msgs))
			continue
		}
		if !bytes.Equal(bodyOf(got), bodyOf(mails[k])) {
			t.Errorf("%q: body differs: got %d bytes, sent %d", k, len(bodyOf(got)), len(bodyOf(mails[k])))
		}
		if f := headerValue(got, "From"); !strings.Contains(f, from) {
			t.Errorf("%q: From %q does not show alice's address %s", k, f, from)
		}
	}
	if f := headerValue(bySubject["forged-"+tok], "From"); strings.Contains(f, "bank.example") {
		t.Errorf("forged From shown to bob: %q", f)
	}
	if m, ok := bySubject["swaks-"+tok]; !ok {
		t.Errorf("swaks mail not at bob")
	} else if !strings.Contains(string(bodyOf(m)), "sent by swaks "+tok) {
		t.Errorf("swaks body %q", bodyOf(m))
	}

	// mbsync mirrors bob's INBOX into a Maildir.
	if _, err := exec.LookPath("mbsync"); err != nil {
		t.Errorf("mbsync not installed")
	} else {
		dir := t.TempDir()
		host, port, _ := strings.Cut(n.bob.IMAP, ":")
		rc := fmt.Sprintf("IMAPAccount asmtp\nHost %s\nPort %s\nUser %s\nPass %s\nTLSType None\nAuthMechs LOGIN\n\n"+
			"IMAPStore asmtp-remote\nAccount asmtp\n\nMaildirStore asmtp-local\nPath %s/Mail/\nInbox %s/Mail/INBOX\nSubFolders Verbatim\n\n"+
			"Channel asmtp\nFar :asmtp-remote:\nNear :asmtp-local:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n",
			host, port, n.bob.Username, n.bob.Password, dir, dir)
		os.MkdirAll(filepath.Join(dir, "Mail"), 0o700)
		rcFile := filepath.Join(dir, "mbsyncrc")
		os.WriteFile(rcFile, []byte(rc), 0o600)
		began := time.Now()
		mbsync := func() ([]byte, error) {
			cmd := exec.Command("mbsync", "-c", rcFile, "asmtp")
			cmd.Env = append(os.Environ(), "HOME="+dir)
			return cmd.CombinedOutput()
		}
		out, err := mbsync()
		if err != nil && bytes.Contains(out, []byte("'TLSType' is not recognized")) {
			// isync before 1.5 spells it SSLType (contrib/clients/mbsyncrc
			// uses the 1.5 keyword).
			t.Logf("this isync needs SSLType instead of TLSType: %s", bytes.TrimSpace(out))
			os.WriteFile(rcFile, []byte(strings.Replace(rc, "TLSType None", "SSLType None", 1)), 0o600)
			out, err = mbsync()
		}
		if err != nil {
			t.Errorf("mbsync: %v\n%s", err, out)
		}
		var files []string
		for _, sub := range []string{"cur", "new"} {
			ents, _ := os.ReadDir(filepath.Join(dir, "Mail", "INBOX", sub))
			for _, e := range ents {
				files = append(files, filepath.Join(dir, "Mail", "INBOX", sub, e.Name()))
			}
		}
		if len(files) < len(msgs) {
			t.Errorf("mbsync Maildir INBOX has %d files, IMAP INBOX %d messages", len(files), len(msgs))
		}
		found := 0
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if s := headerValue(b, "Subject"); mails[s] != nil {
				found++
				// A Maildir keeps the local (LF) line ends: mbsync
				// converts CRLF on the way in.
				if !bytes.Equal(bodyOf(b), bytes.ReplaceAll(bodyOf(mails[s]), []byte("\r\n"), []byte("\n"))) {
					t.Errorf("Maildir copy of %q differs", s)
				}
			}
		}
		if found != len(order) {
			t.Errorf("Maildir has %d of the %d smtplib mails", found, len(order))
		}
		t.Logf("mbsync mirrored %d messages in %v", len(files), time.Since(began).Round(time.Millisecond))
	}

	// A mail to an unknown passport id: SMTP may refuse it at once, or
	// accept it and bounce after the retry window.
	unknown := randHex(16) + "@asmtp"
	out, err = n.sendRaw(t, n.alice, unknown, plainMail(from, unknown, "unknown-"+tok, "nobody\r\n"))
	if err != nil {
		t.Logf("mail to unknown passport %s refused at submission: %s", unknown, strings.TrimSpace(out))
		return
	}
	// Accepted: the bounce comes only after the retry window
	// (outbound.DefaultRetryWindow, 4 days, not configurable), so the test
	// only checks that A retries it rather than sending it or dropping it.
	id, _, _ := strings.Cut(unknown, "@")
	var deferred, sentLine string
	wait.Until(t, 30*time.Second, "A's log to show the mail to the unknown passport deferred", func() bool {
		log, _ := os.ReadFile(filepath.Join(n.a.dir, "asmtpd.log"))
		deferred, sentLine = grepLine(log, "mail deferred", id), grepLine(log, "mail sent", id)
		return deferred != "" || sentLine != ""
	})
	if sentLine != "" {
		t.Errorf("mail to unknown passport reported sent: %s", sentLine)
		return
	}
	t.Logf("mail to unknown passport accepted, then deferred by A: %s", deferred)
}

// grepLine returns the first line of log containing all of subs.
func grepLine(log []byte, subs ...string) string {
	for _, l := range strings.Split(string(log), "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			return l
		}
	}
	return ""
}

// TestTwentyRecipientsAndBounce: one mail from alice to 20 recipients
// written in To, Cc and Bcc, ten on C (bob and contacts of alice's address
// book) and ten on A itself (unknown to alice: their passports are looked
// up); every recipient gets one copy, To and Cc as written, no Bcc, From
// alice's pseudo-address. Then a mail to a passport id nobody has bounces
// to alice's INBOX as an RFC 3464 report once alice's bridge.retry_window
// (20 s here) has passed.
func TestTwentyRecipientsAndBounce(t *testing.T) {
	t.Parallel()
	var onC, onA []mailAccount
	n := startMailNet(t, func(n *mailNet) {
		editConfig(t, n.a, [][2]string{{`retry_window: "96h"`, `retry_window: "20s"`}})
		for i := 1; i <= 9; i++ {
			a := n.accountAdd(t, n.c, fmt.Sprintf("c%02d", i))
			pp := filepath.Join(n.dir, a.Name+".passport")
			n.cliEnv(t, n.c, "account", "export-passport", "--config", n.c.config(), "--name", a.Name, "--output", pp)
			n.cliEnv(t, n.a, "contact", "add", "--config", n.a.config(), "--account", "alice", "--name", a.Name, "--passport", pp)
			onC = append(onC, a)
		}
		for i := 1; i <= 10; i++ {
			onA = append(onA, n.accountAdd(t, n.a, fmt.Sprintf("a%02d", i)))
		}
		for _, a := range append(onC, onA...) {
			p := n.c
			if strings.HasPrefix(a.Name, "a") {
				p = n.a
			}
			n.cliEnv(t, p, "contact", "add", "--config", p.config(), "--account", a.Name, "--name", "alice", "--passport", n.alicePassport)
		}
	})
	all := append(append([]mailAccount{n.bob}, onC...), onA...)
	if len(all) != 20 {
		t.Fatalf("%d recipients", len(all))
	}
	addrs := func(as []mailAccount) string {
		var s []string
		for _, a := range as {
			s = append(s, a.Address)
		}
		return strings.Join(s, ", ")
	}
	to, cc, bcc := all[:7], all[7:14], all[14:]
	tok := "twenty-" + randHex(4)
	body := "One mail, twenty recipients.\r\n"
	raw := fmt.Appendf(nil, "From: %s\r\nTo: %s\r\nCc: %s\r\nBcc: %s\r\nSubject: %s\r\n\r\n%s",
		n.alice.Address, addrs(to), addrs(cc), addrs(bcc), tok, body)
	var envelope []string
	for _, a := range all {
		envelope = append(envelope, a.Address)
	}
	sent := time.Now()
	if out, err := n.sendRaw(t, n.alice, strings.Join(envelope, ","), raw); err != nil {
		t.Fatalf("smtplib: %v %s", err, out)
	}
	var wg sync.WaitGroup
	for _, a := range all {
		wg.Go(func() {
			if out, err := n.py("wait", a.json(), tok, "1", "90"); err != nil {
				t.Errorf("%s (%s): %s", a.Name, a.Address, out)
			}
		})
	}
	wg.Wait()
	t.Logf("20 recipients (10 on C, 10 on A) have their copy %v after submission", time.Since(sent).Round(time.Millisecond))
	for _, a := range all {
		var got [][]byte
		for _, m := range n.fetchAll(t, a) {
			if headerValue(m, "Subject") == tok {
				got = append(got, m)
			}
		}
		if len(got) != 1 {
			t.Errorf("%s got %d copies", a.Name, len(got))
			continue
		}
		m := got[0]
		switch {
		case headerValue(m, "To") != addrs(to):
			t.Errorf("%s: To %q, want %q", a.Name, headerValue(m, "To"), addrs(to))
		case headerValue(m, "Cc") != addrs(cc):
			t.Errorf("%s: Cc %q, want %q", a.Name, headerValue(m, "Cc"), addrs(cc))
		case headerValue(m, "Bcc") != "" || bytes.Contains(m, []byte("\r\nBcc:")):
			t.Errorf("%s: the copy reveals Bcc", a.Name)
		case !strings.Contains(headerValue(m, "From"), n.alice.Address):
			t.Errorf("%s: From %q, want alice's address", a.Name, headerValue(m, "From"))
		case string(bodyOf(m)) != body:
			t.Errorf("%s: body %q", a.Name, bodyOf(m))
		}
	}

	var unknown [16]byte
	rand.Read(unknown[:])
	nobody := hex.EncodeToString(unknown[:]) + "@asmtp"
	btok := "bounce-" + randHex(4)
	if out, err := n.sendRaw(t, n.alice, nobody, plainMail(n.alice.Address, nobody, btok, "to nobody\r\n")); err != nil {
		t.Fatalf("mail to an unknown id refused at submission: %v %s", err, out)
	}
	queued := time.Now()
	const dsnSubject = "Undelivered Mail Returned to Sender"
	if out, err := n.py("wait", n.alice.json(), dsnSubject, "1", "90"); err != nil {
		t.Fatalf("no bounce in alice's INBOX: %s", out)
	}
	t.Logf("bounce in alice's INBOX %v after submission (retry window 20 s)", time.Since(queued).Round(time.Millisecond))
	var dsn []byte
	for _, m := range n.fetchAll(t, n.alice) {
		if headerValue(m, "Subject") == dsnSubject {
			dsn = m
		}
	}
	for _, want := range []string{"multipart/report", "report-type=delivery-status", "Action: failed", "Final-Recipient: rfc822; " + nobody, btok} {
		if !bytes.Contains(dsn, []byte(want)) {
			t.Errorf("bounce lacks %q:\n%.2000s", want, dsn)
		}
	}
}

// TestMuttUnderTmux: alice composes and sends in mutt, bob reads it in
// mutt over IMAP, both driven through tmux.
func TestMuttUnderTmux(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"mutt", "tmux"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	n := startMailNet(t)
	dir := t.TempDir()
	tok := randHex(4)
	subject := "mutt-" + tok
	body := "Hello bob from mutt " + tok

	editor := filepath.Join(dir, "editor.sh")
	os.WriteFile(editor, []byte("#!/bin/sh\nprintf '%s\\n' '"+body+"' > \"$1\"\n"), 0o700)
	rc := func(a mailAccount) string {
		f := filepath.Join(dir, a.Name+".muttrc")
		s := fmt.Sprintf("set my_user=%q\nset my_pass=%q\nset from=%q\nset realname=%q\n"+
			"set folder=\"imap://%s@%s/\"\nset imap_user=$my_user\nset imap_pass=$my_pass\nset spoolfile=\"+INBOX\"\n"+
			"set record=\"\"\nset postponed=\"+Drafts\"\nset imap_check_subscribed\nset mail_check=2\nset timeout=2\n"+
			"set smtp_url=\"smtp://%s@%s/\"\nset smtp_pass=$my_pass\nset ssl_starttls=no\nset ssl_force_tls=no\n"+
			"set editor=%q\nset edit_headers=no\nset autoedit=no\nset fast_reply=no\nset askcc=no\nset askbcc=no\nset copy=no\nset confirmappend=no\nset sort=date\n"+
			"set header_cache=\"\"\nset message_cachedir=\"\"\nset certificate_file=%q\n",
			a.Username, a.Password, a.Address, a.Name, a.Username, a.IMAP, a.Username, a.SMTP, editor, filepath.Join(dir, "certs"))
		os.WriteFile(f, []byte(s), 0o600)
		return f
	}
	aliceRC, bobRC := rc(n.alice), rc(n.bob)

	sock := filepath.Join(dir, "tmux.sock")
	tmux := func(args ...string) (string, error) {
		out, err := exec.Command("tmux", append([]string{"-S", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { tmux("kill-server") })
	waitPane := func(session, want string, timeout time.Duration) (string, bool) {
		var last string
		ok := wait.Poll(timeout, func() bool {
			last, _ = tmux("capture-pane", "-p", "-t", session)
			return strings.Contains(last, want)
		})
		return last, ok
	}
	env := "HOME=" + dir + " TERM=xterm-256color "
	if out, err := tmux("new-session", "-d", "-s", "alice", "-x", "200", "-y", "50", env+"mutt -n -F "+aliceRC); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	if pane, ok := waitPane("alice", "INBOX", 20*time.Second); !ok {
		t.Fatalf("alice's mutt did not open INBOX:\n%s", pane)
	}
	tmux("send-keys", "-t", "alice", "m")
	if pane, ok := waitPane("alice", "To:", 10*time.Second); !ok {
		t.Fatalf("no To: prompt:\n%s", pane)
	}
	tmux("send-keys", "-t", "alice", "-l", n.bob.Address)
	tmux("send-keys", "-t", "alice", "Enter")
	if pane, ok := waitPane("alice", "Subject:", 10*time.Second); !ok {
		t.Fatalf("no Subject: prompt:\n%s", pane)
	}
	tmux("send-keys", "-t", "alice", "-l", subject)
	tmux("send-keys", "-t", "alice", "Enter")
	if pane, ok := waitPane("alice", "y:Send", 10*time.Second); !ok {
		t.Fatalf("no compose menu:\n%s", pane)
	}
	sent := time.Now()
	tmux("send-keys", "-t", "alice", "y")
	if pane, ok := waitPane("alice", "Mail sent", 20*time.Second); !ok {
		t.Fatalf("mutt did not report the mail sent:\n%s", pane)
	}
	t.Logf("alice's mutt sent the mail in %v", time.Since(sent).Round(time.Millisecond))
	tmux("send-keys", "-t", "alice", "q")

	if out, err := n.py("wait", n.bob.json(), subject, "1", "60"); err != nil {
		t.Fatalf("mutt's mail not at bob within 60 s: %s", out)
	}
	t.Logf("mutt's mail at bob's IMAP %v after send", time.Since(sent).Round(time.Millisecond))

	if out, err := tmux("new-session", "-d", "-s", "bob", "-x", "200", "-y", "50", env+"mutt -n -F "+bobRC); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	pane, ok := waitPane("bob", subject, 20*time.Second)
	if !ok {
		t.Fatalf("bob's mutt index does not show %q:\n%s", subject, pane)
	}
	// Find the message by its subject (mutt's / search) and open it.
	tmux("send-keys", "-t", "bob", "/")
	tmux("send-keys", "-t", "bob", "-l", subject)
	tmux("send-keys", "-t", "bob", "Enter")
	time.Sleep(300 * time.Millisecond)
	tmux("send-keys", "-t", "bob", "Enter")
	if pane, ok := waitPane("bob", body, 10*time.Second); !ok {
		t.Errorf("bob's mutt pager does not show the body:\n%s", pane)
	} else if !strings.Contains(pane, n.alice.Address) {
		t.Errorf("bob's mutt pager does not show alice's address:\n%s", pane)
	}
	tmux("send-keys", "-t", "bob", "q")
	tmux("send-keys", "-t", "bob", "q")
}

// TestKill9DuringSubmissions: 100 submissions from alice while A is
// killed with SIGKILL after about 40 acknowledgements; after A restarts,
// every acknowledged mail arrives at bob exactly once, and none twice.
func TestKill9DuringSubmissions(t *testing.T) {
	t.Parallel()
	n := startMailNet(t)
	tok := "k9" + randHex(3)
	cmd := exec.Command("python3", n.tool, "burst", n.alice.json(), n.bob.Address, tok, "100")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	var failed []string
	began := time.Now()
	var killedAt time.Duration
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] == "done" {
			continue
		}
		if f[1] == "250" {
			acked[f[0]] = true
			if len(acked) == 40 && killedAt == 0 {
				n.a.kill(t)
				killedAt = time.Since(began)
			}
		} else {
			failed = append(failed, f[0])
		}
	}
	cmd.Wait()
	t.Logf("%d acknowledged, %d refused; A killed %v into the burst", len(acked), len(failed), killedAt.Round(time.Millisecond))
	if killedAt == 0 {
		t.Fatalf("fewer than 40 submissions acknowledged")
	}
	restarted := time.Now()
	n.a.start(t)
	n.a.waitListening(t)

	// counts maps the burst's mail ids at bob to how often each arrived.
	var counts map[string]int
	countAtBob := func() {
		counts = map[string]int{}
		for s, c := range n.subjectCounts(t, n.bob) {
			if id, ok := strings.CutPrefix(s, tok+"-"); ok {
				counts[id] += c
			}
		}
	}
	missing := func() string {
		var ids []string
		for id := range acked {
			if counts[id] == 0 {
				ids = append(ids, id)
			}
		}
		return strings.Join(ids, " ")
	}
	wait.Until(t, 120*time.Second, "every acknowledged mail at bob after A's restart", func() bool {
		countAtBob()
		return missing() == ""
	}, func() string { return "missing: " + missing() })
	t.Logf("all %d acknowledged mails at bob %v after A's restart", len(acked), time.Since(restarted).Round(time.Millisecond))
	// A late duplicate would show up within seconds of the last mail.
	twice := func() string {
		var ids []string
		for id, c := range counts {
			if c > 1 {
				ids = append(ids, fmt.Sprintf("%s (%d times)", id, c))
			}
		}
		return strings.Join(ids, " ")
	}
	wait.Never(t, 5*time.Second, "a mail arrived twice", func() bool {
		countAtBob()
		return twice() != ""
	}, twice)
	extra := 0
	for id := range counts {
		if !acked[id] {
			extra++
		}
	}
	t.Logf("unacknowledged mails that arrived anyway (allowed, once): %d", extra)
}

// TestRecipientOfflineTwoMinutes: bob's node stopped, 10 mails sent,
// bob's node started again after the gap: all 10 arrive, once each.
func TestRecipientOfflineTwoMinutes(t *testing.T) {
	t.Parallel()
	gap := 2 * time.Minute
	if s := os.Getenv("ASMTP_E2E_OFFLINE_GAP"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		gap = d
	}
	n := startMailNet(t)
	tok := "off" + randHex(3)
	n.c.stop(t)
	stopped := time.Now()
	var raws [][]byte
	for i := range 10 {
		raws = append(raws, plainMail(n.alice.Address, n.bob.Address, fmt.Sprintf("%s-%02d", tok, i), fmt.Sprintf("offline mail %d\r\n", i)))
	}
	if out, err := n.sendRaw(t, n.alice, n.bob.Address, raws...); err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	time.Sleep(time.Until(stopped.Add(gap)))
	n.c.start(t)
	n.c.waitListening(t)
	restarted := time.Now()
	t.Logf("bob's node C was down %v", restarted.Sub(stopped).Round(time.Millisecond))
	if out, err := n.py("wait", n.bob.json(), tok, "10", "120"); err != nil {
		t.Fatalf("not all 10 mails at bob 120 s after C's restart: %s", out)
	}
	t.Logf("all 10 at bob %v after C's restart", time.Since(restarted).Round(time.Millisecond))
	// A late duplicate would show up within seconds of the last mail.
	var counts map[string]int
	twice := func() string {
		var subjects []string
		for i := range 10 {
			if s := fmt.Sprintf("%s-%02d", tok, i); counts[s] != 1 {
				subjects = append(subjects, fmt.Sprintf("%s (%d times)", s, counts[s]))
			}
		}
		return strings.Join(subjects, " ")
	}
	wait.Never(t, 5*time.Second, "a mail not arrived exactly once", func() bool {
		counts = n.subjectCounts(t, n.bob)
		return twice() != ""
	}, twice)
}

const mailTool = `
import sys, json, smtplib, imaplib, time, base64, email.header

def hp(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)

def imap(a):
    m = imaplib.IMAP4(*hp(a["imap"]))
    m.login(a["username"], a["password"])
    typ, data = m.select("INBOX")
    assert typ == "OK", data
    return m

def search(m, token):
    typ, data = m.search(None, "SUBJECT", '"%s"' % token)
    assert typ == "OK", data
    return data[0].split()

def smtp(a):
    s = smtplib.SMTP(*hp(a["smtp"]), timeout=30)
    s.login(a["username"], a["password"])
    return s

cmd = sys.argv[1]
if cmd == "send":
    a = json.loads(sys.argv[2]); to = sys.argv[3]
    s = smtp(a)
    for f in sys.argv[4:]:
        s.sendmail(a["address"], to.split(","), open(f, "rb").read())
    s.quit()
    print("ok")
elif cmd == "count":
    m = imap(json.loads(sys.argv[2]))
    typ, data = m.search(None, sys.argv[3])
    print(len(data[0].split()))
    m.logout()
elif cmd == "wait":
    a = json.loads(sys.argv[2]); token = sys.argv[3]; n = int(sys.argv[4]); limit = time.time() + float(sys.argv[5])
    m = imap(a)
    while True:
        got = len(search(m, token))
        if got >= n:
            print(got); break
        if time.time() > limit:
            print("have %d of %d" % (got, n)); sys.exit(1)
        time.sleep(0.1)
        m.noop()
elif cmd == "sendwait":
    a = json.loads(sys.argv[2]); b = json.loads(sys.argv[3]); subject = sys.argv[4]; limit = float(sys.argv[5])
    m = imap(b)
    s = smtp(a)
    msg = "From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nlatency\r\n" % (a["address"], b["address"], subject)
    s.sendmail(a["address"], [b["address"]], msg.encode())
    t0 = time.time()
    s.quit()
    while not search(m, subject):
        if time.time() - t0 > limit:
            print("timeout"); sys.exit(1)
        time.sleep(0.02)
        m.noop()
    print("%.3f" % (time.time() - t0))
elif cmd == "fetch":
    m = imap(json.loads(sys.argv[2]))
    typ, data = m.search(None, "ALL")
    out = []
    for num in data[0].split():
        typ, d = m.fetch(num, "(BODY.PEEK[])")
        out.append(base64.b64encode(d[0][1]).decode())
    print(json.dumps(out))
elif cmd == "subjects":
    m = imap(json.loads(sys.argv[2]))
    typ, data = m.search(None, "ALL")
    out = []
    if data[0]:
        typ, d = m.fetch(b",".join(data[0].split()), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        for part in d:
            if isinstance(part, tuple):
                h = part[1].decode("utf-8", "replace").strip()
                out.append(h.split(":", 1)[1].strip() if ":" in h else "")
    print(json.dumps(out))
elif cmd == "burst":
    a = json.loads(sys.argv[2]); to = sys.argv[3]; tok = sys.argv[4]; n = int(sys.argv[5])
    s = None
    for i in range(n):
        sid = "%03d" % i
        msg = "From: %s\r\nTo: %s\r\nSubject: %s-%s\r\n\r\nburst %s\r\n" % (a["address"], to, tok, sid, sid)
        try:
            if s is None:
                s = smtp(a)
            s.sendmail(a["address"], [to], msg.encode())
            print(sid, "250", flush=True)
        except Exception as e:
            print(sid, "failed", repr(e).replace("\n", " "), flush=True)
            try:
                s.close()
            except Exception:
                pass
            s = None
    print("done", "end", flush=True)
`
