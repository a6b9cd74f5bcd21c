package bridge

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// outsider is someone else's passport, with what its owner needs to
// update it.
type outsider struct {
	p      *passport.Passport
	device ed25519.PrivateKey
	psk    keys.Seed
}

func newOutsider(t testing.TB) *outsider {
	t.Helper()
	o := &outsider{device: newNodeKey(t)}
	rand.Read(o.psk[:])
	var err error
	if o.p, _, err = passport.Create(rand.Reader, time.Now(), "phone", o.device, o.psk); err != nil {
		t.Fatal(err)
	}
	return o
}

func (o *outsider) sharedKey() keys.SharedKey {
	k, _ := o.p.SharedKey()
	return k
}

// rotate publishes a new shared key in a new block.
func (o *outsider) rotate(t testing.TB) {
	t.Helper()
	b := o.p.Next()
	if _, err := b.RotateSharedKey(rand.Reader, o.psk); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finalize(o.device, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func ownSharedKey(t testing.TB, a Account) keys.SharedKey {
	t.Helper()
	p, err := passport.Import(a.Blocks, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k, _ := p.SharedKey()
	return k
}

func TestAddContactFromPassport(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	alice, _ := e.addAccount(t, "alice")
	bob, _ := e.addAccount(t, "bob")
	carol := newOutsider(t)

	c, err := e.reg.AddContact(ctx, "alice", "  Carol  ", carol.p.Export())
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "Carol" || c.Passport != carol.p.ID() || c.Pending() || c.SharedKey != carol.sharedKey() {
		t.Fatalf("contact = %+v", c)
	}
	if want := topic.Derive(ownSharedKey(t, alice), carol.sharedKey()); c.Topic != want {
		t.Errorf("topic = %s, want Derive(alice, carol) = %s", c.Topic, want)
	}

	// Two local accounts as each other's contacts share one topic.
	ab, err := e.reg.AddContact(ctx, "alice", "Bob", bob.Blocks)
	if err != nil {
		t.Fatal(err)
	}
	ba, err := e.reg.AddContact(ctx, "bob", "Alice", alice.Blocks)
	if err != nil {
		t.Fatal(err)
	}
	if ab.Topic != ba.Topic {
		t.Error("alice→bob and bob→alice topics differ")
	}
	if got, err := e.reg.ContactByTopic(ctx, "bob", ab.Topic); err != nil || got.Name != "Alice" {
		t.Errorf("bob's contact on the shared topic = %q, %v; want Alice", got.Name, err)
	}

	for _, bad := range []struct {
		name, account, petname string
		blocks                 []byte
		want                   error
	}{
		{"same petname, other case", "alice", "CAROL", newOutsider(t).p.Export(), ErrContactExists},
		{"same passport, other petname", "alice", "Caroline", carol.p.Export(), ErrContactExists},
		{"unknown account", "dave", "Carol", carol.p.Export(), ErrNoAccount},
		{"truncated passport", "alice", "Eve", carol.p.Export()[:100], passport.ErrMalformed},
	} {
		if _, err := e.reg.AddContact(ctx, bad.account, bad.petname, bad.blocks); !errors.Is(err, bad.want) {
			t.Errorf("%s: %v, want %v", bad.name, err, bad.want)
		}
	}
	list, err := e.reg.Contacts(ctx, "alice")
	if err != nil || len(list) != 2 || list[0].Name != "Bob" || list[1].Name != "Carol" {
		t.Fatalf("Contacts = %+v, %v; want Bob and Carol", list, err)
	}
}

func TestPendingContact(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.addAccount(t, "alice")
	carol := newOutsider(t)
	c, err := e.reg.AddPendingContact(ctx, "alice", "Carol", carol.p.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !c.Pending() {
		t.Fatal("a contact added by id is not pending")
	}
	if _, _, err := e.reg.UpdateContactPassport(ctx, "alice", carol.p.ID(), newOutsider(t).p.Export()); err == nil {
		t.Fatal("a pending contact took another passport")
	}
	got, changed, err := e.reg.UpdateContactPassport(ctx, "alice", carol.p.ID(), carol.p.Export())
	if err != nil || !changed || got.Pending() || got.SharedKey != carol.sharedKey() || got.Topic == (topic.Topic{}) {
		t.Fatalf("resolving: %+v, %v, %v", got, changed, err)
	}
	stored, err := e.reg.Contact(ctx, "alice", carol.p.ID())
	if err != nil || stored.Topic != got.Topic || stored.Pending() {
		t.Fatalf("stored after resolving: %+v, %v", stored, err)
	}
	if _, changed, err := e.reg.UpdateContactPassport(ctx, "alice", carol.p.ID(), carol.p.Export()); changed || err != nil {
		t.Errorf("the same passport again: changed=%v, %v; want no change", changed, err)
	}
}

func TestContactRotationAndRemoval(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.addAccount(t, "alice")
	carol := newOutsider(t)
	first, err := e.reg.AddContact(ctx, "alice", "Carol", carol.p.Export())
	if err != nil {
		t.Fatal(err)
	}
	stale := carol.p.Export()
	carol.rotate(t)

	rotated, changed, err := e.reg.UpdateContactPassport(ctx, "alice", carol.p.ID(), carol.p.Export())
	if err != nil || !changed || rotated.SharedKey != carol.sharedKey() || rotated.Topic == first.Topic {
		t.Fatalf("rotation: %+v, %v, %v; want the new key and a new topic", rotated, changed, err)
	}
	// The old topic is kept for the grace period, with the old key.
	if retired, err := e.reg.RetiredTopics(ctx, "alice", time.Now().Add(-time.Hour)); err != nil || len(retired) != 0 {
		t.Fatalf("retired within the grace period = %v, %v; want none", retired, err)
	}
	graced, err := e.reg.RotatedContacts(ctx, "alice", time.Now().Add(-time.Hour))
	if err != nil || len(graced) != 1 || graced[0].Topic != first.Topic || graced[0].SharedKey != first.SharedKey || graced[0].Name != "Carol" {
		t.Fatalf("rotated contacts = %+v, %v; want carol with her old key and topic", graced, err)
	}
	if c, err := e.reg.RotatedContactByTopic(ctx, "alice", first.Topic, time.Now().Add(-time.Hour)); err != nil || c.SharedKey != first.SharedKey {
		t.Fatalf("RotatedContactByTopic(old topic) = %+v, %v", c, err)
	}
	if _, err := e.reg.RotatedContactByTopic(ctx, "alice", rotated.Topic, time.Now().Add(-time.Hour)); !errors.Is(err, ErrNoContact) {
		t.Errorf("RotatedContactByTopic(current topic): %v, want ErrNoContact", err)
	}
	// Past the grace period it is due.
	after := time.Now().Add(time.Second)
	if retired, err := e.reg.RetiredTopics(ctx, "alice", after); err != nil || len(retired) != 1 || retired[0] != first.Topic {
		t.Fatalf("retired after the grace period = %v, %v; want the old topic", retired, err)
	}
	if _, err := e.reg.RotatedContactByTopic(ctx, "alice", first.Topic, after); !errors.Is(err, ErrNoContact) {
		t.Errorf("RotatedContactByTopic after the grace period: %v, want ErrNoContact", err)
	}
	if _, changed, err := e.reg.UpdateContactPassport(ctx, "alice", carol.p.ID(), stale); changed || err != nil {
		t.Errorf("a stale copy: changed=%v, %v; want ignored", changed, err)
	}
	if got, _ := e.reg.Contact(ctx, "alice", carol.p.ID()); got.SharedKey != carol.sharedKey() {
		t.Error("a stale copy rolled the shared key back")
	}

	// Removal retires at once both the current topic and the old one
	// still in its grace period.
	if err := e.reg.RemoveContact(ctx, "alice", "carol"); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.RemoveContact(ctx, "alice", "carol"); !errors.Is(err, ErrNoContact) {
		t.Errorf("removing twice: %v, want ErrNoContact", err)
	}
	graceStart := time.Now().Add(-time.Hour)
	retired, err := e.reg.RetiredTopics(ctx, "alice", graceStart)
	if err != nil || len(retired) != 2 || !hasTopic(retired, first.Topic) || !hasTopic(retired, rotated.Topic) {
		t.Fatalf("retired after removal = %v, %v; want the current and the old topic", retired, err)
	}
	if graced, _ := e.reg.RotatedContacts(ctx, "alice", graceStart); len(graced) != 0 {
		t.Errorf("rotated contacts after removal = %+v, want none", graced)
	}
	if err := e.reg.ForgetRetiredTopic(ctx, "alice", first.Topic); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.AddContact(ctx, "alice", "Carol", carol.p.Export()); err != nil {
		t.Fatal(err)
	}
	if retired, _ := e.reg.RetiredTopics(ctx, "alice", graceStart); len(retired) != 0 {
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
		got, err := CheckPetname(c.in)
		if (err == nil) != (c.want != "") || got != c.want {
			t.Errorf("CheckPetname(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
