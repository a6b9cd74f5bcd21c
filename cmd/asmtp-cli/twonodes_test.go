package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/wait"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Two people, each using asmtp-cli as a user of their own node, exchange
// mail both ways over two nodes on loopback: a whole RFC 5322 message one
// way, sent while the recipient's device was not connected (so it
// arrives by the client's query of its inbox), and plain text the other
// way, both on the recipients' inboxes (naming v2) after the exchange of
// contact cards. Each message is printed once however often one syncs,
// reads back with the sender verified, and keeps the body.
//
// (The same exchange with a bridge account is TestBridgeAccountAndCLIUser.)
func TestTwoUsersOnTwoNodes(t *testing.T) {
	alice, bob, _, _ := usersOnTwoNodes(t)
	_, alicePassport := alice.identity()
	_, bobPassport := bob.identity()
	exchangeCards(t, alice, bob)

	// Alice writes while Bob's device is not connected: his node keeps
	// the mail on his inbox until his sync asks.
	mailFile := writeFile(t, "hello.eml", "From: Alice <alice@example.com>\r\nSubject: Hello Bob\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\nGrüße from Alice.\r\n")
	if out := alice.must("send", "--to", "bob", "--file", mailFile); !strings.HasPrefix(out, "sent ") {
		t.Fatalf("send printed %q", out)
	}

	got := awaitMail(t, bob, 20*time.Second, "Alice's mail in Bob's sync")
	if !regexp.MustCompile(`^\S+ alice Hello Bob\n$`).MatchString(got) {
		t.Fatalf("Bob's sync printed %q, want one line <time> alice Hello Bob", got)
	}

	// Bob answers in plain text, naming Alice by her passport id.
	noteFile := writeFile(t, "note.txt", "Hi Alice\nthanks for the mail.\n")
	bob.must("send", "--to", alicePassport, "--file", noteFile)
	got = awaitMail(t, alice, 20*time.Second, "Bob's note in Alice's sync")
	if !regexp.MustCompile(`^\S+ bob Hi Alice\n$`).MatchString(got) {
		t.Fatalf("Alice's sync printed %q, want one line <time> bob Hi Alice", got)
	}

	// Nothing comes twice.
	for _, d := range []*device{alice, bob} {
		if again := d.must("sync"); again != "" {
			t.Errorf("%s: a second sync printed %q", filepath.Base(d.dir), again)
		}
	}

	// Reading: the sender line is the verified contact, the From header is
	// the sender's pseudo-address whatever the file said.
	list := strings.Fields(bob.must("list"))
	if len(list) < 4 {
		t.Fatalf("Bob's list: %q", list)
	}
	shown := bob.must("read", list[0][:8])
	for _, want := range []string{"From:     alice <" + alicePassport + "@asmtp> (sender verified by key)", "Subject:  Hello Bob", "Grüße from Alice."} {
		if !strings.Contains(shown, want) {
			t.Errorf("Bob's read lacks %q:\n%s", want, shown)
		}
	}
	raw := bob.must("read", "--raw", list[0])
	if !strings.Contains(raw, "From: <"+alicePassport+"@asmtp>\r\n") || strings.Contains(raw, "alice@example.com") {
		t.Errorf("raw message has the wrong From:\n%s", raw)
	}
	list = strings.Fields(alice.must("list", "--from", "bob"))
	note := alice.must("read", "--raw", list[0])
	for _, want := range []string{"To: <" + alicePassport + "@asmtp>\r\n", "From: <" + bobPassport + "@asmtp>\r\n", "Subject: Hi Alice\r\n", "thanks for the mail."} {
		if !strings.Contains(note, want) {
			t.Errorf("Alice's copy of the note lacks %q:\n%s", want, note)
		}
	}
	if contacts := alice.must("contacts"); contacts != "bob "+bobPassport+" 1 v2\n" {
		t.Errorf("contacts = %q", contacts)
	}

	// The prompt takes its commands from a pipe too.
	out, errOut, err := alice.run("sync\nopen bob\n1\nquit\n")
	if err != nil {
		t.Fatalf("prompt: %v\n%s", err, errOut)
	}
	for _, want := range []string{"You have 0 new message(s).", "message [1-1 or id]: ", "thanks for the mail."} {
		if !strings.Contains(out, want) {
			t.Errorf("prompt output lacks %q:\n%s", want, out)
		}
	}
}

