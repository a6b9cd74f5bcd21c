package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/internal/wait"
)

// openPTY opens a pseudo-terminal pair (Linux /dev/ptmx).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open pty: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 200}); err != nil {
		t.Fatalf("pty size: %v", err)
	}
	return m, s
}

// screen accumulates what the program writes to the terminal, with the
// carriage returns and escape sequences of line editing removed.
type screen struct {
	mu   sync.Mutex
	text strings.Builder
	read int // how far expect has consumed
}

func (s *screen) copyFrom(master *os.File) {
	buf := make([]byte, 4096)
	for {
		n, err := master.Read(buf)
		s.mu.Lock()
		s.text.Write(buf[:n])
		s.mu.Unlock()
		if err != nil {
			return // EIO once the program exits
		}
	}
}

func (s *screen) clean() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	text := regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`).ReplaceAllString(s.text.String(), "")
	return strings.ReplaceAll(text, "\r", "")
}

// expect waits until want appears after what earlier expects consumed.
func (s *screen) expect(t *testing.T, want string) string {
	t.Helper()
	var text string
	i := -1
	wait.Until(t, 15*time.Second, fmt.Sprintf("the terminal to show %q", want), func() bool {
		text = s.clean()
		i = strings.Index(text[s.read:], want)
		return i >= 0
	}, func() string { return "it shows:\n" + text[s.read:] })
	seen := text[s.read : s.read+i+len(want)]
	s.read += i + len(want)
	return seen
}

// The interactive prompt in a pseudo-terminal: info, sync (with a message
// waiting), line editing and history, a message pushed live while
// connected, message through a scripted $EDITOR, and open. The contact then receives what was typed in the editor.
func TestPromptInPseudoTerminal(t *testing.T) {
	alice, bob := newDevice(t, "alice"), newDevice(t, "bob")
	aliceKey, alicePassport := alice.identity()
	bobKey, _ := bob.identity()
	n := startNode(t, []keys.PublicKey{aliceKey, bobKey})
	alice.useNode(n)
	bob.useNode(n)
	introduce(t, alice, "alice", bob, "bob")
	alice.must("sync")
	bob.must("sync")
	bob.must("send", "--to", "alice", "--file", writeFile(t, "note.txt", "Note from Bob\nCall me when you can.\n"))

	editor := writeFile(t, "editor.sh", "#!/bin/sh\nprintf 'Subject: Written in the editor\\n\\nHello Bob, from the prompt.\\n' > \"$1\"\n")
	if err := os.Chmod(editor, 0o700); err != nil {
		t.Fatal(err)
	}
	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.Command(os.Args[0], "--dir", alice.dir, "--timeout", "3s")
	cmd.Env = append(os.Environ(),
		runMainEnv+"=1",
		envPassphrase+"="+testPassphrase,
		envRemoteAddress+"="+alice.env[envRemoteAddress],
		envRemoteID+"="+alice.env[envRemoteID],
		"EDITOR="+editor,
		"VISUAL=",
	)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()
	var scr screen
	go scr.copyFrom(master)
	typeIn := func(keys string) {
		if _, err := master.WriteString(keys); err != nil {
			t.Fatal(err)
		}
	}

	prompt := "(" + alicePassport[:8] + ") "
	scr.expect(t, "Type help for the commands.")
	scr.expect(t, prompt)

	// Line editing: "ifo", two steps left, "n" makes "info".
	typeIn("ifo\x1b[D\x1b[Dn\r")
	scr.expect(t, "device key: "+aliceKey.String())
	scr.expect(t, "bob ")

	typeIn("sync\r")
	scr.expect(t, " bob Note from Bob")
	scr.expect(t, "You have 1 new message(s).")
	// History: up arrow recalls sync; nothing comes twice.
	typeIn("\x1b[A\r")
	scr.expect(t, prompt+"sync")
	scr.expect(t, "You have 0 new message(s).")

	// Live push: while connected, a new message shows up by itself.
	bob.must("send", "--to", "alice", "--file", writeFile(t, "live.txt", "Pushed live\n"))
	scr.expect(t, " bob Pushed live")

	typeIn("message bob\r")
	scr.expect(t, "sent ")

	typeIn("open bob\r")
	scr.expect(t, "message [1-2 or id]: ")
	typeIn("1\r")
	scr.expect(t, "From:     bob <")
	scr.expect(t, "Call me when you can.")

	typeIn("help\r")
	scr.expect(t, "exit, quit, q")
	typeIn("q\r")
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("asmtp-cli exited with %v:\n%s", err, scr.clean())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("asmtp-cli did not exit after q:\n%s", scr.clean())
	}

	// Bob gets what the editor wrote.
	got := bob.must("sync")
	if !regexp.MustCompile(`^\S+ alice Written in the editor\n$`).MatchString(got) {
		t.Fatalf("Bob's sync printed %q", got)
	}
	list := strings.Fields(bob.must("list"))
	if body := bob.must("read", list[0]); !strings.Contains(body, "Hello Bob, from the prompt.") {
		t.Fatalf("Bob reads:\n%s", body)
	}
}
