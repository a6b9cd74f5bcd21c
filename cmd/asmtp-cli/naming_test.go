package main

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/card"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/noise"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// What a content on one of our inboxes or our intro bucket turns into:
// mail is stored only from a contact (matched by the Noise X key inside),
// a card only when sealed by the current key of the passport it names and
// newer than the one recorded; cards for other members of the bucket and
// contents of another size there are passed over.
func TestAcceptNaming(t *testing.T) {
	alice, bob := newDevice(t, "alice"), newDevice(t, "bob")
	alice.identity()
	bob.identity()
	introduce(t, alice, "alice", bob, "bob")
	ap, as := unlockedProfile(t, alice)
	_, bs := unlockedProfile(t, bob)
	ctx := context.Background()
	bobContact, err := ap.db.findContact(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	inbox, bucket := topic.Topic{0x1a}, topic.Topic{0xb0}
	c := &client{p: ap, s: as, cards: make(chan struct{}, 1),
		naming: &naming{bits: 0, bucket: bucket, inboxes: map[topic.Topic]bool{inbox: true}}}
	aliceKey := as.shared.Public()
	mallory, err := keys.GenerateSharedSecret(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sealMail := func(from keys.SharedSecret, text string) []byte {
		t.Helper()
		id, err := mail.NewMessageID(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		contents, err := mail.Seal(rand.Reader, from, aliceKey, id, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return contents[0]
	}
	now := time.Now().Truncate(time.Second)
	bobCard := func(issued time.Time, node byte) card.Card {
		return card.Card{Scheme: card.SchemeV2, Answer: true, Issued: issued, Passport: bobContact.passport,
			Seed: topic.InboxSeed{9}, Node: keys.PublicKey{node}, Addr: "127.0.0.1:1"}
	}
	sealCard := func(from keys.SharedSecret, to keys.SharedKey, cd card.Card) []byte {
		t.Helper()
		sealed, err := card.Seal(rand.Reader, noise.NewXKey(from), to, cd)
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	hello := sealMail(bs.shared, "Subject: hi\r\n\r\nhello\r\n")

	tests := []struct {
		name     string
		topic    topic.Topic
		content  []byte
		subject  string // of the new message; "" for none
		err      string // part of the rejection; "" for none
		naming   scheme // bob's afterwards
		cardNode byte   // of bob's recorded card afterwards; 0 for none
	}{
		{name: "mail from the contact", topic: inbox, content: hello, subject: "hi"},
		{name: "the same content again", topic: inbox, content: hello},
		{name: "mail from no contact", topic: inbox, content: sealMail(mallory, "Subject: spam\r\n\r\n"), err: "none of your contacts"},
		{name: "mail not for us", topic: inbox, content: sealCard(bs.shared, mallory.Public(), bobCard(now, 1))},
		{name: "card forged in bob's name", topic: bucket, content: sealCard(mallory, aliceKey, bobCard(now, 1)), err: "rejected a contact card naming bob"},
		{name: "card for another bucket member", topic: bucket, content: sealCard(bs.shared, mallory.Public(), bobCard(now, 1))},
		{name: "mail on the bucket", topic: bucket, content: sealMail(bs.shared, "Subject: x\r\n\r\n")},
		{name: "bob's card", topic: inbox, content: sealCard(bs.shared, aliceKey, bobCard(now, 2)), naming: schemeV2, cardNode: 2},
		{name: "an older card of bob", topic: bucket, content: sealCard(bs.shared, aliceKey, bobCard(now.Add(-time.Hour), 3)), naming: schemeV2, cardNode: 2},
		{name: "a newer card of bob", topic: inbox, content: sealCard(bs.shared, aliceKey, bobCard(now.Add(time.Hour), 4)), naming: schemeV2, cardNode: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := c.acceptNaming(ctx, nil, wire.Topic{Topic: tc.topic, Content: tc.content}, tc.topic == bucket, time.Now())
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one with %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.subject == "" && m != nil:
				t.Fatalf("stored a message: %s", summaryLine(*m))
			case tc.subject != "" && (m == nil || summary(*m) != tc.subject):
				t.Fatalf("message %v, want subject %q", m, tc.subject)
			}
			got, err := ap.db.findContact(ctx, "bob")
			if err != nil {
				t.Fatal(err)
			}
			var node byte
			if got.card != nil {
				node = got.card.Node[0]
			}
			if got.naming != tc.naming || node != tc.cardNode {
				t.Fatalf("bob is %v with card node %d, want %v with %d", got.naming, node, tc.naming, tc.cardNode)
			}
		})
	}
}
