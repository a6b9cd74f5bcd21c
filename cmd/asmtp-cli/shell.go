package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/term"
)

// The interactive prompt: upstream's commands over the same client the
// subcommands use. On a terminal it has line editing and history
// (x/term); otherwise it reads commands line by line, for scripts.

const shellHelp = `Commands:
  info                     this device, your passport, the node and your contacts
  sync                     fetch new messages (while connected they also arrive by themselves)
  message [CONTACT]        write a message in $EDITOR and send it
  open [CONTACT|ID]        read a message
  help, ?                  this list
  exit, quit, q            leave (Ctrl-D too)`

// shell is an interactive session.
type shell struct {
	a      *app
	p      *profile
	c      *client
	prompt string

	// The real standard streams, for $EDITOR.
	stdin          *os.File
	stdout, stderr io.Writer

	term   *term.Terminal // nil when standard input is not a terminal
	fd     int
	cooked *term.State // the terminal's state before raw mode
	lines  *bufio.Reader

	mu      sync.Mutex   // plain output from several goroutines
	arrived atomic.Int64 // messages received so far
}

// interactive runs the prompt until exit or end of input.
func (a *app) interactive(ctx context.Context) error {
	node, err := a.node()
	if err != nil {
		return err
	}
	p, s, err := a.unlocked(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	sh := &shell{a: a, p: p, stdout: a.stdout, stderr: a.stderr, prompt: fmt.Sprintf("(%s) ", p.own.ID().String()[:8])}
	if f, ok := a.stdin.(*os.File); ok {
		sh.stdin = f
	}
	if sh.stdin != nil && isTerminal(sh.stdin) {
		sh.fd = int(sh.stdin.Fd())
		if sh.cooked, err = term.MakeRaw(sh.fd); err != nil {
			return fmt.Errorf("terminal: %w", err)
		}
		defer term.Restore(sh.fd, sh.cooked)
		sh.term = term.NewTerminal(struct {
			io.Reader
			io.Writer
		}{sh.stdin, a.stdout}, sh.prompt)
	} else {
		sh.lines = bufio.NewReader(a.stdin)
	}
	// Everything the commands print goes through the shell from now on.
	a.stdout, a.stderr = sh, sh
	sh.c = a.newClient(p, s, node, func(m message) {
		sh.arrived.Add(1)
		sh.println(summaryLine(m))
	}, func(w string) { sh.println("warning: " + w) })
	defer sh.c.close()
	sh.println(fmt.Sprintf("Passport %s, device key %s. Type help for the commands.", p.own.ID(), p.deviceKey()))
	return sh.run(ctx)
}

func (sh *shell) run(ctx context.Context) error {
	for ctx.Err() == nil {
		line, err := sh.readLine(sh.prompt)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		arg = strings.TrimSpace(arg)
		switch strings.ToLower(cmd) {
		case "":
		case "exit", "quit", "q":
			return nil
		case "help", "?":
			sh.println(shellHelp)
		case "info":
			err = sh.a.info(ctx, sh.p, sh.c)
		case "sync":
			err = sh.sync(ctx)
		case "message":
			err = sh.message(ctx, arg)
		case "open":
			err = sh.open(ctx, arg)
		default:
			sh.println(fmt.Sprintf("unknown command %q; type help for the commands", cmd))
		}
		if err != nil {
			sh.println("error: " + err.Error())
		}
	}
	return ctx.Err()
}

func (sh *shell) sync(ctx context.Context) error {
	before := sh.arrived.Load()
	if err := sh.c.sync(ctx); err != nil {
		return err
	}
	sh.println(fmt.Sprintf("You have %d new message(s).", sh.arrived.Load()-before))
	return nil
}

func (sh *shell) message(ctx context.Context, arg string) error {
	ct, err := sh.pickContact(ctx, arg)
	if err != nil {
		return err
	}
	if _, err := sh.c.connected(ctx); err != nil {
		return err
	}
	sh.println(fmt.Sprintf("Write your message to %s in the editor: plain text (its first line is the subject) or a mail with a header. An empty file cancels.", ct.petname))
	text, err := sh.edit(ctx)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(text)) == "" {
		sh.println("Empty message: nothing sent.")
		return nil
	}
	id, err := sh.c.send(ctx, ct, text)
	if err != nil {
		return err
	}
	sh.println(fmt.Sprintf("sent %s to %s", id, ct.petname))
	return nil
}

