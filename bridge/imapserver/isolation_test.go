package imapserver

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/auth"
)

// TestStaleSelectionReachesNoOtherAccount plays issue 9's first attack with
// Python's imaplib against a running server: alice keeps a session on a
// mailbox she deleted from another connection, then the victim's new
// mailbox (bob's new folder, or the INBOX of an account created after the
// delete) is filled. Before mailbox ids were tied to their account and
// never reused, alice's UID SEARCH saw the victim's UIDs, SEARCH BODY found
// his text and EXPUNGE deleted his \Deleted messages.
func TestStaleSelectionReachesNoOtherAccount(t *testing.T) {
	tests := []struct {
		name, victim, mailbox string
		createAfter           bool // create the victim's account after alice's delete
	}{
		{"bob's new folder", "bob", "secret", false},
		{"a new account's INBOX", "carol", "INBOX", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, func(o *Options) {
				o.Authenticator = auth.NewTokenAuthenticator(map[string]string{testUser: testToken, tt.victim: "victim-token"})
			})
			if !tt.createAfter {
				if err := ts.store.CreateAccount(t.Context(), tt.victim); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(needTool(t, "python3"), "testdata/stale_selection.py",
				"127.0.0.1", ts.port(), testToken, tt.victim, "victim-token", tt.mailbox)
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
			defer timer.Stop()
			out := bufio.NewReader(stdout)
			if line, err := out.ReadString('\n'); line != "READY\n" {
				cmd.Wait()
				t.Fatalf("script: %q %v\n%s", line, err, stderr.String())
			}
			if tt.createAfter {
				if err := ts.store.CreateAccount(t.Context(), tt.victim); err != nil {
					t.Fatal(err)
				}
			}
			io.WriteString(stdin, "go\n")
			rest, _ := io.ReadAll(out)
			if err := cmd.Wait(); err != nil || !strings.HasSuffix(string(rest), "PASS\n") {
				t.Fatalf("stale session against %s: %v\n%s%s", tt.name, err, rest, stderr.String())
			}
			t.Logf("%s", rest)
		})
	}
}
