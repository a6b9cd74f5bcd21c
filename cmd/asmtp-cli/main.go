// Command asmtp-cli is the terminal client of ASMTP: a person's device
// holds its own device key and passport and talks to its node (asmtpd) as
// one of the node's users, over the same Noise IK link peers use.
//
//	asmtp-cli --remote-address "[::1]:9800" --remote-id <node id>   interactive prompt
//	asmtp-cli … sync | send --to NAME --file MAIL | read ID | list | contacts | info
//	asmtp-cli --export-passport FILE | --import-passport FILE --name PETNAME
//
// The node is also taken from $ASMTP_CLI_REMOTE_ADDRESS and
// $ASMTP_CLI_REMOTE_ID, the passphrase from --passphrase-file,
// $ASMTP_CLI_PASSPHRASE or a prompt. The first run creates the device key
// and a passport and prints the device key to add to the node's users.
//
// State: the key file (device seed and shared secret sealed under the
// passphrase, own passport) in the user's configuration directory, the
// database (contacts, messages, sync cursors) in the user's data directory,
// both under "asmtp" ($XDG_CONFIG_HOME and $XDG_DATA_HOME on Linux), or
// both in --dir. Messages are RFC 5322 mail in package mail's payload
// format, as the bridge's, and only a message sealed by the contact whose
// topic it came on is accepted.
//
// Naming v2 (asmtp/PROTOCOL.md §16, naming.go): the device receives on
// daily inbox topics derived from a seed kept in its database, and only
// its contacts learn the seed, in its contact card. Importing a passport
// adds a contact "awaiting-card"; the next connection sends the card to
// the contact's intro bucket, and the contact's card, coming back on an
// inbox (or found in the own bucket, then answered), makes it "v2": mail
// goes to its inbox of the day, published by the node for the contact's
// node named in the card. A contact that sends no card within --card-wait
// (a day), or any contact when the node speaks only v1, becomes "v1": the
// pair topic, as upstream. `contacts` and `info` show which. The card
// gives the node's address as --card-address, by default --remote-address.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/asmtp/asmtp/asmtp/keys"
)

// Environment variables.
const (
	envRemoteAddress = "ASMTP_CLI_REMOTE_ADDRESS"
	envRemoteID      = "ASMTP_CLI_REMOTE_ID"
	envPassphrase    = "ASMTP_CLI_PASSPHRASE"
)

// defaultTimeout bounds connecting, and how long an exchange with the node
// may go without a frame.
const defaultTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(os.Getenv).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "asmtp-cli:", err)
		os.Exit(1)
	}
}

// options are the flags, with the environment filled in.
type options struct {
	remoteAddress  string
	remoteID       string
	dir            string
	passphraseFile string
	alias          string
	timeout        time.Duration
	cardWait       time.Duration
	cardAddress    string
	exportPassport string
	importPassport string
	name           string
}

