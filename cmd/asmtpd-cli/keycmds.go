package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/spf13/cobra"
)

func newGenerateNewKeyCmd() *cobra.Command {
	var output, password string
	cmd := &cobra.Command{
		Use:   "generate-new-key --entropy-output FILE [--password PW]",
		Short: "Create a node key: write fresh entropy to FILE and print the public identity",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" {
				return errors.New("--entropy-output is required")
			}
			pw, err := keyPassword(password, cmd.Flags().Changed("password"), true, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			e, err := keys.GenerateEntropy(rand.Reader)
			if err != nil {
				return err
			}
			if err := writeNewSecretFile(output, []byte(e.String())); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Public Identity: %s\n", keys.Public(keys.NodeKey(e, pw)))
			return nil
		},
	}
	cmd.Flags().StringVar(&output, "entropy-output", "", "file to write the 128-hex entropy to (mode 0600; never overwritten)")
	cmd.Flags().StringVar(&password, "password", "", "key password (default: $"+passwordEnv+", else a prompt)")
	return cmd
}

func newPublicIDCmd() *cobra.Command {
	var entropy, password string
	cmd := &cobra.Command{
		Use:   "public-id --entropy FILE [--password PW]",
		Short: "Re-derive and print the public identity of a node key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if entropy == "" {
				return errors.New("--entropy is required")
			}
			e, err := readEntropy(entropy)
			if err != nil {
				return err
			}
			pw, err := keyPassword(password, cmd.Flags().Changed("password"), false, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Public Identity: %s\n", keys.Public(keys.NodeKey(e, pw)))
			return nil
		},
	}
	cmd.Flags().StringVar(&entropy, "entropy", "", "entropy file written by generate-new-key")
	cmd.Flags().StringVar(&password, "password", "", "key password (default: $"+passwordEnv+", else a prompt)")
	return cmd
}

// writeNewSecretFile creates path with mode 0600, refusing to replace
// anything, and syncs it: losing a node key is losing an identity.
func writeNewSecretFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists; refusing to overwrite a key", path)
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

func readEntropy(path string) (keys.Entropy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return keys.Entropy{}, fmt.Errorf("read entropy: %w", err)
	}
	e, err := keys.ParseEntropy(string(b))
	if err != nil {
		return e, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}
