package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
)

func newSyncCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "sync",
		Short: "Fetch new messages from the node; print each as: <time> <from> <subject-or-first-line>",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.sync(cmd.Context()) },
	}
}

func (a *app) sync(ctx context.Context) error {
	p, c, err := a.openClient(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	var (
		mu    sync.Mutex
		fresh []message
	)
	c.onMessage = func(m message) {
		mu.Lock()
		fresh = append(fresh, m)
		mu.Unlock()
	}
	err = c.sync(ctx)
	c.close() // waits for the reader: nothing is added to fresh after this
	if err != nil {
		return err
	}
	for _, m := range fresh {
		fmt.Fprintln(a.stdout, summaryLine(m))
	}
	fmt.Fprintf(a.stderr, "You have %d new message(s).\n", len(fresh))
	return nil
}

func newSendCmd(a *app) *cobra.Command {
	var to, file string
	cmd := &cobra.Command{
		Use:   "send --to NAME --file MAIL",
		Short: "Send a mail (plain text or a whole RFC 5322 message) to a contact",
		Long: "Send the mail in --file (- for standard input) to the contact --to, a petname or a passport id.\n" +
			"Plain text becomes a text/plain mail whose subject is its first line; a whole RFC 5322\n" +
			"message keeps its header, with From set to your address. It prints the message id.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.send(cmd.Context(), to, file) },
	}
	cmd.Flags().StringVar(&to, "to", "", "the contact: petname or passport id (required)")
	cmd.Flags().StringVar(&file, "file", "-", "the mail to send; - reads standard input")
	cmd.MarkFlagRequired("to")
	return cmd
}

func (a *app) send(ctx context.Context, to, file string) error {
	text, err := a.readInput(file)
	if err != nil {
		return err
	}
	p, c, err := a.openClient(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	defer c.close()
	// Sending to a contact awaiting a card syncs first (client.route):
	// what that brings is told, or the next sync would not.
	c.onMessage = func(m message) { fmt.Fprintln(a.stderr, "new message:", summaryLine(m)) }
	ct, err := p.db.findContact(ctx, to)
	if err != nil {
		return err
	}
	id, err := c.send(ctx, ct, text)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "sent %s to %s\n", id, ct.petname)
	return nil
}

func (a *app) readInput(file string) ([]byte, error) {
	if file == "-" {
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read mail: %w", err)
	}
	return b, nil
}

func newReadCmd(a *app) *cobra.Command {
	var raw bool
	cmd := &cobra.Command{
		Use:   "read MESSAGE-ID",
		Short: "Print a received message (an unambiguous prefix of its id will do)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, _, err := a.openProfile(cmd.Context())
			if err != nil {
				return err
			}
			defer p.close()
			return a.read(cmd.Context(), p, args[0], raw)
		},
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "print the RFC 5322 message as received")
	return cmd
}

func (a *app) read(ctx context.Context, p *profile, id string, raw bool) error {
	m, err := p.db.messageByID(ctx, id)
	if err != nil {
		return err
	}
	ct, err := p.db.findContact(ctx, m.petname)
	if err != nil {
		return err
	}
	if !raw {
		return renderMessage(a.stdout, m, ct)
	}
	b, err := rawMessage(m, ct, p.own.ID())
	if err != nil {
		return err
	}
	_, err = a.stdout.Write(b)
	return err
}

func newListCmd(a *app) *cobra.Command {
	var from string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List received messages: <id> <time> <from> <subject-or-first-line>",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			p, _, err := a.openProfile(ctx)
			if err != nil {
				return err
			}
			defer p.close()
			var contactID int64
			if from != "" {
				ct, err := p.db.findContact(ctx, from)
				if err != nil {
					return err
				}
				contactID = ct.id
			}
			ms, err := p.db.messages(ctx, contactID)
			if err != nil {
				return err
			}
			for _, m := range ms {
				fmt.Fprintf(a.stdout, "%s %s\n", m.id, summaryLine(m))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "only the messages of this contact")
	return cmd
}

func newContactsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "contacts",
		Short: "List contacts: <petname> <passport id> <messages> <naming: v2, v1 or awaiting-card>",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			p, _, err := a.openProfile(ctx)
			if err != nil {
				return err
			}
			defer p.close()
			cs, err := p.db.contacts(ctx)
			if err != nil {
				return err
			}
			counts, err := p.db.countMessages(ctx)
			if err != nil {
				return err
			}
			for _, c := range cs {
				fmt.Fprintf(a.stdout, "%s %s %d %s\n", c.petname, c.passport, counts[c.id], c.naming)
			}
			return nil
		},
	}
}

func newInfoCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show this device's key, your passport and your contacts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, _, err := a.openProfile(cmd.Context())
			if err != nil {
				return err
			}
			defer p.close()
			return a.info(cmd.Context(), p, nil)
		},
	}
}

// info prints the identity, the node and the contacts; c is the
// interactive session's client, nil otherwise.
func (a *app) info(ctx context.Context, p *profile, c *client) error {
	fmt.Fprintf(a.stdout, "passport:   %s (%s)\n", p.own.ID(), pseudoAddress(p.own.ID()).Address)
	fmt.Fprintf(a.stdout, "device:     %s\n", p.key.Alias)
	fmt.Fprintf(a.stdout, "device key: %s\n", p.deviceKey())
	switch node, err := a.node(); {
	case err != nil:
		fmt.Fprintf(a.stdout, "node:       none given\n")
	case c != nil && c.linked():
		fmt.Fprintf(a.stdout, "node:       %s at %s (connected)\n", node.id, node.addr)
	default:
		fmt.Fprintf(a.stdout, "node:       %s at %s\n", node.id, node.addr)
	}
	cs, err := p.db.contacts(ctx)
	if err != nil {
		return err
	}
	counts, err := p.db.countMessages(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "contacts:   %d\n", len(cs))
	for _, ct := range cs {
		fmt.Fprintf(a.stdout, "  %-16s %s  %d message(s)  %s\n", ct.petname, ct.passport, counts[ct.id], ct.naming)
	}
	return nil
}

// exportPassport writes the own passport, or --name's, as PassportBlocks.
func (a *app) exportPassport(ctx context.Context) error {
	p, _, err := a.openProfile(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	blocks, what := p.own.Export(), "your passport "+p.own.ID().String()
	if a.opts.name != "" {
		ct, err := p.db.findContact(ctx, a.opts.name)
		if err != nil {
			return err
		}
		blocks, what = ct.blocks, ct.petname+"'s passport "+ct.passport.String()
	}
	if a.opts.exportPassport == "-" {
		_, err := a.stdout.Write(blocks)
		return err
	}
	if err := os.WriteFile(a.opts.exportPassport, blocks, 0o600); err != nil {
		return fmt.Errorf("export passport: %w", err)
	}
	fmt.Fprintf(a.stderr, "Wrote %s to %s.\n", what, a.opts.exportPassport)
	return nil
}

// importPassport adds a contact from a PassportBlocks file.
func (a *app) importPassport(ctx context.Context) error {
	data, err := a.readInput(a.opts.importPassport)
	if err != nil {
		return err
	}
	name := a.opts.name
	if name == "" {
		if name, err = a.askLine("passport name (never shared): "); err != nil {
			return fmt.Errorf("import passport: give the contact a petname with --name: %w", err)
		}
	}
	p, _, err := a.openProfile(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	c, err := p.importContact(ctx, data, name)
	if err != nil {
		return fmt.Errorf("import passport: %w", err)
	}
	fmt.Fprintf(a.stdout, "Added contact %s: passport %s, topic %s.\n", c.petname, c.passport, c.topic)
	fmt.Fprintln(a.stdout, "The next sync registers the topic with your node.")
	return nil
}

// askLine asks a question on a terminal.
func (a *app) askLine(prompt string) (string, error) {
	f, ok := a.stdin.(*os.File)
	if !ok || !isTerminal(f) {
		return "", fmt.Errorf("standard input is not a terminal")
	}
	fmt.Fprint(a.stderr, prompt)
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}
