package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/cmd/internal/config"
)

// bridgeConfig is the mail bridge's configuration for a node configuration:
// its files beside the node database, default addresses and domain.
func bridgeConfig(cfg *config.Config) bridge.Config {
	return cfg.BridgeConfig(nil)
}

// bridgeFiles are the node configuration and the bridge's registry, as
// every account and contact command needs them.
type bridgeFiles struct {
	cfg    *config.Config
	bridge bridge.Config
	reg    *accounts.Registry
}

// onAccount opens the bridge files of the node at configPath, resolves the
// account a command names in flag (or the only one), runs fn on it, and
// closes the files.
func onAccount(ctx context.Context, configPath, name, flag string, fn func(f *bridgeFiles, account string) error) error {
	f, err := openBridgeFiles(ctx, configPath)
	if err != nil {
		return err
	}
	defer f.Close()
	account, err := f.accountName(ctx, name, flag)
	if err != nil {
		return err
	}
	return fn(f, account)
}

func openBridgeFiles(ctx context.Context, configPath string) (*bridgeFiles, error) {
	if configPath == "" {
		return nil, errors.New("--config is required")
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, err
	}
	bc := bridgeConfig(cfg)
	reg, err := accounts.OpenRegistry(ctx, bc.DataDir)
	if err != nil {
		return nil, err
	}
	return &bridgeFiles{cfg: cfg, bridge: bc, reg: reg}, nil
}

func (f *bridgeFiles) Close() error { return f.reg.Close() }

// accountName is the --name/--account flag, or the only account when the
// flag is empty and there is exactly one.
func (f *bridgeFiles) accountName(ctx context.Context, flag, flagName string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	accounts, err := f.reg.Accounts(ctx)
	if err != nil {
		return "", err
	}
	if len(accounts) == 1 {
		return accounts[0].Name, nil
	}
	names := make([]string, len(accounts))
	for i, a := range accounts {
		names[i] = a.Name
	}
	return "", fmt.Errorf("%s is required (accounts: %s)", flagName, strings.Join(names, ", "))
}

// writeOutput writes data to the file output (mode 0644: exports hold
// nothing secret), else to stdout; binary data is not written to a
// terminal.
func writeOutput(stdout io.Writer, output string, data []byte, binary bool) error {
	if output != "" {
		if err := os.WriteFile(output, data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", output, err)
		}
		return nil
	}
	if f, ok := stdout.(*os.File); ok && binary && term.IsTerminal(int(f.Fd())) {
		return errors.New("refusing to write binary data to a terminal: use --output FILE or redirect stdout")
	}
	_, err := stdout.Write(data)
	return err
}

func newAccountCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "account",
		Short: "Manage the mail bridge's accounts (local identities served over IMAP/SMTP)",
		Long: "Manage the mail bridge's accounts. Each account is a device key (a user of the\n" +
			"node), a passport and an IMAP/SMTP login. The bridge's files live in a \"bridge\"\n" +
			"directory beside storage.path. A running asmtpd picks up changes within a second.",
	}
	cmd.PersistentFlags().StringVar(&configPath, "config", "", "the node's configuration file")
	cmd.AddCommand(
		newAccountAddCmd(&configPath),
		newAccountListCmd(&configPath),
		newAccountExportPassportCmd(&configPath),
		newAccountResetPasswordCmd(&configPath),
		newAccountRotateKeyCmd(&configPath),
	)
	return cmd
}

func newAccountAddCmd(configPath *string) *cobra.Command {
	var name, bridgePassword, password string
	cmd := &cobra.Command{
		Use:   "add --config FILE --name NAME [--bridge-password PW] [--password PW]",
		Short: "Create an account and print its address and IMAP/SMTP login",
		Long: "Create an account: a device key, a passport, mailboxes, and a bridge password\n" +
			"(random unless --bridge-password is given) that is shown only this once.\n" +
			"The node key password (--password, $" + passwordEnv + " or a prompt) seals the\n" +
			"account's secrets. Mail clients log in as NAME or as the address.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--name is required")
			}
			ctx := cmd.Context()
			f, err := openBridgeFiles(ctx, *configPath)
			if err != nil {
				return err
			}
			defer f.Close()
			pw, err := keyPassword(password, cmd.Flags().Changed("password"), false, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			nodeKey, err := f.cfg.NodeKey(pw)
			if err != nil {
				return err
			}
			mailboxes, err := accounts.OpenMailstore(ctx, f.bridge.DataDir)
			if err != nil {
				return err
			}
			defer mailboxes.Close()
			a, secret, err := f.reg.CreateAccount(ctx, mailboxes, nodeKey, name, bridgePassword)
			if err != nil {
				return err
			}
			if err := bridge.WriteSettings(cmd.OutOrStdout(), f.bridge, a, secret); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "The password is stored only as a hash: note it now (reset it with `asmtpd-cli account reset-password`).")
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "account name: the IMAP/SMTP user name (letters, digits, '.', '_', '-')")
	cmd.Flags().StringVar(&bridgePassword, "bridge-password", "", fmt.Sprintf("IMAP/SMTP password, at least %d characters (default: a random 128-bit token)", accounts.MinPasswordLength))
	cmd.Flags().StringVar(&password, "password", "", "node key password (default: $"+passwordEnv+", else a prompt)")
	return cmd
}

