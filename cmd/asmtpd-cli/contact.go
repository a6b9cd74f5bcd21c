package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/accounts"
)

func newContactCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "contact",
		Short: "Manage an account's address book",
		Long: "Manage an account's address book: petnames for passports. The petname is the\n" +
			"only display name mail clients see for a contact's address. A running asmtpd\n" +
			"registers a new contact's topic within a second and fetches what the contact\n" +
			"already sent. --account may be left out when there is one account.",
	}
	cmd.PersistentFlags().StringVar(&configPath, "config", "", "the node's configuration file")
	cmd.AddCommand(
		newContactAddCmd(&configPath),
		newContactListCmd(&configPath),
		newContactRemoveCmd(&configPath),
		newContactRenameCmd(&configPath),
		newContactExportCmd(&configPath),
	)
	return cmd
}

func newContactAddCmd(configPath *string) *cobra.Command {
	var account, name, passportFile, id string
	cmd := &cobra.Command{
		Use:   "add --config FILE [--account NAME] --name PETNAME (--passport FILE | --id HEX)",
		Short: "Add a contact from its passport file, or by passport id or address",
		Long: "Add a contact under a petname. With --passport, the contact's exported passport\n" +
			"(PassportBlocks) is checked and the contact is ready at once. With --id (the\n" +
			"32-hex passport id, or the contact's address), the contact is pending until\n" +
			"asmtpd fetches the passport from the network.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--name is required")
			}
			ctx := cmd.Context()
			return onAccount(ctx, *configPath, account, "--account", func(f *bridgeFiles, account string) error {
				var c accounts.Contact
				if passportFile != "" {
					blocks, err := os.ReadFile(passportFile)
					if err != nil {
						return err
					}
					c, err = f.reg.AddContact(ctx, account, name, blocks)
					if err != nil {
						return err
					}
				} else {
					pid, err := parsePassportID(id, f.bridge.Domain)
					if err != nil {
						return err
					}
					if c, err = f.reg.AddPendingContact(ctx, account, name, pid); err != nil {
						return err
					}
				}
				status := "ready"
				if c.Pending() {
					status = "pending (asmtpd fetches the passport from the network)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "name: %s\naddress: %s\nstatus: %s\n", c.Name, c.Address(f.bridge.Domain), status)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "account whose address book to change")
	cmd.Flags().StringVar(&name, "name", "", "petname: how the contact is shown in mail clients")
	cmd.Flags().StringVar(&passportFile, "passport", "", "the contact's exported passport (PassportBlocks)")
	cmd.Flags().StringVar(&id, "id", "", "the contact's passport id (32 hex) or address")
	cmd.MarkFlagsMutuallyExclusive("passport", "id")
	cmd.MarkFlagsOneRequired("passport", "id")
	return cmd
}

// parsePassportID accepts a passport id or a pseudo-address.
func parsePassportID(s, domain string) (passport.Hash, error) {
	if strings.Contains(s, "@") {
		a, err := accounts.ParseAddress(s, domain)
		return a.Passport, err
	}
	id, err := passport.ParseHash(s)
	if err != nil {
		return id, fmt.Errorf("--id %q: want a 32-hex passport id or an address: %w", s, err)
	}
	return id, nil
}

func newContactListCmd(configPath *string) *cobra.Command {
	var account string
	cmd := &cobra.Command{
		Use:   "list --config FILE [--account NAME]",
		Short: "List an account's contacts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return onAccount(ctx, *configPath, account, "--account", func(f *bridgeFiles, account string) error {
				contacts, err := f.reg.Contacts(ctx, account)
				if err != nil {
					return err
				}
				namings, err := f.reg.Namings(ctx, account)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "NAME\tADDRESS\tSTATUS\tNAMING\tADDED")
				for _, c := range contacts {
					status, naming := "ready", f.bridge.Scheme(namings[c.Passport]).String()
					if c.Pending() {
						status, naming = "pending", "-"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.Name, c.Address(f.bridge.Domain), status, naming, c.AddedAt.Format(time.RFC3339))
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "account whose address book to list")
	return cmd
}

func newContactRemoveCmd(configPath *string) *cobra.Command {
	var account, name string
	cmd := &cobra.Command{
		Use:   "remove --config FILE [--account NAME] --name PETNAME",
		Short: "Remove a contact; asmtpd stops fetching its mail",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--name is required")
			}
			ctx := cmd.Context()
			return onAccount(ctx, *configPath, account, "--account", func(f *bridgeFiles, account string) error {
				return f.reg.RemoveContact(ctx, account, name)
			})
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "account whose address book to change")
	cmd.Flags().StringVar(&name, "name", "", "petname of the contact")
	return cmd
}

func newContactRenameCmd(configPath *string) *cobra.Command {
	var account, name, to string
	cmd := &cobra.Command{
		Use:   "rename --config FILE [--account NAME] --name PETNAME --to NEWNAME",
		Short: "Give a contact another petname",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || to == "" {
				return errors.New("--name and --to are required")
			}
			ctx := cmd.Context()
			return onAccount(ctx, *configPath, account, "--account", func(f *bridgeFiles, account string) error {
				c, err := f.reg.RenameContact(ctx, account, name, to)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "name: %s\naddress: %s\n", c.Name, c.Address(f.bridge.Domain))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "account whose address book to change")
	cmd.Flags().StringVar(&name, "name", "", "petname of the contact")
	cmd.Flags().StringVar(&to, "to", "", "the new petname")
	return cmd
}

func newContactExportCmd(configPath *string) *cobra.Command {
	var account, format, output string
	cmd := &cobra.Command{
		Use:   "export --config FILE [--account NAME] [--format vcard] [--output FILE]",
		Short: "Export an account's contacts as vCards, for Thunderbird and other mail clients",
		Long: "Export an account's contacts as vCard 3.0 (FN = petname, EMAIL = address) to\n" +
			"stdout or --output; Thunderbird imports the file with Tools > Import > Address Books.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "vcard" {
				return fmt.Errorf("--format %q: only vcard is supported", format)
			}
			ctx := cmd.Context()
			return onAccount(ctx, *configPath, account, "--account", func(f *bridgeFiles, account string) error {
				contacts, err := f.reg.Contacts(ctx, account)
				if err != nil {
					return err
				}
				var buf bytes.Buffer
				if err := accounts.WriteVCards(&buf, contacts, f.bridge.Domain); err != nil {
					return err
				}
				return writeOutput(cmd.OutOrStdout(), output, buf.Bytes(), false)
			})
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "account whose address book to export")
	cmd.Flags().StringVar(&format, "format", "vcard", "output format: vcard")
	cmd.Flags().StringVar(&output, "output", "", "file to write (default: stdout)")
	return cmd
}
