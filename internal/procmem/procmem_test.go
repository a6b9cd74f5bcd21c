package procmem

import (
	"os"
	"runtime/debug"
	"testing"
)

// Touching 64 MiB raises the resident set's peak by as much; ResetPeak
// brings the peak back to the resident set once they are freed.
func TestPeak(t *testing.T) {
	debug.FreeOSMemory()
	idle := MustResetPeak(t, Self)
	if idle <= 0 {
		t.Fatalf("resident set %d bytes", idle)
	}
	b := make([]byte, 64<<20)
	for i := range b {
		b[i] = 1
	}
	peak := MustStatus(t, Self, "VmHWM")
	if peak-idle < 60<<20 {
		t.Errorf("peak %d MiB after touching 64 MiB from %d MiB", peak>>20, idle>>20)
	}
	if n, err := Status(os.Getpid(), "VmHWM"); err != nil || n < peak {
		t.Errorf("the same process by pid: %d, %v", n, err)
	}
	b = nil
	debug.FreeOSMemory()
	after := MustResetPeak(t, Self)
	if p := MustStatus(t, Self, "VmHWM"); p > after+8<<20 {
		t.Errorf("peak %d MiB after a reset at %d MiB", p>>20, after>>20)
	}
	if _, err := Status(Self, "NoSuchField"); err == nil {
		t.Error("a field status does not have was read")
	}
}
