package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// run executes asmtpd-cli in-process with args and returns stdout and the error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

const upstreamGossip = "80007353f1e7fb03b2346638b4e2b93f810c84853787970be0844df63cdc9979a01d0221561d561f667d26482dc49b0ef76a32f94aeecb4c01191510ca8ec977bd714545888ad0117fa81a176922927114db64cbc6666d2fa2877207baabe0080489fac7c054335c68fcc90d"

func TestGenerateNewKeyThenPublicID(t *testing.T) {
	t.Setenv(passwordEnv, "")
	path := filepath.Join(t.TempDir(), "entropy.txt")
	out, err := run(t, "generate-new-key", "--entropy-output", path, "--password", "hunter2")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^Public Identity: ([0-9a-f]{64})\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output %q", out)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("entropy file mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if !regexp.MustCompile(`^[0-9a-f]{128}$`).Match(b) {
		t.Errorf("entropy file %q: want 128 lowercase hex characters, no newline", b)
	}

	again, err := run(t, "public-id", "--entropy", path, "--password", "hunter2")
	if err != nil || again != out {
		t.Errorf("public-id = %q, %v; want %q", again, err, out)
	}
	t.Setenv(passwordEnv, "hunter2")
	if env, err := run(t, "public-id", "--entropy", path); err != nil || env != out {
		t.Errorf("public-id from %s = %q, %v; want %q", passwordEnv, env, err, out)
	}
	if other, _ := run(t, "public-id", "--entropy", path, "--password", "other"); other == out {
		t.Error("another password derived the same identity")
	}
	if _, err := run(t, "generate-new-key", "--entropy-output", path, "--password", "x"); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second generate-new-key on the same file: %v", err)
	}
}

func TestTopic(t *testing.T) {
	const a, b = "7353f1e7fb03b2346638b4e2b93f810c84853787970be0844df63cdc9979a01d", "cf71feb4eb176849217727f286a9c87c80b071b23084d0013334d59786605a24"
	const want = "c36c548f1edf99c501ea0e51ccda1eb7781ad959907bc8abff68993cb6bddc99\n"
	for _, args := range [][]string{{a, b}, {b, a}} {
		if out, err := run(t, append([]string{"topic"}, args...)...); err != nil || out != want {
			t.Errorf("topic %v = %q, %v", args, out, err)
		}
	}
	if _, err := run(t, "topic", a, "cf71"); err == nil {
		t.Error("short key accepted")
	}
}

func TestDecodeGossip(t *testing.T) {
	out, err := run(t, "decode-gossip", upstreamGossip)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"id: 7353f1e7fb03b2346638b4e2b93f810c84853787970be0844df63cdc9979a01d\n",
		"address: 86.31.102.125:9800\n",
		"time: 2021-02-17 15:32:45 UTC\n",
		"signature: valid\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	flipped := []byte(upstreamGossip)
	flipped[len(flipped)-1] = 'e'
	for _, c := range []struct{ name, in, want string }{
		{"flipped signature byte", string(flipped), "invalid signature"},
		{"truncated", upstreamGossip[:len(upstreamGossip)-2], "bytes"},
		{"not hex", "zz", "not hex"},
	} {
		out, err := run(t, "decode-gossip", c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(out, "valid") {
			t.Errorf("%s: out %q, err %v; want an error containing %q", c.name, out, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", c.name, err)
		}
	}
}
