package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/mailstore/reassembly"
)

// A version 1 database moves to the shared reassembly: the messages it
// holds are recorded as appended (copies stay ignored), and chunks held
// in the old table, which carried no kind, are fetched anew: their topic
// is read again from the start, with the record of contents seen.
func TestMigrateToSharedReassembly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "asmtp.db")
	v1, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	sender := [32]byte{7}
	stmts := []string{
		schema,
		`INSERT INTO contacts (id, petname, passport_id, blocks, shared_key, topic, synced_at) VALUES
			(1, 'bob', x'01', x'', x'0700000000000000000000000000000000000000000000000000000000000000', x'01', 1700000000),
			(2, 'carol', x'02', x'', x'0800000000000000000000000000000000000000000000000000000000000000', x'02', 1700000000)`,
		`INSERT INTO messages (contact, id, kind, received_at, data) VALUES (1, x'00112233445566778899aabbccddeeff', 1, 1700000000, x'')`,
		`INSERT INTO chunks (contact, id, idx, count, total, data, received_at) VALUES (1, x'ff', 0, 2, 9, x'', 1700000000)`,
		`INSERT INTO seen (hash, seen_at) VALUES (x'01', 1700000000)`,
	}
	for _, s := range stmts {
		if _, err := v1.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	v1.Close()

	d, err := openDB(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close() })
	var version, seen, bobSynced, carolSynced int
	for q, into := range map[string]*int{
		"PRAGMA user_version":                         &version,
		"SELECT count(*) FROM seen":                   &seen,
		"SELECT synced_at FROM contacts WHERE id = 1": &bobSynced,
		"SELECT synced_at FROM contacts WHERE id = 2": &carolSynced,
	} {
		if err := d.sql.QueryRow(q).Scan(into); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if version != 3 || seen != 0 || bobSynced != 0 || carolSynced != 1700000000 {
		t.Errorf("version %d, %d seen, synced at %d and %d; want 3, 0, 0 and 1700000000", version, seen, bobSynced, carolSynced)
	}
	id := [16]byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	if ok, err := reassembly.Appended(ctx, d.sql, reassemblyScope, sender, id); err != nil || !ok {
		t.Errorf("the message held before: appended %v, %v; want true", ok, err)
	}
	if err := d.prune(ctx, time.Now()); err != nil {
		t.Errorf("prune after the migration: %v", err)
	}
	// Naming v2 (version 3): the contacts held are v1 contacts, to whom
	// no card went yet.
	var scheme, sentAt int
	if err := d.sql.QueryRow(`SELECT scheme, card_sent_at FROM contacts WHERE id = 1`).Scan(&scheme, &sentAt); err != nil || scheme != 1 || sentAt != 0 {
		t.Errorf("bob's naming after the migration: scheme %d, card sent %d, %v; want 1, 0", scheme, sentAt, err)
	}
	d.close()
	if d, err = openDB(ctx, path); err != nil { // version 3 opens as it is
		t.Fatal(err)
	}
	d.close()
}

// The inbox seed is drawn once, random, and kept across openings.
func TestInboxSeedKept(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "asmtp.db")
	var seeds [3]topic.InboxSeed
	for i := range seeds {
		d, err := openDB(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if seeds[i], err = d.inboxSeed(ctx); err != nil {
			t.Fatal(err)
		}
		d.close()
	}
	if seeds[0] == (topic.InboxSeed{}) || seeds[1] != seeds[0] || seeds[2] != seeds[0] {
		t.Errorf("seeds %x", seeds)
	}
	other, err := openDB(ctx, filepath.Join(t.TempDir(), "other.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.close()
	if s, err := other.inboxSeed(ctx); err != nil || s == seeds[0] {
		t.Errorf("another profile's seed %x, %v", s, err)
	}
}
