package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/wait"
)

// A passport put on one node is fetched by another through the network;
// an update published on the passport topic is applied and persisted by
// both; re-uploading an older copy merges instead of failing. This is the
// v1 path (passport topics, §16.8): a v2 node keeps what it looks up
// without subscribing (TestPassportLookupWithoutPassportTopics).
func TestPassports(t *testing.T) {
	nodes := startNetwork(t, 3, func(c *Config) { c.NamingV1 = true })
	ctx := context.Background()
	home, far := nodes[1], nodes[2]
	sHome, sFar := home.session(t), far.session(t)

	p, _, err := passport.Create(rand.Reader, time.Now(), "alice", home.user, keys.PassphraseSeed("test"))
	if err != nil {
		t.Fatal(err)
	}
	genesis := p.Export()
	id, err := sHome.PutPassport(ctx, genesis)
	if err != nil || id != p.ID() {
		t.Fatalf("put passport: %s, %v", id, err)
	}
	if got, err := sHome.GetPassport(ctx, id); err != nil || !bytes.Equal(got, genesis) {
		t.Fatalf("local get: %v", err)
	}

	tp := topic.ForPassport(id)
	wait.Until(t, 10*time.Second, "the far node learns the passport's subscriber", func() bool {
		return len(far.overlay.handoff(tp)) > 0
	})
	got, err := sFar.GetPassport(ctx, id)
	if err != nil || !bytes.Equal(got, genesis) {
		t.Fatalf("get through the network: %v", err)
	}
	if _, err := sFar.GetPassport(ctx, passport.Hash{1}); err == nil {
		t.Fatal("an unknown passport was found")
	}

	// Both nodes now keep the passport and subscribe to its topic.
	// (Only the two subscribers matter here: in a three-node overlay the
	// third node's tiny Cyclon view may briefly hold neither.)
	keepers := []*testNode{home, far}
	wait.Until(t, 10*time.Second, "ring of the passport topic", func() bool {
		return ringsConverged(keepers, keepers, tp) == nil
	})
	b := p.Next()
	if err := b.AddMasterKey("phone", newKey(t)); err != nil {
		t.Fatal(err)
	}
	blk, err := b.Finalize(home.user, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := sHome.Publish(ctx, tp, blk.Bytes()); err != nil {
		t.Fatal(err)
	}
	updated := p.Export()
	for _, n := range []*testNode{home, far} {
		wait.Until(t, 5*time.Second, "update applied", func() bool {
			got, _, _ := n.store.Passport(ctx, id)
			return bytes.Equal(got, updated)
		})
	}

	if _, err := sHome.PutPassport(ctx, genesis); err != nil {
		t.Fatalf("re-upload of an older copy: %v", err)
	}
	if got, _ := sHome.GetPassport(ctx, id); !bytes.Equal(got, updated) {
		t.Fatal("re-upload of an older copy lost the update")
	}
}
