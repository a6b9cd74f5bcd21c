package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
)

// A restarted bridge asks each contact's node for every inbox at once
// (Session.CatchUp, §16.6): with more inboxes than the peer's QueryBurst,
// sending them all at once overran the peer's request rate, the peer
// quarantined the node for QuarantineDuration, and the mail it held for
// those inboxes (and every mail after) stayed out of reach. The queries
// must be paced below the peer's rate, and every held message arrive.
func TestManyCatchUpsStayUnderPeerRate(t *testing.T) {
	ctx := context.Background()
	snd := startNetwork(t, 1, nil)[0]
	cfg, user := testConfig(t, t.TempDir())
	rcv := start(t, cfg, user)
	rs, ss := rcv.session(t), snd.session(t)
	const inboxes = 2*DefaultQueryBurst + MaxStrikes
	since := time.Now().Add(-time.Minute)
	var topics []topic.Topic
	for i := range inboxes {
		inbox := topic.Inbox(topic.InboxSeed{byte(i), 7}, topic.InboxDay(time.Now()))
		if err := rs.RegisterInbox(ctx, inbox); err != nil {
			t.Fatal(err)
		}
		// No hint: the sender's node holds it until asked.
		if err := ss.PublishTo(ctx, inbox, nil, fmt.Appendf(nil, "held %d", i)); err != nil {
			t.Fatal(err)
		}
		topics = append(topics, inbox)
	}
	from := PeerAddr{ID: snd.ID(), Addr: snd.Addr().String()}
	for _, inbox := range topics {
		if err := rs.CatchUp(ctx, inbox, from, since); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	for _, d := range receive(t, rs, inboxes, 30*time.Second) {
		got[string(d.Content)] = true
	}
	if len(got) != inboxes {
		t.Errorf("caught up %d distinct messages, want %d", len(got), inboxes)
	}
	if q := snd.Stats().Quarantined; q != 0 {
		t.Errorf("the holder quarantined %d peers for their catch-up queries", q)
	}
}
