package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/bridge"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/cmd/internal/config"
)

// Files of a data directory made by the first run.
const (
	configFile   = "config.yaml"
	entropyFile  = "entropy.txt"
	passwordFile = "key-password"
)

// defaultDataDir is where asmtpd keeps its files when run without --config:
// $ASMTPD_HOME, else $XDG_DATA_HOME/asmtpd, else ~/.local/share/asmtpd.
func defaultDataDir() (string, error) {
	if d := os.Getenv("ASMTPD_HOME"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "asmtpd"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data directory: set --data-dir or $ASMTPD_HOME: %w", err)
	}
	return filepath.Join(home, ".local", "share", "asmtpd"), nil
}

// firstRun makes a data directory that asmtpd can run from: a config from
// the template, a node key, and one mail account whose settings it prints
// to stdout. The key password is o's if one was given, else a random one
// written beside the key, with a warning on stderr. Everything is created
// before the config file, so an interrupted first run is simply redone.
func firstRun(ctx context.Context, dir string, o *options, stdout, stderr io.Writer) error {
	tmpl, err := applyListenFlags(string(config.Template), listenFlags(&o.listens))
	if err != nil {
		return fmt.Errorf("first run: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	pw, err := o.explicitPassword()
	if err != nil {
		return err
	}
	if pw == "" {
		if pw, err = newPassword(); err != nil {
			return err
		}
		if err := replaceFile(filepath.Join(dir, passwordFile), []byte(pw+"\n")); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "WARNING: the node key password is stored unprotected in %s (mode 0600).\n"+
			"Anyone who can read it can act as this node. To protect it, move it elsewhere and\n"+
			"start asmtpd with --password-file or $%s instead.\n", filepath.Join(dir, passwordFile), config.PasswordEnv)
	}
	e, err := keys.GenerateEntropy(rand.Reader)
	if err != nil {
		return err
	}
	if err := replaceFile(filepath.Join(dir, entropyFile), []byte(e.String())); err != nil {
		return err
	}
	key := keys.NodeKey(e, pw)
	tmpl = strings.Replace(tmpl, "  # public_id: \"<64 hex characters>\"",
		fmt.Sprintf("  public_id: %q", keys.Public(key)), 1)
	cfg, err := config.Parse([]byte(tmpl), configFile, dir)
	if err != nil {
		return fmt.Errorf("first run: template: %w", err)
	}
	if err := createAccount(ctx, cfg, key, accountName(), stdout); err != nil {
		return err
	}
	// Last: its presence means the first run is complete.
	return replaceFile(filepath.Join(dir, configFile), []byte(tmpl))
}

func createAccount(ctx context.Context, cfg *config.Config, key []byte, name string, stdout io.Writer) error {
	bc := cfg.BridgeConfig(nil)
	reg, err := accounts.OpenRegistry(ctx, bc.DataDir)
	if err != nil {
		return err
	}
	defer reg.Close()
	mailboxes, err := accounts.OpenMailstore(ctx, bc.DataDir)
	if err != nil {
		return err
	}
	defer mailboxes.Close()
	a, token, err := reg.CreateAccount(ctx, mailboxes, key, name, "")
	if errors.Is(err, accounts.ErrAccountExists) {
		// An earlier first run stopped after making the account: give it a
		// fresh password, since the first one may never have been seen.
		if a, err = reg.Account(ctx, name); err == nil {
			token, err = reg.ResetPassword(ctx, name, "")
		}
	}
	if err != nil {
		return fmt.Errorf("first run: account %q: %w", name, err)
	}
	return bridge.WriteSettings(stdout, bc, a, token)
}

// accountName is the login name of the first account: the user's name when
// it makes a valid account name, else "me".
func accountName() string {
	u, err := user.Current()
	if err != nil {
		return "me"
	}
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9._-]`).ReplaceAllString(u.Username, ""))
	if n, err := accounts.CheckAccountName(name); err == nil {
		return n
	}
	return "me"
}

func newPassword() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("key password: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// replaceFile writes data to path with mode 0600 through a synced temporary
// file, so the path holds either nothing or all of data.
func replaceFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	// One err for write, sync, close and rename: a failed write on a full
	// disk must stop the rename, or a truncated file would replace a good
	// one.
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
