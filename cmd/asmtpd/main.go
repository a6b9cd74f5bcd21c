// Command asmtpd runs an ASMTP node: it links to peers over Noise IK, takes
// part in the PolderCast overlay, relays topic messages and stores them for
// its users until they fetch them.
//
//	asmtpd [--config config.yaml | --data-dir DIR] [--password PW | --password-file FILE] [--log-level info]
//	       [--listen ADDR] [--imap-listen ADDR] [--smtp-listen ADDR] [--carddav-listen ADDR]
//
// Without --config, asmtpd runs from a data directory (--data-dir, default
// $ASMTPD_HOME or ~/.local/share/asmtpd). The first time, it makes one there:
// a config, a node key and a mail account, whose IMAP/SMTP settings it
// prints; with the mail bridge enabled (the default), the node also serves
// IMAP, SMTP and CardDAV on loopback. The first run's ports are the
// defaults (9800, 1143, 1587, 1808 on 127.0.0.1) unless --listen,
// --imap-listen, --smtp-listen and --carddav-listen (or $ASMTPD_LISTEN,
// $ASMTPD_IMAP_LISTEN, $ASMTPD_SMTP_LISTEN, $ASMTPD_CARDDAV_LISTEN)
// choose others; they are written into the config it makes, and checked
// to be free first.
//
// The key password comes from --password, --password-file,
// $ASMTPD_KEY_PASSWORD, the data directory's key-password file, or a prompt
// on the terminal, in that order. Logs are
// structured (log/slog text) on stderr. SIGINT or SIGTERM stops the node
// cleanly; if that takes longer than shutdownGrace the process exits with
// status 1 anyway, and a second signal kills it at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/bridge"
	"github.com/asmtp/asmtp/cmd/internal/config"
)

// shutdownGrace bounds a clean shutdown after SIGINT/SIGTERM.
const shutdownGrace = 5 * time.Second

func main() {
	// Keys, databases and mail: nothing asmtpd writes is for other users.
	syscall.Umask(0o077)
	setMemoryLimit()
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		if err = opts.prepare(ctx, os.Stdout, os.Stderr); err == nil {
			err = run(ctx, stop, opts, os.Stderr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "asmtpd:", err)
		os.Exit(1)
	}
}

type options struct {
	configPath   string
	password     string
	passwordSet  bool
	passwordFile string
	dataDir      string
	logLevel     slog.Level
	// listens are the first run's port choices.
	listens listenAddrs
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("asmtpd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", "", "the node's YAML configuration (`asmtpd-cli default-config` prints a template)")
	fs.StringVar(&o.password, "password", "", "key password (default: --password-file, $"+config.PasswordEnv+", else a prompt)")
	fs.StringVar(&o.passwordFile, "password-file", "", "read the key password from `FILE`, e.g. a systemd credential (one trailing newline is dropped)")
	fs.StringVar(&o.dataDir, "data-dir", "", "without --config: the directory to run from, made on first run (default $ASMTPD_HOME or ~/.local/share/asmtpd)")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	for _, f := range listenFlags(&o.listens) {
		f.register(fs)
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	fs.Visit(func(f *flag.Flag) { o.passwordSet = o.passwordSet || f.Name == "password" })
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.configPath != "" && o.dataDir != "":
		return o, errors.New("--config and --data-dir exclude each other")
	}
	return o, nil
}

// explicitPassword is the password given by flag, file or environment, or
// "" when none was.
func (o options) explicitPassword() (string, error) {
	switch {
	case o.passwordSet:
		return o.password, nil
	case o.passwordFile != "":
		return readPasswordFile(o.passwordFile)
	}
	return os.Getenv(config.PasswordEnv), nil
}

func (o options) keyPassword(stderr io.Writer) (string, error) {
	if o.passwordFile != "" && !o.passwordSet {
		return readPasswordFile(o.passwordFile)
	}
	if _, env := os.LookupEnv(config.PasswordEnv); !o.passwordSet && !env && o.dataDir != "" {
		pw, err := readPasswordFile(filepath.Join(o.dataDir, passwordFile))
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			return pw, err
		}
	}
	return config.KeyPassword(o.password, o.passwordSet, false, stderr)
}

func readPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
}

// prepare resolves the config file to run from, making a data directory
// first when asmtpd runs without --config for the first time.
func (o *options) prepare(ctx context.Context, stdout, stderr io.Writer) error {
	if o.configPath != "" {
		return nil
	}
	if o.dataDir == "" {
		d, err := defaultDataDir()
		if err != nil {
			return err
		}
		o.dataDir = d
	}
	o.configPath = filepath.Join(o.dataDir, configFile)
	if _, err := os.Stat(o.configPath); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fmt.Fprintf(stderr, "asmtpd: first run: making %s\n", o.dataDir)
	return firstRun(ctx, o.dataDir, o, stdout, stderr)
}

// run starts the node and serves until ctx is done; stop releases the
// signal handling that ctx comes from, so that a second signal kills.
func run(ctx context.Context, stop func(), o options, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	cfg, err := config.Load(o.configPath)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	warnIgnoredListenFlags(listenFlags(&o.listens), cfg, o.configPath, func(w string) { log.Warn(w) })
	pw, err := o.keyPassword(stderr)
	if err != nil {
		return err
	}
	key, err := cfg.NodeKey(pw)
	if err != nil {
		return err
	}
	n, err := node.New(cfg.NodeConfig(key, log))
	if err != nil {
		return explainPortInUse(err, cfg, o.configPath)
	}
	var b *bridge.Bridge
	if cfg.Bridge.Enabled {
		if b, err = bridge.New(cfg.BridgeConfig(log), n, key); err != nil {
			return explainPortInUse(err, cfg, o.configPath)
		}
	}

	done := make(chan error, 1)
	go func() { done <- runAll(ctx, n, b) }()
	select {
	case err := <-done:
		if ctx.Err() == nil {
			return fmt.Errorf("node stopped unexpectedly: %v", err)
		}
		return err // the signal came while Run was starting
	case <-ctx.Done():
	}
	stop()
	log.Info("shutting down", "grace", shutdownGrace)
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	case <-time.After(shutdownGrace):
		return fmt.Errorf("shutdown took longer than %s; exiting anyway", shutdownGrace)
	}
}

// runAll runs the node and, when there is one, the bridge, until ctx is done
// or either fails; a failure of one stops the other.
func runAll(ctx context.Context, n *node.Node, b *bridge.Bridge) error {
	if b == nil {
		return n.Run(ctx)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errs := make(chan error, 2)
	go func() { err := n.Run(ctx); cancel(err); errs <- err }()
	go func() { err := b.Run(ctx); cancel(err); errs <- err }()
	return errors.Join(<-errs, <-errs)
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless
// $GOMEMLIMIT sets one. What asmtpd holds of messages at once is bounded
// by budgets (the mailstore's, the SMTP spool's, the node's catch-up
// pages), but with the collector's default pacing the heap may grow to
// twice what is live before it runs: eight 25 MiB submissions took
// 435 MiB above idle. Near the limit the collector runs more often
// instead; it is soft, so nothing fails when more is really needed.
const defaultMemoryLimit = 128 << 20

func setMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}