func (sh *shell) open(ctx context.Context, arg string) error {
	if arg != "" {
		if m, err := sh.p.db.messageByID(ctx, arg); err == nil {
			return sh.a.read(ctx, sh.p, m.id.String(), false)
		}
	}
	ct, err := sh.pickContact(ctx, arg)
	if err != nil {
		return err
	}
	ms, err := sh.p.db.messages(ctx, ct.id)
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		sh.println(fmt.Sprintf("No messages from %s yet (try sync).", ct.petname))
		return nil
	}
	for i, m := range ms {
		sh.println(fmt.Sprintf("%3d. %s %s", i+1, m.id.String()[:8], summaryLine(m)))
	}
	answer, err := sh.ask(fmt.Sprintf("message [1-%d or id]: ", len(ms)))
	if err != nil {
		return err
	}
	if i, err := strconv.Atoi(answer); err == nil && i >= 1 && i <= len(ms) {
		return sh.a.read(ctx, sh.p, ms[i-1].id.String(), false)
	}
	return sh.a.read(ctx, sh.p, answer, false)
}

// pickContact resolves arg, or asks which contact when it is empty.
func (sh *shell) pickContact(ctx context.Context, arg string) (contact, error) {
	if arg != "" {
		return sh.p.db.findContact(ctx, arg)
	}
	cs, err := sh.p.db.contacts(ctx)
	if err != nil {
		return contact{}, err
	}
	switch len(cs) {
	case 0:
		return contact{}, errors.New("no contacts yet: add one with asmtp-cli --import-passport FILE --name PETNAME")
	case 1:
		return cs[0], nil
	}
	for i, c := range cs {
		sh.println(fmt.Sprintf("%3d. %s", i+1, c.petname))
	}
	answer, err := sh.ask(fmt.Sprintf("contact [1-%d or name]: ", len(cs)))
	if err != nil {
		return contact{}, err
	}
	if i, err := strconv.Atoi(answer); err == nil && i >= 1 && i <= len(cs) {
		return cs[i-1], nil
	}
	return sh.p.db.findContact(ctx, answer)
}

// ask reads one answer with its own prompt.
func (sh *shell) ask(prompt string) (string, error) {
	line, err := sh.readLine(prompt)
	if errors.Is(err, io.EOF) {
		return "", errors.New("cancelled")
	}
	return strings.TrimSpace(line), err
}

func (sh *shell) readLine(prompt string) (string, error) {
	if sh.term != nil {
		sh.term.SetPrompt(prompt)
		return sh.term.ReadLine()
	}
	if prompt != sh.prompt { // commands from a pipe: no prompt, but questions
		sh.mu.Lock()
		fmt.Fprint(sh.stdout, prompt)
		sh.mu.Unlock()
	}
	line, err := sh.lines.ReadString('\n')
	if errors.Is(err, io.EOF) && line != "" {
		err = nil
	}
	return strings.TrimRight(line, "\r\n"), err
}

// Write prints above the prompt on a terminal; it makes the shell the
// output of the commands.
func (sh *shell) Write(b []byte) (int, error) {
	if sh.term != nil {
		return sh.term.Write(b)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.stdout.Write(b)
}

func (sh *shell) println(s string) { fmt.Fprintln(sh, s) }

// edit runs $EDITOR on an empty private file and returns what was saved.
func (sh *shell) edit(ctx context.Context) ([]byte, error) {
	f, err := os.CreateTemp("", "asmtp-cli-message-*.txt") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("editor: %w", err)
	}
	path := f.Name()
	f.Close()
	defer os.Remove(path)
	if sh.term != nil {
		term.Restore(sh.fd, sh.cooked) // the editor wants the terminal as it was
		defer term.MakeRaw(sh.fd)
	}
	if err := runEditor(ctx, sh.a.getenv, path, sh.stdin, sh.stdout, sh.stderr); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("editor: %w", err)
	}
	return b, nil
}

// runEditor runs $VISUAL or $EDITOR (vi if neither is set) on path, through
// the shell so that an editor with arguments ("code --wait") works.
func runEditor(ctx context.Context, getenv func(string) string, path string, stdin *os.File, stdout, stderr io.Writer) error {
	editor := getenv("VISUAL")
	if editor == "" {
		editor = getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", editor+` "$1"`, "sh", path)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("editor %q: %w", editor, err)
	}
	return nil
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
