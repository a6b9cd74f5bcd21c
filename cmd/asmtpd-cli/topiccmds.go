package main

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/spf13/cobra"
)

func newTopicCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "topic <shared-key-hex> <shared-key-hex>",
		Short: "Print the conversation topic of two passport shared keys",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := keys.ParseSharedKey(args[0])
			if err != nil {
				return fmt.Errorf("first key: %w", err)
			}
			b, err := keys.ParseSharedKey(args[1])
			if err != nil {
				return fmt.Errorf("second key: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), topic.Derive(a, b))
			return nil
		},
	}
}

func newDecodeGossipCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "decode-gossip <hex>",
		Short: "Decode a signed gossip (as found in network.known_gossips) and check its signature",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := hex.DecodeString(strings.TrimSpace(args[0]))
			if err != nil {
				return fmt.Errorf("gossip: not hex: %w", err)
			}
			g, err := gossip.Decode(raw)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "id: %s\n", g.ID)
			fmt.Fprintf(w, "address: %s\n", g.Addr)
			fmt.Fprintf(w, "time: %s\n", gossip.ToTime(g.Time).UTC().Format("2006-01-02 15:04:05 UTC"))
			fmt.Fprintf(w, "subscriptions: %d\n", len(g.Subscriptions))
			for _, s := range g.Subscriptions {
				fmt.Fprintf(w, "  %s interest=%d\n", s.Topic, s.Interest)
			}
			fmt.Fprintln(w, "signature: valid")
			return nil
		},
	}
}
