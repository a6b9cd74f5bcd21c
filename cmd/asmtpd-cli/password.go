package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// passwordEnv is the environment variable upstream asmtpd reads the key
// password from.
const passwordEnv = "ASMTPD_KEY_PASSWORD"

// keyPassword returns the node key password from the flag, the environment,
// or a prompt on a terminal, in that order. confirm asks twice (new keys).
func keyPassword(flag string, flagSet bool, confirm bool, stderr io.Writer) (string, error) {
	if flagSet {
		return flag, nil
	}
	if pw, ok := os.LookupEnv(passwordEnv); ok {
		return pw, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", fmt.Errorf("no key password: pass --password, set %s, or run on a terminal", passwordEnv)
	}
	fmt.Fprint(stderr, "Key password: ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if confirm {
		fmt.Fprint(stderr, "Repeat key password: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(again) != string(pw) {
			return "", errors.New("the two passwords differ")
		}
	}
	return string(pw), nil
}
