package accounts_test

import (
	"context"
	"database/sql"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
)

// A registry made before retired topics kept the rotated key (schema
// version 1) is upgraded: its retired topics are dropped at once, as that
// version would have, and its contacts' rotations get the grace period.
func TestRegistryMigrationFromVersion1(t *testing.T) {
	ctx := context.Background()
	// Real rows, made by the current schema, to copy into a version 1 file.
	src := accountstest.NewEnv(t)
	src.AddAccount(t, "alice")
	carol := accountstest.NewOutsider(t)
	first, err := src.Reg.AddContact(ctx, "alice", "Carol", carol.Passport.Export())
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	path, err := accounts.PrepareDataFile(dir, accounts.RegistryFile)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // ATTACH is per connection
	stale := topic.Topic{0x01}
	for _, q := range []string{accounts.Migrations[0], "PRAGMA user_version = 1",
		"ATTACH DATABASE '" + filepath.Join(src.Dir, accounts.RegistryFile) + "' AS src",
		"INSERT INTO accounts SELECT * FROM src.accounts",
		"INSERT INTO contacts SELECT * FROM src.contacts",
		"DETACH DATABASE src",
		"INSERT INTO retired_topics (account, topic) VALUES ('alice', x'" + hexTopic(stale) + "')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	reg, err := accounts.OpenRegistry(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	var version int
	if err := reg.DB().QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil || version != len(accounts.Migrations) {
		t.Fatalf("schema version %d, %v; want %d", version, err, len(accounts.Migrations))
	}
	graceStart := time.Now().Add(-time.Hour)
	if retired, err := reg.RetiredTopics(ctx, "alice", graceStart); err != nil || len(retired) != 1 || retired[0] != stale {
		t.Fatalf("retired topics after the upgrade = %v, %v; want the old row, due at once", retired, err)
	}
	if err := reg.ForgetRetiredTopic(ctx, "alice", stale); err != nil {
		t.Fatal(err)
	}

	carol.Rotate(t)
	if _, changed, err := reg.UpdateContactPassport(ctx, "alice", carol.Passport.ID(), carol.Passport.Export()); err != nil || !changed {
		t.Fatalf("rotation after the upgrade: changed=%v, %v", changed, err)
	}
	if retired, err := reg.RetiredTopics(ctx, "alice", graceStart); err != nil || len(retired) != 0 {
		t.Fatalf("retired within the grace period = %v, %v; want none", retired, err)
	}
	if c, err := reg.RotatedContactByTopic(ctx, "alice", first.Topic, graceStart); err != nil || c.SharedKey != first.SharedKey {
		t.Fatalf("the old topic after a rotation in an upgraded registry: %+v, %v", c, err)
	}

	// Opening again applies nothing more.
	reg.Close()
	if reg, err = accounts.OpenRegistry(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.RotatedContactByTopic(ctx, "alice", first.Topic, graceStart); err != nil {
		t.Fatalf("reopened: %v", err)
	}
}

func hexTopic(t topic.Topic) string { return hex.EncodeToString(t[:]) }
