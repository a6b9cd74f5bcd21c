package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// Mail a device published for another node's inbox (naming v2, PROTOCOL.md
// §16.6) is acknowledged once the sender's node stored it: it survives a
// kill -9 of the sender's node while the recipient's node is down, and
// reaches the recipient's device once both are back, without anyone
// asking. The device's acknowledgement is the answer to a later
// operation on the same link (operations are handled in order).
func TestHeldInboxMailSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs two nodes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bin := buildBinaries(t)
	userS, userR := newUserKey(t), newUserKey(t)
	var seed topic.InboxSeed
	rand.Read(seed[:])
	inbox := topic.Inbox(seed, topic.InboxDay(time.Now()))

	s, r := newProc(t, bin, "s"), newProc(t, bin, "r")
	generateKeys(t, s, r)
	s.writeConfig(t, nil, keys.Public(userS))
	r.writeConfig(t, nil, keys.Public(userR))
	for _, p := range []*proc{s, r} {
		p.start(t)
		p.waitListening(t)
	}
	dev := connect(ctx, t, r, userR)
	ask(ctx, t, dev, wire.UserOp{Code: wire.OpRegisterInbox, Topic: inbox})
	dev.close()
	r.kill(t)

	sender := connect(ctx, t, s, userS)
	sendOp(ctx, t, sender, wire.UserOp{Code: wire.OpPublishTo, Topic: inbox, Node: r.id, Addr: r.addr()})
	for i := range 3 {
		sender.send(ctx, t, wire.Topic{Topic: inbox, Content: fmt.Appendf(nil, "held %d", i)})
	}
	ask(ctx, t, sender, wire.UserOp{Code: wire.OpPeerNaming, Node: r.id}) // acknowledged
	s.kill(t)
	sender.close()

	r.start(t)
	r.waitListening(t)
	dev = connect(ctx, t, r, userR)
	defer dev.close()
	ask(ctx, t, dev, wire.UserOp{Code: wire.OpPeerNaming, Node: s.id}) // the device is attached
	s.start(t)
	s.waitListening(t)
	got := dev.collect(inbox, "held ", 3, 40*time.Second)
	for i := range 3 {
		if want := fmt.Sprintf("held %d", i); got[want] != 1 {
			t.Errorf("the recipient's device got %q %d times, want once (all: %v)", want, got[want], got)
		}
	}
}

// sendOp sends a user operation.
func sendOp(ctx context.Context, t *testing.T, c *client, op wire.UserOp) {
	t.Helper()
	m, err := op.Message()
	if err != nil {
		t.Fatal(err)
	}
	c.send(ctx, t, m)
}

// ask sends a user operation, then a PeerNaming one, and waits for the
// latter's answer: the node handled both.
func ask(ctx context.Context, t *testing.T, c *client, op wire.UserOp) {
	t.Helper()
	if op.Code != wire.OpPeerNaming {
		sendOp(ctx, t, c, op)
	}
	sendOp(ctx, t, c, wire.UserOp{Code: wire.OpPeerNaming})
	if _, ok := c.receive(wire.UserOpTopic, "\x85", 10*time.Second); !ok {
		t.Fatal("no answer to a user operation within 10 s")
	}
}
