package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/noise"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// unlockedProfile opens a device's profile with its secrets.
func unlockedProfile(t *testing.T, d *device) (*profile, secrets) {
	t.Helper()
	a := &app{opts: options{dir: d.dir}, getenv: func(k string) string { return d.env[k] }}
	p, s, err := a.unlocked(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.close() })
	return p, s
}

// What a received Topic message turns into: only content sealed to us by
// the contact the topic belongs to is stored, each message once whatever
// comes twice, chunks reassembled in any order, upstream raw text read as
// text.
func TestAccept(t *testing.T) {
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
	c := &client{p: ap, s: as}
	aliceKey := as.shared.Public()
	mallory, err := keys.GenerateSharedSecret(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	seal := func(from keys.SharedSecret, to keys.SharedKey, id mail.MessageID, text string) [][]byte {
		t.Helper()
		contents, err := mail.Seal(rand.Reader, from, to, id, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return contents
	}
	newID := func() mail.MessageID {
		id, err := mail.NewMessageID(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := newID()
	hello := seal(bs.shared, aliceKey, first, "Subject: one\r\n\r\nfirst\r\n")[0]
	legacy, err := noise.Seal(rand.Reader, bs.shared, aliceKey, []byte("upstream text\nsecond line"))
	if err != nil {
		t.Fatal(err)
	}
	big := "Subject: big\r\n\r\n" + strings.Repeat("x", mail.ChunkDataSize+100)
	bigChunks := seal(bs.shared, aliceKey, newID(), big)
	if len(bigChunks) != 2 {
		t.Fatalf("%d chunks", len(bigChunks))
	}

	// Two messages under one id, of different sizes: their chunks disagree.
	otherID := newID()
	other := seal(bs.shared, aliceKey, otherID, big)
	disagreeing := seal(bs.shared, aliceKey, otherID, big+strings.Repeat("y", mail.ChunkDataSize))[1]

	tests := []struct {
		name    string
		topic   topic.Topic
		content []byte
		subject string // of the new message; "" for none
		data    string // the whole message, when checked
		err     string // part of the rejection; "" for none
	}{
		{name: "mail from the contact", topic: bobContact.topic, content: hello, subject: "one"},
		{name: "the same content again", topic: bobContact.topic, content: hello},
		{name: "the same message resealed", topic: bobContact.topic, content: seal(bs.shared, aliceKey, first, "Subject: one\r\n\r\nfirst\r\n")[0]},
		{name: "upstream raw text", topic: bobContact.topic, content: legacy, subject: "upstream text"},
		{name: "sealed by someone else", topic: bobContact.topic, content: seal(mallory, aliceKey, newID(), "Subject: forged\r\n\r\n")[0], err: "not sealed by bob's key"},
		{name: "not for us", topic: bobContact.topic, content: seal(bs.shared, mallory.Public(), newID(), "Subject: x\r\n\r\n")[0]},
		{name: "no contact's topic", topic: topic.Topic{1}, content: seal(bs.shared, aliceKey, newID(), "Subject: y\r\n\r\n")[0]},
		{name: "second chunk first", topic: bobContact.topic, content: bigChunks[1]},
		{name: "first chunk completes", topic: bobContact.topic, content: bigChunks[0], subject: "big", data: big},
		{name: "a chunk after completion", topic: bobContact.topic, content: bigChunks[1]},
		{name: "first of two chunks", topic: bobContact.topic, content: other[0]},
		{name: "a chunk that disagrees with it", topic: bobContact.topic, content: disagreeing, err: "chunk disagrees"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := c.accept(ctx, wire.Topic{Topic: tc.topic, Content: tc.content}, time.Now())
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one with %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.subject == "" && m != nil:
				t.Fatalf("stored a message: %s", summaryLine(*m))
			case tc.subject != "" && m == nil:
				t.Fatal("no new message")
			case tc.subject != "" && summary(*m) != tc.subject:
				t.Fatalf("subject %q, want %q", summary(*m), tc.subject)
			case tc.data != "" && !bytes.Equal(m.data, []byte(tc.data)):
				t.Fatalf("reassembled %d bytes, want %d", len(m.data), len(tc.data))
			}
		})
	}
	ms, err := ap.db.messages(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 {
		t.Fatalf("%d messages stored, want 3", len(ms))
	}
}
