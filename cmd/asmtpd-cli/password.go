package main

import (
	"io"

	"github.com/asmtp/asmtp/cmd/internal/config"
)

// passwordEnv is the environment variable the node key password is read from.
const passwordEnv = config.PasswordEnv

// keyPassword returns the node key password from the flag, the environment,
// or a prompt on a terminal, in that order, as asmtpd does.
func keyPassword(flag string, flagSet, confirm bool, stderr io.Writer) (string, error) {
	return config.KeyPassword(flag, flagSet, confirm, stderr)
}
