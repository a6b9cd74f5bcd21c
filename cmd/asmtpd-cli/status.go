package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/bridge"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/cmd/internal/config"
	"github.com/asmtp/asmtp/mailstore"
)

const statusTimeLayout = "2006-01-02 15:04:05 UTC"

func newStatusCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "status --config FILE",
		Short: "Show the node's peers, topics, mail queue and last deliveries",
		Long: "Show what the node's database and the bridge's files record: the stored peer\n" +
			"gossips, registered topics and stored messages, and for each bridge account its\n" +
			"outbox (pending and retrying deliveries, bounce reports in its INBOX) and when\n" +
			"mail from each contact was last delivered. It only reads, needs no password,\n" +
			"and works whether asmtpd is running or not.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return errors.New("--config is required")
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return err
			}
			return writeStatus(cmd.Context(), cmd.OutOrStdout(), cfg, time.Now())
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "the node's configuration file")
	return cmd
}

func fmtTime(t time.Time) string { return t.UTC().Format(statusTimeLayout) }

// writeStatus writes the status report of the node configured by cfg.
func writeStatus(ctx context.Context, w io.Writer, cfg *config.Config, now time.Time) error {
	if err := writeNodeStatus(ctx, w, cfg, now); err != nil {
		return err
	}
	return writeBridgeStatus(ctx, w, cfg, now)
}

func writeNodeStatus(ctx context.Context, w io.Writer, cfg *config.Config, now time.Time) error {
	id := "(id not in the config: see `asmtpd-cli public-id`)"
	if p := cfg.Secret.PublicID; p != nil {
		id = p.String()
	}
	fmt.Fprintf(w, "node %s listening %s\n", id, cfg.Network.ListenAddress)
	writeNodeLimits(w, cfg)
	s, err := store.ReadSummary(ctx, cfg.Storage.Path)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(w, "  no database at %s yet (asmtpd has not run)\n", cfg.Storage.Path)
		return nil
	}
	if err != nil {
		return err
	}
	if s.SchemaVersion > s.MaxSchemaKnown {
		fmt.Fprintf(w, "  warning: database schema %d is newer than this program's (%d)\n", s.SchemaVersion, s.MaxSchemaKnown)
	}
	if s.LastSeen.IsZero() {
		fmt.Fprintln(w, "  last seen: never recorded")
	} else {
		fmt.Fprintf(w, "  last seen: %s (%s ago; recorded every %s while running)\n",
			fmtTime(s.LastSeen), now.Sub(s.LastSeen).Round(time.Second), cfg.Storage.GossipRefreshRate)
	}
	fmt.Fprintf(w, "peers: %d known (stored gossips)\n", len(s.Gossips))
	for _, g := range s.Gossips {
		addr := "(undecodable gossip)"
		if d, err := gossip.Decode(g.Bytes); err == nil {
			addr = d.Addr.String()
		}
		fmt.Fprintf(w, "  %s %s gossip of %s\n", g.ID, addr, fmtTime(gossip.ToTime(g.Time)))
	}
	fmt.Fprintf(w, "topics: %d registered (by %s), %s stored", s.Topics, plural(s.Users, "user"), plural(int(s.Messages), "message"))
	if s.Messages > 0 {
		fmt.Fprintf(w, " (oldest %s, newest %s)", fmtTime(s.OldestMessage), fmtTime(s.NewestMessage))
	}
	fmt.Fprintln(w)
	capacity := cfg.Storage.MaxSize
	fmt.Fprintf(w, "storage: %s of %s used (%d%%)\n", config.ByteSize(s.ContentBytes), capacity, s.ContentBytes*100/int64(capacity))
	if s.ContentBytes >= int64(capacity)*15/16 {
		fmt.Fprintln(w, "  warning: storage nearly full: once only unfetched mail is left, mail from peers is refused; raise storage.max_size")
	}
	return nil
}

// writeNodeLimits writes what the node bounds for its peers.
func writeNodeLimits(w io.Writer, cfg *config.Config) {
	n := cfg.Network
	links := n.MaxOpenedConnections
	fmt.Fprintf(w, "  limits: %d links (%d kept for overlay peers and users), %d handshakes pending (%d per source under load, first byte within %s)\n",
		links, links/4, node.MaxPendingHandshakes, node.MaxPendingPerSource, node.DefaultFirstByteTimeout)
	fmt.Fprintf(w, "  stored from one peer: %s/s, bursts of %s (an eighth for a new inbound peer, < %s, not a ring neighbour); one topic: %s/s, bursts of %s; in total: %s\n",
		n.PeerStoreRate, n.PeerStoreBurst, node.StrangerPeriod, n.TopicStoreRate, n.TopicStoreBurst, cfg.Storage.MaxSize)
}

func writeBridgeStatus(ctx context.Context, w io.Writer, cfg *config.Config, now time.Time) error {
	bc := bridgeConfig(cfg)
	if !cfg.Bridge.Enabled {
		fmt.Fprintln(w, "bridge: disabled in the config")
	}
	// Opening would create the files: report their absence instead.
	if _, err := os.Stat(filepath.Join(bc.DataDir, accounts.RegistryFile)); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(w, "accounts: none (no bridge registry yet)")
		return nil
	}
	reg, err := accounts.OpenRegistry(ctx, bc.DataDir)
	if err != nil {
		return err
	}
	defer reg.Close()
	all, err := reg.Accounts(ctx)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		fmt.Fprintln(w, "accounts: none")
		return nil
	}
	var mailboxes *mailstore.DB
	if _, err := os.Stat(filepath.Join(bc.DataDir, accounts.MailFile)); err == nil {
		if mailboxes, err = accounts.OpenMailstore(ctx, bc.DataDir); err != nil {
			return err
		}
		defer mailboxes.Close()
	}
	for _, a := range all {
		if err := writeAccountStatus(ctx, w, reg, mailboxes, bc, a, now); err != nil {
			return err
		}
	}
	return nil
}