// usersOnTwoNodes starts Alice's node and Bob's (which knows hers), points
// each device at its own node and makes the two contacts of each other,
// not yet with each other's cards.
func usersOnTwoNodes(t *testing.T) (alice, bob *device, nodeA, nodeB *testNode) {
	t.Helper()
	alice, bob = newDevice(t, "alice"), newDevice(t, "bob")
	aliceKey, _ := alice.identity()
	bobKey, _ := bob.identity()
	nodeA = startNode(t, []keys.PublicKey{aliceKey})
	nodeB = startNode(t, []keys.PublicKey{bobKey}, nodeA)
	alice.useNode(nodeA)
	bob.useNode(nodeB)
	introduce(t, alice, "alice", bob, "bob")
	return alice, bob, nodeA, nodeB
}

// exchangeCards runs naming v2's card exchange: Alice's first sync sends
// her card to Bob's intro bucket; Bob's syncs take it and answer it on
// Alice's inbox; Alice's sync takes the answer. Both then show the other
// as a v2 contact.
func exchangeCards(t *testing.T, alice, bob *device) {
	t.Helper()
	alice.must("sync")
	awaitV2(t, bob, "alice")
	awaitV2(t, alice, "bob")
}

// awaitMail syncs d until the sync prints something, and returns that.
func awaitMail(t *testing.T, d *device, timeout time.Duration, what string) string {
	t.Helper()
	var got string
	wait.Until(t, timeout, what, func() bool {
		got = d.must("sync")
		return got != ""
	})
	return got
}

// awaitV2 syncs d until its contact name shows as a v2 contact: its card
// came.
func awaitV2(t *testing.T, d *device, name string) {
	t.Helper()
	wait.Until(t, 30*time.Second, filepath.Base(d.dir)+"'s contact "+name+" becoming v2", func() bool {
		d.must("sync")
		for _, line := range strings.Split(d.must("contacts"), "\n") {
			if f := strings.Fields(line); len(f) == 4 && f[0] == name && f[3] == "v2" {
				return true
			}
		}
		return false
	})
}

// Naming v2 to a recipient whose node is down: Alice's mail goes to Bob's
// inbox for his node, which her node holds (PublishTo, PROTOCOL.md §16.6)
// until his node, started again on its address, subscribes the inbox;
// Bob's next sync prints it once.
func TestV2MailToAnOfflineNode(t *testing.T) {
	alice, bob, _, nodeB := usersOnTwoNodes(t)
	exchangeCards(t, alice, bob)

	nodeB.stop(t)
	note := writeFile(t, "note.txt", "While you were away\nAlice\n")
	if out := alice.must("send", "--to", "bob", "--file", note); !strings.HasPrefix(out, "sent ") {
		t.Fatalf("send printed %q", out)
	}
	nodeB = nodeB.restart(t)
	bob.useNode(nodeB)
	got := awaitMail(t, bob, 30*time.Second, "Alice's mail in Bob's sync after his node came back")
	if !regexp.MustCompile(`^\S+ alice While you were away\n$`).MatchString(got) {
		t.Fatalf("Bob's sync printed %q, want one line <time> alice While you were away", got)
	}
	if again := bob.must("sync"); again != "" {
		t.Errorf("a second sync printed %q", again)
	}
}

// Contacts from before naming v2 (the migration makes them v1 contacts)
// are offered v2 once: when both sides speak it they become v2 contacts,
// their pair topic leaves both nodes' gossip, and mail flows on the
// inboxes.
func TestV1ContactsMoveToV2(t *testing.T) {
	alice, bob, nodeA, nodeB := usersOnTwoNodes(t)
	var pair topic.Topic
	for _, d := range []*device{alice, bob} {
		p, _ := unlockedProfile(t, d)
		if _, err := p.db.sql.Exec(`UPDATE contacts SET scheme = 1`); err != nil {
			t.Fatal(err)
		}
		cs, err := p.db.contacts(context.Background())
		if err != nil || len(cs) != 1 {
			t.Fatalf("contacts %v, %v", cs, err)
		}
		pair = cs[0].topic
		p.close()
	}
	alice.must("sync")
	bob.must("sync")
	listsPair := func() bool {
		for _, n := range []*testNode{nodeA, nodeB} {
			for _, sub := range n.Gossip().Subscriptions {
				if sub.Topic == pair {
					return true
				}
			}
		}
		return false
	}
	if !listsPair() {
		t.Fatal("the v1 contacts' pair topic is in no node's gossip")
	}
	awaitV2(t, bob, "alice")
	awaitV2(t, alice, "bob")
	wait.Until(t, 30*time.Second, "the pair topic to leave both nodes' gossip", func() bool {
		alice.must("sync")
		bob.must("sync")
		return !listsPair()
	})

	alice.must("send", "--to", "bob", "--file", writeFile(t, "n.txt", "Now on v2\n"))
	got := awaitMail(t, bob, 20*time.Second, "Alice's mail in Bob's sync")
	if !regexp.MustCompile(`^\S+ alice Now on v2\n$`).MatchString(got) {
		t.Fatalf("Bob's sync printed %q", got)
	}
}
