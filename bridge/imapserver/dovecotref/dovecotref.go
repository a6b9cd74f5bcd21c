// Package dovecotref starts a throwaway Dovecot IMAP server, the behavioural
// and performance reference for the bridge's IMAP server: its conversation
// tests compare answers with it and contrib/bench/imap measures against it.
//
// The server runs from Debian's dovecot-imapd package with a configuration
// written to a temporary directory: a loopback port, plain-text LOGIN,
// any user name with one password, Maildir storage under the directory, and
// the same special-use mailboxes the bridge creates. It runs as the current
// user; as root, mail is owned by Dovecot's own "dovecot" user (Dovecot
// refuses uid 0 for mail) in a separate world-traversable temporary directory.
package dovecotref

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"text/template"
	"time"
)

// Password is accepted for every user name.
const Password = "dovecot-ref-password"

// Server is a running Dovecot.
type Server struct {
	Addr string // host:port of its IMAP listener
	Dir  string
	cmd  *exec.Cmd
	done chan error

	cleanup string // directory to remove after stopping
}

var configTemplate = template.Must(template.New("dovecot.conf").Parse(`
base_dir = {{.Dir}}/run
state_dir = {{.Dir}}/state
log_path = {{.Dir}}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 0
mail_location = maildir:{{.MailDir}}/mail/%u
default_internal_user = {{.User}}
default_login_user = {{.LoginUser}}
default_internal_group = {{.Group}}
passdb {
  driver = static
  args = password={{.Password}}
}
userdb {
  driver = static
  args = uid={{.MailUID}} gid={{.MailGID}} home={{.MailDir}}/home/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = {{.Port}}
  }
  inet_listener imaps {
    port = 0
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0600
  }
  unix_listener stats-writer {
    mode = 0600
  }
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox INBOX {
    auto = subscribe
  }
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
  mailbox Drafts {
    special_use = \Drafts
    auto = subscribe
  }
  mailbox Trash {
    special_use = \Trash
    auto = subscribe
  }
  mailbox Junk {
    special_use = \Junk
    auto = subscribe
  }
  mailbox Archive {
    special_use = \Archive
    auto = subscribe
  }
}
{{range .Settings}}{{.}}
{{end}}`))

// Start writes a configuration under dir and starts Dovecot in the
// foreground on a free loopback port. Stop must be called. Settings are
// extra configuration lines, for a test that needs Dovecot tuned.
func Start(ctx context.Context, dir string, settings ...string) (*Server, error) {
	binary, err := exec.LookPath("dovecot")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/dovecot"); statErr != nil {
			return nil, fmt.Errorf("dovecot not found (install Debian's dovecot-imapd): %w", err)
		}
		binary = "/usr/sbin/dovecot"
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	me, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("current user: %w", err)
	}
	group, err := user.LookupGroupId(me.Gid)
	if err != nil {
		return nil, fmt.Errorf("current group: %w", err)
	}
	loginUser := me.Username
	if me.Uid == "0" {
		loginUser = "dovenull" // Dovecot refuses to run its login process as root
	}
	mailDir, mailUID, mailGID := dir, me.Uid, me.Gid
	if me.Uid == "0" {
		mailDir, mailUID, mailGID, err = mailDirForRoot()
		if err != nil {
			return nil, err
		}
	}
	for _, sub := range []string{"run", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("dovecot dir: %w", err)
		}
	}
	var conf bytes.Buffer
	err = configTemplate.Execute(&conf, map[string]any{
		"Dir": dir, "MailDir": mailDir, "MailUID": mailUID, "MailGID": mailGID, "Port": port, "Password": Password, "UID": me.Uid, "GID": me.Gid,
		"User": me.Username, "Group": group.Name, "LoginUser": loginUser, "Settings": settings,
	})
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("write dovecot.conf: %w", err)
	}
	cmd := exec.CommandContext(ctx, binary, "-F", "-c", confPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dovecot: %w", err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, cmd: cmd, done: make(chan error, 1)}
	if mailDir != dir {
		s.cleanup = mailDir
	}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			return nil, fmt.Errorf("dovecot exited: %v\n%s%s", err, stderr.String(), log)
		default:
		}
		if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
			c.Close()
			return s, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return nil, errors.New("dovecot did not start listening within 15 s")
}

// Stop stops Dovecot and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	if s.cleanup != "" {
		os.RemoveAll(s.cleanup)
	}
}

// mailDirForRoot makes a mail directory owned by the "dovecot" user.
func mailDirForRoot() (dir, uid, gid string, err error) {
	u, err := user.Lookup("dovecot")
	if err != nil {
		return "", "", "", fmt.Errorf("dovecot user (created by Debian's dovecot-core): %w", err)
	}
	dir, err = os.MkdirTemp("", "dovecotref-mail-")
	if err != nil {
		return "", "", "", err
	}
	uidN, _ := strconv.Atoi(u.Uid)
	gidN, _ := strconv.Atoi(u.Gid)
	for _, d := range []string{dir, filepath.Join(dir, "mail"), filepath.Join(dir, "home")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", "", "", err
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return "", "", "", err
		}
		if err := os.Chown(d, uidN, gidN); err != nil {
			return "", "", "", err
		}
	}
	return dir, u.Uid, u.Gid, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
