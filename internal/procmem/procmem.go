// Package procmem reads a Linux process's memory from /proc/PID/status,
// for the tests and benchmarks that bound it: the resident set (VmRSS),
// its anonymous and file-backed parts (RssAnon, RssFile) and its peak
// (VmHWM), which ResetPeak restarts from the current resident set.
package procmem

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Self names the calling process where a function takes a pid.
const Self = 0

func procDir(pid int) string {
	if pid == Self {
		return "/proc/self"
	}
	return "/proc/" + strconv.Itoa(pid)
}

// Status returns a "Field: N kB" line of the process's status, in bytes.
func Status(pid int, field string) (int64, error) {
	status, err := os.ReadFile(procDir(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s of process %d: %q", field, pid, line)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in %s/status", field, procDir(pid))
}

// ResetPeak makes the process's peak resident set (VmHWM) start again from
// its current resident set (clear_refs, Linux 4.0 and later).
func ResetPeak(pid int) error {
	return os.WriteFile(procDir(pid)+"/clear_refs", []byte("5"), 0)
}

// MustStatus is Status for tests: it fails t on an error.
func MustStatus(t testing.TB, pid int, field string) int64 {
	t.Helper()
	n, err := Status(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// MustResetPeak is ResetPeak for tests: it fails t on an error, and returns
// the resident set the peak starts from, in bytes.
func MustResetPeak(t testing.TB, pid int) int64 {
	t.Helper()
	if err := ResetPeak(pid); err != nil {
		t.Fatalf("reset the peak resident set: %v", err)
	}
	return MustStatus(t, pid, "VmRSS")
}
