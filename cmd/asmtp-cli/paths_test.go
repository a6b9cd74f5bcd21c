package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestStatePaths(t *testing.T) {
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		t.Skip("XDG directories are for Unix other than macOS")
	}
	tests := []struct {
		name    string
		dir     string
		env     map[string]string
		key, db string
	}{
		{"xdg", "", map[string]string{"XDG_CONFIG_HOME": "/c", "XDG_DATA_HOME": "/d", "HOME": "/h"}, "/c/asmtp/asmtp-cli.key", "/d/asmtp/asmtp-cli.db"},
		{"home", "", map[string]string{"HOME": "/h"}, "/h/.config/asmtp/asmtp-cli.key", "/h/.local/share/asmtp/asmtp-cli.db"},
		{"--dir", "/x", map[string]string{"XDG_CONFIG_HOME": "/c", "HOME": "/h"}, "/x/asmtp-cli.key", "/x/asmtp-cli.db"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := statePaths(tc.dir, func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if p.keyFile != tc.key || p.db != tc.db {
				t.Errorf("paths %+v, want %s and %s", p, tc.key, tc.db)
			}
		})
	}
	if _, err := statePaths("", func(string) string { return "" }); err == nil {
		t.Error("no error without HOME")
	}
}

// The first run creates private directories and files.
func TestStateIsPrivate(t *testing.T) {
	root := t.TempDir()
	env := map[string]string{"XDG_CONFIG_HOME": filepath.Join(root, "config"), "XDG_DATA_HOME": filepath.Join(root, "data"), envPassphrase: testPassphrase}
	a := &app{getenv: func(k string) string { return env[k] }, stderr: io.Discard}
	p, created, err := a.openProfile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if created == nil {
		t.Fatal("first run did not create the secrets")
	}
	for path, want := range map[string]os.FileMode{
		p.paths.keyFile:               0o600,
		p.paths.db:                    0o600,
		filepath.Dir(p.paths.keyFile): 0o700 | os.ModeDir,
		filepath.Dir(p.paths.db):      0o700 | os.ModeDir,
	} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode() & (os.ModeDir | os.ModePerm); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
	}
}
