// Command asmtpd-cli is the operator's tool for an asmtpd node: keys,
// configuration, gossip, topics, accounts, contacts and status.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "asmtpd-cli:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "asmtpd-cli",
		Short:         "Operate an ASMTP node: keys, configuration, gossip, topics",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newGenerateNewKeyCmd(),
		newPublicIDCmd(),
		newTopicCmd(),
		newDecodeGossipCmd(),
		newDefaultConfigCmd(),
		newMakeGossipCmd(),
		newAccountCmd(),
		newContactCmd(),
		newStatusCmd(),
	)
	return root
}
