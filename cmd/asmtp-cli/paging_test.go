package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// ★ More messages wait on one topic (Bob's inbox of the day) than the
// node returns for one query:
// one sync fetches them all, page by page over the device's link, prints
// each once and warns about nothing; the next sync finds nothing new.
func TestSyncPagesLargeBacklog(t *testing.T) {
	const total = nodeQueryLimit + 150
	alice, bob := newDevice(t, "alice"), newDevice(t, "bob")
	alice.identity()
	bobKey, _ := bob.identity()
	introduce(t, alice, "alice", bob, "bob")
	home := startNode(t, []keys.PublicKey{bobKey})
	bob.useNode(home)
	bob.must("sync") // Bob's node keeps his inbox of the day from now on

	// Alice's mail reaches Bob's node while Bob is away; it is published
	// there through a session (what a peer's relay would store).
	ctx := context.Background()
	ap, as := unlockedProfile(t, alice)
	toBob, err := ap.db.findContact(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bp, _ := unlockedProfile(t, bob)
	seed, err := bp.db.inboxSeed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bp.close()
	bobInbox := topic.Inbox(seed, topic.InboxDay(time.Now()))
	publisher := keys.Public(newNodeKey(t))
	home.AddUser(publisher)
	s, err := home.Attach(publisher)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range total {
		id, err := mail.NewMessageID(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		contents, err := mail.Seal(rand.Reader, as.shared, toBob.sharedKey, id, fmt.Appendf(nil, "Subject: note %d\r\n\r\nbody\r\n", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Publish(ctx, bobInbox, contents[0]); err != nil {
			t.Fatal(err)
		}
	}

	out, errOut, err := bob.run("", "sync")
	if err != nil {
		t.Fatalf("sync: %v\n%s", err, errOut)
	}
	if strings.Contains(errOut, "more messages") || strings.Contains(errOut, "warning") {
		t.Errorf("sync warned:\n%s", errOut)
	}
	subjects := map[string]bool{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) != 4 || f[1] != "alice" || f[2] != "note" {
			t.Fatalf("unexpected line %q", line)
		}
		if subjects[f[3]] {
			t.Fatalf("note %s printed twice", f[3])
		}
		subjects[f[3]] = true
	}
	if len(subjects) != total {
		t.Fatalf("sync printed %d of %d notes", len(subjects), total)
	}
	if again := bob.must("sync"); again != "" {
		t.Errorf("the next sync printed %d bytes more", len(again))
	}
}