// app is one run of the command.
type app struct {
	opts   options
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func newRootCmd(getenv func(string) string) *cobra.Command {
	a := &app{getenv: getenv}
	root := &cobra.Command{
		Use:   "asmtp-cli",
		Short: "The ASMTP terminal client: an interactive prompt, or one command",
		Long: "asmtp-cli talks to your own ASMTP node as one of its users. Without a command it starts an\n" +
			"interactive prompt (info, sync, message, open, help, exit). The first run creates this\n" +
			"device's key and your passport.",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			a.stdin, a.stdout, a.stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			if !cmd.Flags().Changed("remote-address") {
				a.opts.remoteAddress = getenv(envRemoteAddress)
			}
			if !cmd.Flags().Changed("remote-id") {
				a.opts.remoteID = getenv(envRemoteID)
			}
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case a.opts.exportPassport != "" && a.opts.importPassport != "":
				return errors.New("--export-passport and --import-passport: one at a time")
			case a.opts.exportPassport != "":
				return a.exportPassport(cmd.Context())
			case a.opts.importPassport != "":
				return a.importPassport(cmd.Context())
			case a.opts.name != "":
				return errors.New("--name goes with --import-passport or --export-passport")
			}
			return a.interactive(cmd.Context())
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	pf.StringVar(&a.opts.remoteAddress, "remote-address", "", "the node's address, e.g. \"[::1]:9800\" (default $"+envRemoteAddress+")")
	pf.StringVar(&a.opts.remoteID, "remote-id", "", "the node's id, 64 hex characters (default $"+envRemoteID+")")
	pf.StringVar(&a.opts.dir, "dir", "", "keep the key file and the database in `DIR` (default: the user's config and data directories)")
	pf.StringVar(&a.opts.passphraseFile, "passphrase-file", "", "read the passphrase from `FILE` (default $"+envPassphrase+", else a prompt)")
	pf.StringVar(&a.opts.alias, "alias", "", "first run: the device's name in the passport (default: the host name)")
	pf.DurationVar(&a.opts.timeout, "timeout", defaultTimeout, "give up on the node after this long without an answer")
	pf.StringVar(&a.opts.cardAddress, "card-address", "", "where other nodes reach your node, \"host:port\", as your contact card tells your contacts (default: --remote-address)")
	pf.DurationVar(&a.opts.cardWait, "card-wait", defaultCardWait, "take a contact that has not answered your contact card for this long for a naming-v1 contact")
	f := root.Flags()
	f.StringVar(&a.opts.exportPassport, "export-passport", "", "write your passport (or --name's) to `FILE`, to give to a contact, and exit")
	f.StringVar(&a.opts.importPassport, "import-passport", "", "add the passport in `FILE` as a contact named --name, and exit")
	f.StringVar(&a.opts.name, "name", "", "the contact's petname (never shared)")
	root.AddCommand(
		newSyncCmd(a),
		newSendCmd(a),
		newReadCmd(a),
		newListCmd(a),
		newContactsCmd(a),
		newInfoCmd(a),
	)
	return root
}

// node returns the node to talk to, from the flags or the environment.
func (a *app) node() (nodeAddress, error) {
	if a.opts.remoteAddress == "" || a.opts.remoteID == "" {
		return nodeAddress{}, fmt.Errorf("which node? pass --remote-address and --remote-id (or set $%s and $%s)", envRemoteAddress, envRemoteID)
	}
	id, err := keys.ParsePublicKey(a.opts.remoteID)
	if err != nil {
		return nodeAddress{}, fmt.Errorf("--remote-id: %w", err)
	}
	public := a.opts.cardAddress
	if public == "" {
		public = a.opts.remoteAddress
	}
	return nodeAddress{addr: a.opts.remoteAddress, id: id, public: public}, nil
}

// passphrase returns the passphrase from --passphrase-file, the
// environment or a prompt on the terminal. confirm asks twice (first run).
func (a *app) passphrase(confirm bool) (string, error) {
	if a.opts.passphraseFile != "" {
		b, err := os.ReadFile(a.opts.passphraseFile)
		if err != nil {
			return "", fmt.Errorf("passphrase: %w", err)
		}
		s := strings.TrimSuffix(string(b), "\n")
		return strings.TrimSuffix(s, "\r"), nil
	}
	if pass := a.getenv(envPassphrase); pass != "" {
		return pass, nil
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", fmt.Errorf("no passphrase: pass --passphrase-file, set $%s, or run on a terminal", envPassphrase)
	}
	prompt := "Passphrase: "
	if confirm {
		prompt = "New passphrase (it seals this device's key and your passport's shared key): "
	}
	pass, err := readPassword(a.stderr, f, prompt)
	if err != nil || !confirm {
		return pass, err
	}
	again, err := readPassword(a.stderr, f, "Repeat the passphrase: ")
	if err != nil {
		return "", err
	}
	if again != pass {
		return "", errors.New("the two passphrases differ")
	}
	return pass, nil
}

func readPassword(w io.Writer, f *os.File, prompt string) (string, error) {
	fmt.Fprint(w, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(w)
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	return string(b), nil
}

// openClient opens the profile, unlocks it and prepares a client of the
// node. The caller closes both.
func (a *app) openClient(ctx context.Context) (*profile, *client, error) {
	node, err := a.node()
	if err != nil {
		return nil, nil, err
	}
	p, s, err := a.unlocked(ctx)
	if err != nil {
		return nil, nil, err
	}
	c := a.newClient(p, s, node, func(message) {}, func(w string) { fmt.Fprintln(a.stderr, "warning:", w) })
	return p, c, nil
}

// newClient prepares a client of node for the unlocked profile p, with
// the command line's timeouts: onMessage sees each message a sync or the
// link brings, onWarning each warning.
func (a *app) newClient(p *profile, s secrets, node nodeAddress, onMessage func(message), onWarning func(string)) *client {
	return &client{
		cards:     make(chan struct{}, 1),
		p:         p,
		s:         s,
		node:      node,
		timeout:   a.opts.timeout,
		cardWait:  a.opts.cardWait,
		onMessage: onMessage,
		onWarning: onWarning,
	}
}

// unlocked opens the profile and its secrets.
func (a *app) unlocked(ctx context.Context) (*profile, secrets, error) {
	p, created, err := a.openProfile(ctx)
	if err != nil {
		return nil, secrets{}, err
	}
	if created != nil {
		return p, *created, nil
	}
	pass, err := a.passphrase(false)
	if err == nil {
		var s secrets
		if s, err = p.unlock(pass); err == nil {
			return p, s, nil
		}
	}
	p.close()
	return nil, secrets{}, err
}
