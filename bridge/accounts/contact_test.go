package accounts_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
)

func TestAddContactFromPassport(t *testing.T) {
	e := accountstest.NewEnv(t)
	ctx := context.Background()
	alice, _ := e.AddAccount(t, "alice")
	bob, _ := e.AddAccount(t, "bob")
	carol := accountstest.NewOutsider(t)

	c, err := e.Reg.AddContact(ctx, "alice", "  Carol  ", carol.Passport.Export())
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "Carol" || c.Passport != carol.Passport.ID() || c.Pending() || c.SharedKey != carol.SharedKey() {
		t.Fatalf("contact = %+v", c)
	}
	if want := topic.Derive(accountstest.OwnSharedKey(t, alice), carol.SharedKey()); c.Topic != want {
		t.Errorf("topic = %s, want Derive(alice, carol) = %s", c.Topic, want)
	}

	// Two local accounts as each other's contacts share one topic.
	ab, err := e.Reg.AddContact(ctx, "alice", "Bob", bob.Blocks)
	if err != nil {
		t.Fatal(err)
	}
	ba, err := e.Reg.AddContact(ctx, "bob", "Alice", alice.Blocks)
	if err != nil {
		t.Fatal(err)
	}
	if ab.Topic != ba.Topic {
		t.Error("alice→bob and bob→alice topics differ")
	}
	if got, err := e.Reg.ContactByTopic(ctx, "bob", ab.Topic); err != nil || got.Name != "Alice" {
		t.Errorf("bob's contact on the shared topic = %q, %v; want Alice", got.Name, err)
	}

	for _, bad := range []struct {
		name, account, petname string
		blocks                 []byte
		want                   error
	}{
		{"same petname, other case", "alice", "CAROL", accountstest.NewOutsider(t).Passport.Export(), accounts.ErrContactExists},
		{"same passport, other petname", "alice", "Caroline", carol.Passport.Export(), accounts.ErrContactExists},
		{"unknown account", "dave", "Carol", carol.Passport.Export(), accounts.ErrNoAccount},
		{"truncated passport", "alice", "Eve", carol.Passport.Export()[:100], passport.ErrMalformed},
	} {
		if _, err := e.Reg.AddContact(ctx, bad.account, bad.petname, bad.blocks); !errors.Is(err, bad.want) {
			t.Errorf("%s: %v, want %v", bad.name, err, bad.want)
		}
	}
	list, err := e.Reg.Contacts(ctx, "alice")
	if err != nil || len(list) != 2 || list[0].Name != "Bob" || list[1].Name != "Carol" {
		t.Fatalf("Contacts = %+v, %v; want Bob and Carol", list, err)
	}
}

