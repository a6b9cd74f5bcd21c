// Command asmtpd runs an ASMTP node: it links to peers over Noise IK, takes
// part in the PolderCast overlay, relays topic messages and stores them for
// its users until they fetch them.
//
//	asmtpd --config config.yaml [--password PW | --password-file FILE] [--log-level info]
//
// The key password comes from --password, --password-file,
// $ASMTPD_KEY_PASSWORD or a prompt on the terminal, in that order. Logs are
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
	"strings"
	"syscall"
	"time"

	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/cmd/internal/config"
)

// shutdownGrace bounds a clean shutdown after SIGINT/SIGTERM.
const shutdownGrace = 5 * time.Second

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = run(ctx, stop, opts, os.Stderr)
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
	logLevel     slog.Level
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("asmtpd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", "", "the node's YAML configuration (`asmtpd-cli default-config` prints a template)")
	fs.StringVar(&o.password, "password", "", "key password (default: --password-file, $"+config.PasswordEnv+", else a prompt)")
	fs.StringVar(&o.passwordFile, "password-file", "", "read the key password from `FILE`, e.g. a systemd credential (one trailing newline is dropped)")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	fs.Visit(func(f *flag.Flag) { o.passwordSet = o.passwordSet || f.Name == "password" })
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.configPath == "":
		return o, errors.New("--config is required")
	}
	return o, nil
}

func (o options) keyPassword(stderr io.Writer) (string, error) {
	if o.passwordFile == "" || o.passwordSet {
		return config.KeyPassword(o.password, o.passwordSet, false, stderr)
	}
	b, err := os.ReadFile(o.passwordFile)
	if err != nil {
		return "", fmt.Errorf("--password-file: %w", err)
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
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
		return err
	}

	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	log.Info("node started", "id", n.ID(), "listen", n.Addr(), "public", n.Gossip().Addr)
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
