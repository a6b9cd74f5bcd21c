package main

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/cmd/internal/config"
	"github.com/spf13/cobra"
)

func newDefaultConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "default-config",
		Short: "Print a commented asmtpd configuration that works as it is next to generate-new-key's entropy.txt",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(config.Template)
			return err
		},
	}
}

func newMakeGossipCmd() *cobra.Command {
	var configPath, password string
	cmd := &cobra.Command{
		Use:   "make-gossip --config FILE [--password PW]",
		Short: "Print the node's signed gossip in hex, for other operators' network.known_gossips",
		Long: "Print the node's signed gossip (its id and network.public_address, no\n" +
			"subscriptions, signed now) in hex on stdout, as upstream asmtpd-cli does.\n" +
			"Other operators list it under network.known_gossips to bootstrap from this node.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return fmt.Errorf("--config is required")
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return err
			}
			pw, err := keyPassword(password, cmd.Flags().Changed("password"), false, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			key, err := cfg.NodeKey(pw)
			if err != nil {
				return err
			}
			addr := cfg.Network.PublicAddress.AddrPort
			g, err := gossip.New(key, gossip.FromTime(time.Now()), addr, nil)
			if err != nil {
				return fmt.Errorf("make gossip: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "id: %s\naddress: %s\n", keys.Public(key), addr)
			fmt.Fprintln(cmd.OutOrStdout(), hex.EncodeToString(g.Encode()))
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "the node's configuration file")
	cmd.Flags().StringVar(&password, "password", "", "key password (default: $"+passwordEnv+", else a prompt)")
	return cmd
}
