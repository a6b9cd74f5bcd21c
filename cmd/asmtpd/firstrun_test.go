package main

import (
	"bufio"
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
// data directory: asmtpd makes its files, prints the five settings lines,
// and a real IMAP client (Python's imaplib) logs in with them. A second
// start reuses everything and prints nothing.
func TestFirstRun(t *testing.T) {
	bin := buildBinaries(t)
	home := filepath.Join(t.TempDir(), "asmtpd")
	env := append(os.Environ(), "ASMTPD_HOME="+home)
	env = withoutEnv(env, "ASMTPD_KEY_PASSWORD")

	settings, stop := startFirstRun(t, bin, env)
	for _, key := range []string{"address", "imap", "smtp", "username", "password"} {
		if settings[key] == "" {
			t.Fatalf("no %q line in %v", key, settings)
		}
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

	again, stop := startFirstRun(t, bin, env)
	stop()
	if len(again) != 0 {
		t.Errorf("second start printed settings again: %v", again)
	}
}

// startFirstRun starts asmtpd and returns the key: value lines it printed on
// stdout once its IMAP port answers, and a function that stops it cleanly.
func startFirstRun(t *testing.T, bin string, env []string) (map[string]string, func()) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "asmtpd"))
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
	for grace := time.After(time.Second); len(settings) < 5; {
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

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}
