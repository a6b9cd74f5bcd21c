package main

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asmtp/asmtp/internal/wait"
)

// localNetOffsets are the ports contrib/local-network.sh listens on, above
// its base port: the three nodes, and IMAP, SMTP and CardDAV of A and C.
var localNetOffsets = []int{1, 2, 3, 11, 12, 13, 31, 32, 33}

// freeBase finds a base port whose network ports are all free.
func freeBase(t *testing.T) int {
	t.Helper()
	lo, hi := portWindow()
	for base := lo + int(time.Now().UnixNano()%int64((hi-lo)/2)); base+40 < hi; base += 40 {
		free := true
		for _, off := range localNetOffsets {
			if err := checkFree(fmt.Sprintf("127.0.0.1:%d", base+off)); err != nil {
				free = false
				break
			}
		}
		if free {
			return base
		}
	}
	t.Fatal("no free base port")
	return 0
}

// TestLocalNetworkScript runs contrib/local-network.sh with a base port:
// the nodes and the two accounts' mail and CardDAV ports are where its
// header says, and the relay B has no mail ports.
func TestLocalNetworkScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three asmtpd processes")
	}
	base := freeBase(t)
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "contrib", "local-network.sh")
	cmd := exec.Command("bash", script, "--base-port", fmt.Sprint(base), t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
	})
	printed := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Ctrl-C stops the network") {
				printed <- b.String()
			}
		}
		close(printed)
	}()
	var text string
	select {
	case text = <-printed:
	case <-time.After(90 * time.Second):
		t.Fatal("local-network.sh printed no settings within 90 s")
	}
	for _, want := range []string{
		fmt.Sprintf("imap: 127.0.0.1:%d\n", base+11), fmt.Sprintf("smtp: 127.0.0.1:%d\n", base+12),
		fmt.Sprintf("carddav: http://127.0.0.1:%d/\n", base+13),
		fmt.Sprintf("imap: 127.0.0.1:%d\n", base+31), fmt.Sprintf("carddav: http://127.0.0.1:%d/\n", base+33),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("local-network.sh printed no %q:\n%s", want, text)
		}
	}
	for _, off := range localNetOffsets {
		addr := fmt.Sprintf("127.0.0.1:%d", base+off)
		wait.Until(t, 20*time.Second, addr+" listening", func() bool {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	for _, off := range []int{21, 22, 23} {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", base+off), time.Second); err == nil {
			c.Close()
			t.Errorf("relay B listens on base+%d: it has no accounts", off)
		}
	}
}
