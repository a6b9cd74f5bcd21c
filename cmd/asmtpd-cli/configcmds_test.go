package main

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/cmd/internal/config"
)

func runCLI(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.Execute()
	return out.String(), err
}

func TestDefaultConfigPrintsTheTemplate(t *testing.T) {
	out, err := runCLI(t, "default-config")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(config.Template) {
		t.Error("default-config does not print config.Template")
	}
}

func TestMakeGossip(t *testing.T) {
	// PROTOCOL.md §10: entropy 00 01 … 3f, password "asmtp".
	const id = "78f6b1cc94b56c934b8df791c8a8362e72b3decd8fbb0e132d2148a358ebf4e8"
	entropy := make([]byte, 64)
	for i := range entropy {
		entropy[i] = byte(i)
	}
	dir := t.TempDir()
	cfg := "secret:\n  entropy: entropy.txt\n  public_id: " + id + "\n" +
		"network:\n  listen_address: \"0.0.0.0:9800\"\n  public_address: \"198.51.100.7:9801\"\n"
	files := map[string]string{"entropy.txt": hex.EncodeToString(entropy), "config.yaml": cfg}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "config.yaml")

	before := gossip.FromTime(time.Now())
	out, err := runCLI(t, "make-gossip", "--config", path, "--password", "asmtp")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("output %q is not hex: %v", out, err)
	}
	g, err := gossip.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if g.ID.String() != id || g.Addr.String() != "198.51.100.7:9801" || len(g.Subscriptions) != 0 || g.Time < before {
		t.Errorf("gossip id %s addr %s subs %d time %d, want %s, the public address, none, now", g.ID, g.Addr, len(g.Subscriptions), g.Time, id)
	}

	if _, err := runCLI(t, "make-gossip", "--config", path, "--password", "wrong"); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("make-gossip with a wrong password: %v, want a refusal", err)
	}
}