func TestPendingContact(t *testing.T) {
	e := accountstest.NewEnv(t)
	ctx := context.Background()
	e.AddAccount(t, "alice")
	carol := accountstest.NewOutsider(t)
	c, err := e.Reg.AddPendingContact(ctx, "alice", "Carol", carol.Passport.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !c.Pending() {
		t.Fatal("a contact added by id is not pending")
	}
	if _, _, err := e.Reg.UpdateContactPassport(ctx, "alice", carol.Passport.ID(), accountstest.NewOutsider(t).Passport.Export()); err == nil {
		t.Fatal("a pending contact took another passport")
	}
	got, changed, err := e.Reg.UpdateContactPassport(ctx, "alice", carol.Passport.ID(), carol.Passport.Export())
	if err != nil || !changed || got.Pending() || got.SharedKey != carol.SharedKey() || got.Topic == (topic.Topic{}) {
		t.Fatalf("resolving: %+v, %v, %v", got, changed, err)
	}
	stored, err := e.Reg.Contact(ctx, "alice", carol.Passport.ID())
	if err != nil || stored.Topic != got.Topic || stored.Pending() {
		t.Fatalf("stored after resolving: %+v, %v", stored, err)
	}
	if _, changed, err := e.Reg.UpdateContactPassport(ctx, "alice", carol.Passport.ID(), carol.Passport.Export()); changed || err != nil {
		t.Errorf("the same passport again: changed=%v, %v; want no change", changed, err)
	}
}

func TestContactRotationAndRemoval(t *testing.T) {
	e := accountstest.NewEnv(t)
	ctx := context.Background()
	e.AddAccount(t, "alice")
	carol := accountstest.NewOutsider(t)
	first, err := e.Reg.AddContact(ctx, "alice", "Carol", carol.Passport.Export())
	if err != nil {
		t.Fatal(err)
	}
	stale := carol.Passport.Export()
	carol.Rotate(t)

	rotated, changed, err := e.Reg.UpdateContactPassport(ctx, "alice", carol.Passport.ID(), carol.Passport.Export())
	if err != nil || !changed || rotated.SharedKey != carol.SharedKey() || rotated.Topic == first.Topic {
		t.Fatalf("rotation: %+v, %v, %v; want the new key and a new topic", rotated, changed, err)
	}
	// The old topic is kept for the grace period, with the old key.
	if retired, err := e.Reg.RetiredTopics(ctx, "alice", time.Now().Add(-time.Hour)); err != nil || len(retired) != 0 {
		t.Fatalf("retired within the grace period = %v, %v; want none", retired, err)
	}
	graced, err := e.Reg.RotatedContacts(ctx, "alice", time.Now().Add(-time.Hour))
	if err != nil || len(graced) != 1 || graced[0].Topic != first.Topic || graced[0].SharedKey != first.SharedKey || graced[0].Name != "Carol" {
		t.Fatalf("rotated contacts = %+v, %v; want carol with her old key and topic", graced, err)
	}
	if c, err := e.Reg.RotatedContactByTopic(ctx, "alice", first.Topic, time.Now().Add(-time.Hour)); err != nil || c.SharedKey != first.SharedKey {
		t.Fatalf("RotatedContactByTopic(old topic) = %+v, %v", c, err)
	}
	if _, err := e.Reg.RotatedContactByTopic(ctx, "alice", rotated.Topic, time.Now().Add(-time.Hour)); !errors.Is(err, accounts.ErrNoContact) {
		t.Errorf("RotatedContactByTopic(current topic): %v, want accounts.ErrNoContact", err)
	}
	// Past the grace period it is due.
	after := time.Now().Add(time.Second)
	if retired, err := e.Reg.RetiredTopics(ctx, "alice", after); err != nil || len(retired) != 1 || retired[0] != first.Topic {
		t.Fatalf("retired after the grace period = %v, %v; want the old topic", retired, err)
	}
	if _, err := e.Reg.RotatedContactByTopic(ctx, "alice", first.Topic, after); !errors.Is(err, accounts.ErrNoContact) {
		t.Errorf("RotatedContactByTopic after the grace period: %v, want accounts.ErrNoContact", err)
	}
	if _, changed, err := e.Reg.UpdateContactPassport(ctx, "alice", carol.Passport.ID(), stale); changed || err != nil {
		t.Errorf("a stale copy: changed=%v, %v; want ignored", changed, err)
	}
	if got, _ := e.Reg.Contact(ctx, "alice", carol.Passport.ID()); got.SharedKey != carol.SharedKey() {
		t.Error("a stale copy rolled the shared key back")
	}

	// Removal retires at once both the current topic and the old one
	// still in its grace period.
	if err := e.Reg.RemoveContact(ctx, "alice", "carol"); err != nil {
		t.Fatal(err)
	}
	if err := e.Reg.RemoveContact(ctx, "alice", "carol"); !errors.Is(err, accounts.ErrNoContact) {
		t.Errorf("removing twice: %v, want accounts.ErrNoContact", err)
	}
	graceStart := time.Now().Add(-time.Hour)
	retired, err := e.Reg.RetiredTopics(ctx, "alice", graceStart)
	if err != nil || len(retired) != 2 || !hasTopic(retired, first.Topic) || !hasTopic(retired, rotated.Topic) {
		t.Fatalf("retired after removal = %v, %v; want the current and the old topic", retired, err)
	}
	if graced, _ := e.Reg.RotatedContacts(ctx, "alice", graceStart); len(graced) != 0 {
		t.Errorf("rotated contacts after removal = %+v, want none", graced)
	}
	if err := e.Reg.ForgetRetiredTopic(ctx, "alice", first.Topic); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reg.AddContact(ctx, "alice", "Carol", carol.Passport.Export()); err != nil {
		t.Fatal(err)
	}
	if retired, _ := e.Reg.RetiredTopics(ctx, "alice", graceStart); len(retired) != 0 {
		t.Errorf("retired after adding the contact back = %v, want none", retired)
	}
}

func hasTopic(ts []topic.Topic, t topic.Topic) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

func TestPetnames(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Alice", "Alice"},
		{"  Zoë Ünal  ", "Zoë Ünal"},
		{`Bob "the builder", Jr.; esq`, `Bob "the builder", Jr.; esq`},
		{"", ""},
		{"   ", ""},
		{"a\nb", ""},
		{"evil\u202egnp.exe", ""}, // right-to-left override
		{"\xff", ""},
	} {
		got, err := accounts.CheckPetname(c.in)
		if (err == nil) != (c.want != "") || got != c.want {
			t.Errorf("accounts.CheckPetname(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
