package accounts_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/card"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
)

// TestInboxSeed: drawn once, the same afterwards and after reopening,
// different per account, and unreadable with another node key.
func TestInboxSeed(t *testing.T) {
	e := accountstest.NewEnv(t)
	ctx := context.Background()
	e.AddAccount(t, "alice")
	e.AddAccount(t, "bob")
	first, err := e.Reg.InboxSeed(ctx, e.NodeKey, "alice")
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.Reg.InboxSeed(ctx, e.NodeKey, "alice")
	if err != nil || again != first {
		t.Fatalf("second read: %x, %v; want %x", again, err, first)
	}
	if bob, err := e.Reg.InboxSeed(ctx, e.NodeKey, "bob"); err != nil || bob == first {
		t.Fatalf("bob's seed %x (%v) equals alice's", bob, err)
	}
	if _, err := e.Reg.InboxSeed(ctx, accountstest.NodeKey(t), "alice"); !errors.Is(err, accounts.ErrWrongNodeKey) {
		t.Fatalf("another node key: %v, want ErrWrongNodeKey", err)
	}
}

// TestTakeCard: only a contact's card is kept, a newer one replaces it,
// an older or equal one does not; a contact that sent one is v2 and
// stays so when CardWait passes.
func TestTakeCard(t *testing.T) {
	e := accountstest.NewEnv(t)
	ctx := context.Background()
	e.AddAccount(t, "alice")
	carol := accountstest.NewOutsider(t)
	issued := time.Unix(1_765_000_000, 0).UTC()
	c := card.Card{Scheme: card.SchemeV2, Issued: issued, Passport: carol.Passport.ID(), Addr: "192.0.2.1:9800"}
	c.Seed[0], c.Node[0] = 1, 2

	if _, err := e.Reg.TakeCard(ctx, "alice", c); !errors.Is(err, accounts.ErrNoContact) {
		t.Fatalf("card of a stranger: %v, want ErrNoContact", err)
	}
	if _, err := e.Reg.AddContact(ctx, "alice", "Carol", carol.Passport.Export()); err != nil {
		t.Fatal(err)
	}
	if nm, err := e.Reg.ContactNaming(ctx, "alice", c.Passport); err != nil || nm.Scheme != accounts.SchemeUnknown || nm.Card != nil {
		t.Fatalf("before any card: %+v, %v", nm, err)
	}
	if err := e.Reg.CardSent(ctx, "alice", c.Passport, issued); err != nil {
		t.Fatal(err)
	}
	older, newer := c, c
	older.Issued, newer.Issued = issued.Add(-time.Second), issued.Add(time.Second)
	newer.Seed[0] = 9
	for _, step := range []struct {
		name string
		card card.Card
		want bool
	}{{"first", c, true}, {"same issue", c, false}, {"older", older, false}, {"newer", newer, true}} {
		if got, err := e.Reg.TakeCard(ctx, "alice", step.card); err != nil || got != step.want {
			t.Fatalf("%s card: recorded %v, %v; want %v", step.name, got, err, step.want)
		}
	}
	if err := e.Reg.FallBackToV1(ctx, "alice", c.Passport); err != nil {
		t.Fatal(err)
	}
	nm, err := e.Reg.ContactNaming(ctx, "alice", c.Passport)
	if err != nil || nm.Scheme != accounts.SchemeV2 || nm.Card == nil || *nm.Card != newer || !nm.CardSentAt.Equal(issued) {
		t.Fatalf("naming %+v (card %+v), %v; want v2 with the newer card, sent at %v", nm, nm.Card, err, issued)
	}
}

// TestFallBackToV1: a contact that never sent a card becomes v1; a card
// that comes later makes it v2 again.
func TestFallBackToV1(t *testing.T) {
	e := accountstest.NewEnv(t)
	ctx := context.Background()
	e.AddAccount(t, "alice")
	carol := accountstest.NewOutsider(t)
	if _, err := e.Reg.AddContact(ctx, "alice", "Carol", carol.Passport.Export()); err != nil {
		t.Fatal(err)
	}
	if err := e.Reg.FallBackToV1(ctx, "alice", carol.Passport.ID()); err != nil {
		t.Fatal(err)
	}
	if nm, _ := e.Reg.ContactNaming(ctx, "alice", carol.Passport.ID()); nm.Scheme != accounts.SchemeV1 || nm.Scheme.String() != "v1" {
		t.Fatalf("after the fallback: %v", nm.Scheme)
	}
	c := card.Card{Scheme: card.SchemeV2, Issued: time.Now(), Passport: carol.Passport.ID(), Addr: "192.0.2.1:9800"}
	if ok, err := e.Reg.TakeCard(ctx, "alice", c); err != nil || !ok {
		t.Fatalf("late card: %v, %v", ok, err)
	}
	if nm, _ := e.Reg.ContactNaming(ctx, "alice", carol.Passport.ID()); nm.Scheme != accounts.SchemeV2 {
		t.Fatalf("after a late card: %v", nm.Scheme)
	}
}
