package imapserver

import (
	"strings"
	"testing"

	"github.com/asmtp/asmtp/bridge/imapserver/dovecotref"
)

// seqMatchConversation reaches the point where neither server remembers
// every expunge since the client's mod-sequence (the bridge past
// mailstore.MaxTombstones, Dovecot once its transaction log has rotated
// that far away), where QRESYNC's sequence match data decides which of
// the missing UIDs VANISHED names (RFC 7162 §3.2.5.2). 16384 messages come
// from doubling copies; UIDs 2 and 3 go before the client's state, 10 and
// up after it.
func seqMatchConversation() []string {
	cmds := append(fixture()[:1], "ENABLE QRESYNC", "SELECT INBOX")
	for range 14 {
		cmds = append(cmds, "COPY 1:* INBOX")
	}
	return append(cmds,
		`STORE 2:3 +FLAGS.SILENT (\Deleted)`, "EXPUNGE",
		"SELECT INBOX", "#save start",
		`UID STORE 10:* +FLAGS.SILENT (\Deleted)`, "EXPUNGE", `STORE 1 +FLAGS.SILENT (\Seen)`, "UNSELECT",
		"SELECT INBOX (QRESYNC (${uv} ${start} 1:16384))",
		"SELECT INBOX (QRESYNC (${uv} ${start} 1:16384 (1:3 1,4,5)))",
		"SELECT INBOX (QRESYNC (${uv} ${start} 1:16384 (1,2,4 1,4,6)))",
		"SELECT INBOX (QRESYNC (${uv} ${start} 1:16384 (1:3 1:3)))",
		"SELECT INBOX (QRESYNC (${uv} ${start} 1:16384 (3:4 3,4)))",
		"SELECT INBOX (QRESYNC (${uv} ${start} 1:16384 (1,7 1,9000)))",
		"SELECT INBOX (QRESYNC (${uv} ${start} 1:9 (1:5 1,4:7)))",
	)
}

// TestQResyncSeqMatchAgainstDovecot runs seqMatchConversation against the
// bridge and a Dovecot whose transaction log rotates at every change, so
// that it too has forgotten the expunges since the client's state.
func TestQResyncSeqMatchAgainstDovecot(t *testing.T) {
	dove := startDovecot(t,
		"mail_index_log_rotate_min_size = 0", "mail_index_log_rotate_max_size = 1", "mail_index_log2_max_age = 0")
	ts := startServerFor(t, "sm")
	cmds := seqMatchConversation()
	ours := converseModSeq(t, ts.addr, "sm", testToken, cmds)
	theirs := converseModSeq(t, dove.Addr, "sm", dovecotref.Password, cmds)
	for j, cmd := range cmds {
		if !strings.HasPrefix(cmd, "SELECT INBOX (QRESYNC") { // setting up: servers differ in unsolicited lines
			for _, answer := range []string{ours[j], theirs[j]} {
				if last := answer[strings.LastIndexByte(answer, '\n')+1:]; cmd[0] != '#' && !strings.HasPrefix(last, "OK") {
					t.Fatalf("%s: %s", trim(cmd), last)
				}
			}
			continue
		}

		if ours[j] != theirs[j] {
			t.Errorf("%s\n--- bridge:\n%s\n--- dovecot:\n%s", trim(cmd), ours[j], theirs[j])
		}
	}
}
