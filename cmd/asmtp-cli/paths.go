package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// File names of the local state.
const (
	keyFileName = "asmtp-cli.key" // device key and own passport (config directory)
	dbFileName  = "asmtp-cli.db"  // contacts and messages (data directory)
	stateSubdir = "asmtp"
)

// paths says where the local state lives.
type paths struct {
	keyFile string
	db      string
}

// statePaths returns the state files: both in dir when it is set (tests,
// portable installs), otherwise the key file in the user's configuration
// directory and the database in the user's data directory (XDG on Linux).
func statePaths(dir string, getenv func(string) string) (paths, error) {
	if dir != "" {
		return paths{keyFile: filepath.Join(dir, keyFileName), db: filepath.Join(dir, dbFileName)}, nil
	}
	config, err := configDir(getenv)
	if err != nil {
		return paths{}, err
	}
	data, err := dataDir(getenv)
	if err != nil {
		return paths{}, err
	}
	return paths{
		keyFile: filepath.Join(config, stateSubdir, keyFileName),
		db:      filepath.Join(data, stateSubdir, dbFileName),
	}, nil
}

// configDir is os.UserConfigDir with the environment taken from getenv.
func configDir(getenv func(string) string) (string, error) {
	if runtime.GOOS != "darwin" && runtime.GOOS != "windows" {
		if d := getenv("XDG_CONFIG_HOME"); d != "" {
			return d, nil
		}
	}
	return platformDir(getenv, ".config", "AppData")
}

// dataDir is the data counterpart of os.UserConfigDir, which Go lacks:
// $XDG_DATA_HOME or ~/.local/share on Unix, Application Support on macOS,
// %LocalAppData% on Windows.
func dataDir(getenv func(string) string) (string, error) {
	if runtime.GOOS != "darwin" && runtime.GOOS != "windows" {
		if d := getenv("XDG_DATA_HOME"); d != "" {
			return d, nil
		}
	}
	return platformDir(getenv, filepath.Join(".local", "share"), "LocalAppData")
}

func platformDir(getenv func(string) string, unixHomeSubdir, windowsEnv string) (string, error) {
	switch runtime.GOOS {
	case "windows":
		if d := getenv(windowsEnv); d != "" {
			return d, nil
		}
		return "", fmt.Errorf("%%%s%% is not set", windowsEnv)
	case "darwin":
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("$HOME is not set")
		}
		return filepath.Join(home, "Library", "Application Support"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("neither $XDG_CONFIG_HOME/$XDG_DATA_HOME nor $HOME is set")
	}
	return filepath.Join(home, unixHomeSubdir), nil
}

// makeStateDirs creates the directories of the state files, private to
// the user.
func makeStateDirs(p paths) error {
	for _, f := range []string{p.keyFile, p.db} {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
	}
	return nil
}
