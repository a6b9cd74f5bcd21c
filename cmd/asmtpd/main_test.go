package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr string
	}{
		{name: "config only", args: []string{"--config", "c.yaml"},
			want: options{configPath: "c.yaml", logLevel: slog.LevelInfo}},
		{name: "empty password is a password", args: []string{"--config", "c.yaml", "--password", ""},
			want: options{configPath: "c.yaml", passwordSet: true, logLevel: slog.LevelInfo}},
		{name: "log level", args: []string{"--config=c.yaml", "--log-level", "debug"},
			want: options{configPath: "c.yaml", logLevel: slog.LevelDebug}},
		{name: "no config: run from the default data directory", args: nil,
			want: options{logLevel: slog.LevelInfo}},
		{name: "data directory", args: []string{"--data-dir", "d"},
			want: options{dataDir: "d", logLevel: slog.LevelInfo}},
		{name: "config and data directory", args: []string{"--config", "c.yaml", "--data-dir", "d"}, wantErr: "exclude each other"},
		{name: "bad level", args: []string{"--config", "c.yaml", "--log-level", "loud"}, wantErr: "log-level"},
		{name: "stray argument", args: []string{"--config", "c.yaml", "run"}, wantErr: `unexpected argument "run"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("options = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestKeyPasswordSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte(" from file \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ASMTPD_KEY_PASSWORD", "from env")
	tests := []struct {
		name string
		opts options
		want string
	}{
		{"flag wins", options{password: "from flag", passwordSet: true, passwordFile: file}, "from flag"},
		{"file keeps inner spaces, drops the newline", options{passwordFile: file}, " from file "},
		{"environment", options{}, "from env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.keyPassword(io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("password = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRefusesAnotherIdentity: with secret.public_id set, a wrong password
// stops the daemon before it opens storage or listens.
func TestRefusesAnotherIdentity(t *testing.T) {
	dir := t.TempDir()
	entropy := strings.Repeat("ab", 64)
	cfg := "secret:\n  entropy: entropy.txt\n  public_id: " + strings.Repeat("00", 32) + "\n"
	for name, data := range map[string]string{"entropy.txt": entropy, "config.yaml": cfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts := options{configPath: filepath.Join(dir, "config.yaml"), password: "pw", passwordSet: true}
	err := run(context.Background(), func() {}, opts, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("run = %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "asmtpd.db")); !os.IsNotExist(err) {
		t.Errorf("the refused node created its database (stat: %v)", err)
	}
}

func TestRejectsUnknownKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte("network:\n  listen_adress: \"[::1]:9800\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), func() {}, options{configPath: path}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "config.yaml:2: network.listen_adress: unknown key") {
		t.Fatalf("run = %v, want the unknown key named with its line", err)
	}
}
