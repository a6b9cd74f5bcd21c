package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFirstRun runs the README's command as a newcomer would, in an empty
// data directory, with ports of its choice (by flag, and one by
// environment): asmtpd makes its files with those ports in the config,
// prints the six settings lines, and a real IMAP client (Python's imaplib)
// logs in with them. A second start reuses everything and prints nothing.
func TestFirstRun(t *testing.T) {
	bin := buildBinaries(t)
	home := filepath.Join(t.TempDir(), "asmtpd")
	env := append(os.Environ(), "ASMTPD_HOME="+home)
	env = withoutEnv(env, "ASMTPD_KEY_PASSWORD")
	ports := map[string]string{}
	for _, k := range []string{"listen", "imap", "smtp", "carddav"} {
		ports[k] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	args := []string{"--listen", ports["listen"], "--imap-listen", ports["imap"], "--smtp-listen", ports["smtp"]}
	env = append(env, "ASMTPD_CARDDAV_LISTEN="+ports["carddav"])

	settings, stop := startFirstRun(t, bin, env, args...)
	for _, key := range []string{"address", "imap", "smtp", "carddav", "username", "password"} {
		if settings[key] == "" {
			t.Fatalf("no %q line in %v", key, settings)
		}
	}
	if settings["imap"] != ports["imap"] || settings["smtp"] != ports["smtp"] || settings["carddav"] != "http://"+ports["carddav"]+"/" {
		t.Errorf("settings %v, want the chosen ports %v", settings, ports)
	}
	cfg, err := os.ReadFile(filepath.Join(home, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for key, k := range map[string]string{"listen_address": "listen", "imap_listen_address": "imap", "smtp_listen_address": "smtp", "carddav_listen_address": "carddav"} {
		if !strings.Contains(string(cfg), fmt.Sprintf("\n  %s: %q\n", key, ports[k])) {
			t.Errorf("config.yaml has no %s: %q", key, ports[k])
		}
	}
	resp, err := http.Get(settings["carddav"] + "autoconfig/asmtp")
	if err != nil {
		t.Fatal(err)
	}
	xml, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, imapPort, _ := strings.Cut(ports["imap"], ":")
	if !strings.Contains(string(xml), "<port>"+imapPort+"</port>") {
		t.Errorf("autoconfig lacks the chosen IMAP port %s:\n%s", imapPort, xml)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}@asmtp$`).MatchString(settings["address"]) {
		t.Errorf("address %q", settings["address"])
	}
	for _, f := range []string{"config.yaml", "entropy.txt", "key-password", "asmtpd.db", "bridge/bridge.db", "bridge/mail.db"} {
		fi, err := os.Stat(filepath.Join(home, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
		} else if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: readable by others", f, fi.Mode().Perm())
		}
	}
	login := exec.Command("python3", "-c", `
import imaplib, sys
host, port = sys.argv[1].rsplit(":", 1)
for user in (sys.argv[2], sys.argv[3].upper()):
    m = imaplib.IMAP4(host, int(port))
    m.login(user, sys.argv[4])
    typ, data = m.select("INBOX")
    assert typ == "OK", data
    m.logout()
print("ok")
`, settings["imap"], settings["username"], settings["address"], settings["password"])
	if out, err := login.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("imaplib login with the printed settings: %v\n%s", err, out)
	}
	stop()

	again, stop := startFirstRun(t, bin, env, args...)
	stop()
	if len(again) != 0 {
		t.Errorf("second start printed settings again: %v", again)
	}
}

// startFirstRun starts asmtpd and returns the key: value lines it printed on
// stdout once its IMAP port answers, and a function that stops it cleanly.
func startFirstRun(t *testing.T, bin string, env []string, args ...string) (map[string]string, func()) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "asmtpd"), args...)
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "bridge started") {
				once = true
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("asmtpd did not start its bridge within 30 s")
	}
	// The settings are printed before the node starts; give the pipe a
	// moment to deliver them, and expect nothing after.
	settings := make(map[string]string)
	for grace := time.After(time.Second); len(settings) < 6; {
		select {
		case l := <-lines:
			if k, v, ok := strings.Cut(l, ": "); ok {
				settings[k] = v
			}
			continue
		case <-grace:
		}
		break
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		for range lines {
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("asmtpd after SIGTERM: %v", err)
		}
	}
	return settings, stop
}

// TestFirstRunPortTaken: with 127.0.0.1:1143 (the default IMAP port)
// taken, the first run stops before making anything, naming the flag that
// picks another port; with that flag's environment variable it starts.
func TestFirstRunPortTaken(t *testing.T) {
	bin := buildBinaries(t)
	if ln, err := net.Listen("tcp", "127.0.0.1:1143"); err == nil {
		t.Cleanup(func() { ln.Close() })
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("cannot take 127.0.0.1:1143: %v", err)
	} // else someone else has it: taken all the same
	home := filepath.Join(t.TempDir(), "asmtpd")
	env := withoutEnv(append(os.Environ(), "ASMTPD_HOME="+home), "ASMTPD_KEY_PASSWORD")
	env = withoutEnv(env, "ASMTPD_IMAP_LISTEN")
	others := []string{"--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--smtp-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--carddav-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t))}

	cmd := exec.Command(filepath.Join(bin, "asmtpd"), others...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "127.0.0.1:1143 for IMAP is in use by another program") ||
		!strings.Contains(string(out), "--imap-listen") || !strings.Contains(string(out), "$ASMTPD_IMAP_LISTEN") {
		t.Fatalf("first run with 1143 taken: %v\n%s\nwant an error naming --imap-listen", err, out)
	}
	if _, err := os.Stat(filepath.Join(home, "config.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("config.yaml after the failed first run: %v, want none", err)
	}
	t.Logf("asmtpd said: %s", strings.TrimSpace(string(out)))

	imap := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	settings, stop := startFirstRun(t, bin, append(env, "ASMTPD_IMAP_LISTEN="+imap), others...)
	stop()
	if settings["imap"] != imap {
		t.Errorf("settings %v, want imap %s", settings, imap)
	}

	// Later runs: the configuration holds the port, and the error says
	// which key to change.
	ln, err := net.Listen("tcp", imap)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd = exec.Command(filepath.Join(bin, "asmtpd"))
	cmd.Env = env
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another program listens on "+imap+"; choose another port for bridge.imap_listen_address in") {
		t.Errorf("start with the IMAP port taken: %v\n%s\nwant an error naming bridge.imap_listen_address", err, out)
	}
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}