func newAccountListCmd(configPath *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list --config FILE",
		Short: "List the accounts with their addresses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			f, err := openBridgeFiles(ctx, *configPath)
			if err != nil {
				return err
			}
			defer f.Close()
			accounts, err := f.reg.Accounts(ctx)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tADDRESS\tCREATED")
			for _, a := range accounts {
				fmt.Fprintf(w, "%s\t%s\t%s\n", a.Name, a.Address(f.bridge.Domain), a.CreatedAt.Format(time.RFC3339))
			}
			return w.Flush()
		},
	}
}

func newAccountExportPassportCmd(configPath *string) *cobra.Command {
	var name, output string
	cmd := &cobra.Command{
		Use:   "export-passport --config FILE [--name NAME] [--output FILE]",
		Short: "Write an account's passport (PassportBlocks) for its contacts to import",
		Long: "Write an account's passport as PassportBlocks (the upstream export format) to\n" +
			"stdout or --output. Contacts add it with `asmtpd-cli contact add --passport`.\n" +
			"The passport holds only public keys. --name may be left out when there is one account.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return onAccount(ctx, *configPath, name, "--name", func(f *bridgeFiles, name string) error {
				a, err := f.reg.Account(ctx, name)
				if err != nil {
					return err
				}
				return writeOutput(cmd.OutOrStdout(), output, a.Blocks, true)
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "account name")
	cmd.Flags().StringVar(&output, "output", "", "file to write (default: stdout)")
	return cmd
}

func newAccountResetPasswordCmd(configPath *string) *cobra.Command {
	var name, bridgePassword string
	cmd := &cobra.Command{
		Use:   "reset-password --config FILE [--name NAME] [--bridge-password PW]",
		Short: "Replace an account's IMAP/SMTP password and print the new one",
		Long: "Replace an account's IMAP/SMTP password (random unless --bridge-password is\n" +
			"given); the old one stops working at once. --name may be left out when there is\n" +
			"one account.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return onAccount(ctx, *configPath, name, "--name", func(f *bridgeFiles, name string) error {
				a, err := f.reg.Account(ctx, name)
				if err != nil {
					return err
				}
				secret, err := f.reg.ResetPassword(ctx, a.Name, bridgePassword)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "username: %s\npassword: %s\n", a.Name, secret)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "account name")
	cmd.Flags().StringVar(&bridgePassword, "bridge-password", "", fmt.Sprintf("new IMAP/SMTP password, at least %d characters (default: a random 128-bit token)", accounts.MinPasswordLength))
	return cmd
}

func newAccountRotateKeyCmd(configPath *string) *cobra.Command {
	var name, password string
	cmd := &cobra.Command{
		Use:   "rotate-key --config FILE [--name NAME] [--password PW]",
		Short: "Give an account a new shared key (mail key) and tell its contacts",
		Long: "Give an account a new shared secret: a new block of its passport. A running\n" +
			"asmtpd sends the new passport sealed to each v2 contact's inbox (v1 contacts\n" +
			"fetch it from the network); mail sealed to the old key still opens until asmtpd\n" +
			"restarts. Use it when the old secret may have leaked. --name may be left out\n" +
			"when there is one account.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return onAccount(ctx, *configPath, name, "--name", func(f *bridgeFiles, name string) error {
				pw, err := keyPassword(password, cmd.Flags().Changed("password"), false, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				nodeKey, err := f.cfg.NodeKey(pw)
				if err != nil {
					return err
				}
				a, err := f.reg.RotateSharedKey(ctx, nodeKey, name)
				if err != nil {
					return err
				}
				p, err := passport.Import(a.Blocks, time.Now())
				if err != nil {
					return err
				}
				key, _ := p.SharedKey()
				fmt.Fprintf(cmd.OutOrStdout(), "account: %s\nshared key: %s\n", a.Name, key)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "account name")
	cmd.Flags().StringVar(&password, "password", "", "node key password (default: $"+passwordEnv+", else a prompt)")
	return cmd
}
