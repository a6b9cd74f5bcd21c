package config

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/asmtp/asmtp/asmtp/keys"
	"golang.org/x/term"
)

// PasswordEnv is the environment variable the key password may come from.
const PasswordEnv = "ASMTPD_KEY_PASSWORD"

// KeyPassword returns the node key password from a flag (when set), else
// from $ASMTPD_KEY_PASSWORD, else from a prompt on the terminal; with no
// terminal it fails rather than block. confirm asks twice (for new keys).
func KeyPassword(flag string, flagSet, confirm bool, stderr io.Writer) (string, error) {
	if flagSet {
		return flag, nil
	}
	if pw, ok := os.LookupEnv(PasswordEnv); ok {
		return pw, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", fmt.Errorf("no key password: pass --password, set %s, or run on a terminal", PasswordEnv)
	}
	read := func(prompt string) (string, error) {
		fmt.Fprint(stderr, prompt)
		pw, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(pw), nil
	}
	pw, err := read("Key password: ")
	if err != nil || !confirm {
		return pw, err
	}
	again, err := read("Repeat key password: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the two passwords differ")
	}
	return pw, nil
}

// NodeKey reads secret.entropy and derives the node key from it and the
// password (about a second of PBKDF2). When secret.public_id is set, a
// password deriving another identity is refused.
func (c *Config) NodeKey(password string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(c.Secret.Entropy)
	if err != nil {
		return nil, fmt.Errorf("secret.entropy: %w", err)
	}
	e, err := keys.ParseEntropy(string(b))
	if err != nil {
		return nil, fmt.Errorf("secret.entropy %s: %w", c.Secret.Entropy, err)
	}
	key := keys.NodeKey(e, password)
	if want := c.Secret.PublicID; want != nil {
		if got := keys.Public(key); got != keys.PublicKey(*want) {
			return nil, fmt.Errorf("the password derives node id %s but secret.public_id is %s: wrong password? (refusing to start as another node)", got, want)
		}
	}
	return key, nil
}