func writeAccountStatus(ctx context.Context, w io.Writer, reg *accounts.Registry, mailboxes *mailstore.DB, bc bridge.Config, a accounts.Account, now time.Time) error {
	domain := bc.Domain
	fmt.Fprintf(w, "account %s (%s)\n", a.Name, a.Address(domain))
	contacts, err := reg.Contacts(ctx, a.Name)
	if err != nil {
		return err
	}
	var items []mailstore.OutboxItem
	var last map[[32]byte]time.Time
	bounces := 0
	if mailboxes != nil {
		if items, err = mailboxes.Outbox(ctx, a.Name); err != nil {
			return err
		}
		if last, err = mailboxes.LastAppended(ctx, a.Name); err != nil {
			return err
		}
		// The bridge's delivery status notifications (bridge/outbound/dsn.go).
		if bounces, err = mailboxes.CountHeaderMatches(ctx, a.Name, mailstore.Inbox, "mailer-daemon@", "report-type=delivery-status"); err != nil {
			return err
		}
	}
	var pending, retrying []mailstore.OutboxItem
	for _, it := range items {
		if it.Attempts == 0 {
			pending = append(pending, it)
		} else {
			retrying = append(retrying, it)
		}
	}
	fmt.Fprintf(w, "  outbox: %d pending, %d retrying, %d bounce reports in INBOX\n", len(pending), len(retrying), bounces)
	sort.Slice(retrying, func(i, j int) bool { return retrying[i].NextAttempt.Before(retrying[j].NextAttempt) })
	for _, it := range retrying {
		if !it.HandedAt.IsZero() {
			fmt.Fprintf(w, "    to %s: on this node since %s, waiting for a node holding the recipient's topic (%s), next %s\n",
				it.Address, fmtTime(it.HandedAt), plural(it.Attempts, "check"), fmtTime(it.NextAttempt))
			continue
		}
		fmt.Fprintf(w, "    to %s: %s since %s, next %s, last error: %s\n",
			it.Address, plural(it.Attempts, "attempt"), fmtTime(it.QueuedAt), fmtTime(it.NextAttempt), oneLine(it.LastError))
	}
	for _, it := range pending {
		due := "due now"
		if it.NextAttempt.After(now) {
			due = "due " + fmtTime(it.NextAttempt)
		}
		fmt.Fprintf(w, "    to %s: queued %s, %s\n", it.Address, fmtTime(it.QueuedAt), due)
	}
	writeDeliveryWarnings(w, items, bc.Delivery.DelayWarning, now)
	queued := make(map[[16]byte]int)
	for _, it := range items {
		queued[it.Passport]++
	}
	namings, err := reg.Namings(ctx, a.Name)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  contacts: %d\n", len(contacts))
	for _, c := range contacts {
		line := fmt.Sprintf("    %s %s", c.Name, c.Address(domain))
		switch {
		case c.Pending():
			line += "  passport pending"
		default:
			line += "  naming " + bc.Scheme(namings[c.Passport]).String()
			in := "none on record"
			if t, ok := last[c.SharedKey]; ok {
				in = fmtTime(t)
			}
			line += "  last delivery in: " + in
		}
		if n := queued[c.Passport]; n > 0 {
			line += fmt.Sprintf("  queued out: %d", n)
		}
		fmt.Fprintln(w, line)
	}
	return nil
}

// writeDeliveryWarnings warns of the account's mail still in the outbox
// delay (bridge.delay_warning) after submission, whose senders have been
// sent a delay report: mail not handed to the network yet, and mail stored
// on this node only, because no node holding the recipient's topic has
// been seen (the bridge's outbox keeps such mail until one is).
func writeDeliveryWarnings(w io.Writer, items []mailstore.OutboxItem, delay time.Duration, now time.Time) {
	var late []mailstore.OutboxItem
	for _, it := range items {
		if now.Sub(it.QueuedAt) >= delay {
			late = append(late, it)
		}
	}
	if len(late) == 0 {
		return
	}
	fmt.Fprintf(w, "  warning: %s undelivered after %s (bridge.delay_warning)\n", plural(len(late), "mail"), delay)
	for _, it := range late {
		why := "not handed to the network yet, last error: " + oneLine(it.LastError)
		if !it.HandedAt.IsZero() {
			why = "stored on this node only: no node holding the recipient's topic seen since " + fmtTime(it.HandedAt) +
				" (the recipient's node is offline, or they have not added this account as a contact)"
		}
		fmt.Fprintf(w, "    to %s: queued %s, %s\n", it.Address, fmtTime(it.QueuedAt), why)
	}
}

// oneLine keeps an error message on one line of the report.
func oneLine(s string) string {
	if s == "" {
		return "(none)"
	}
	return strings.Join(strings.Fields(s), " ")
}

// plural is "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
