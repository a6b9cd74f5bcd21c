package imapserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/bridge/imapserver/testmail"
)

// BenchmarkFetchEnvelopes is FETCH 1:* (FLAGS ENVELOPE) over 2,000 messages.
func BenchmarkFetchEnvelopes(b *testing.B) {
	ts := startServer(b)
	for i := range 2000 {
		if _, err := ts.store.Deliver(context.Background(), testUser, "INBOX", testmail.Message(i), nil, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	c := dialRaw(b, ts.addr)
	c.login()
	c.cmd("EXAMINE INBOX")
	b.ResetTimer()
	for range b.N {
		if lines, st := c.cmd("FETCH 1:* (FLAGS ENVELOPE)"); len(lines) != 2000 || !strings.Contains(st, "OK") {
			b.Fatal(len(lines), st)
		}
	}
}
