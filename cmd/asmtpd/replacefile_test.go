package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplaceFileWriteError fills the disk for replaceFile: the test binary
// runs itself under prlimit with a file size limit of 16 bytes, so the
// write of a longer file fails as on a full disk. replaceFile must report
// it and leave the file it replaces as it was, never a truncated copy.
func TestReplaceFileWriteError(t *testing.T) {
	if path := os.Getenv("ASMTPD_REPLACEFILE_TEST"); path != "" {
		err := replaceFile(path, bytes.Repeat([]byte("new config line\n"), 64))
		if err == nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("replaceFile: " + err.Error() + "\n")
		os.Exit(0)
	}
	prlimit, err := exec.LookPath("prlimit") // util-linux, in every Debian
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prlimit, "--fsize=16", os.Args[0], "-test.run=^TestReplaceFileWriteError$")
	cmd.Env = append(os.Environ(), "ASMTPD_REPLACEFILE_TEST="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("replaceFile reported no error on a failed write (%v): %s", err, out)
	}
	if !strings.Contains(string(out), "replaceFile: write "+path) {
		t.Errorf("error does not name the file: %s", out)
	}
	if got, _ := os.ReadFile(path); string(got) != "old\n" {
		t.Errorf("%s is now %q, want the old content", path, got)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".config.yaml.*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}
