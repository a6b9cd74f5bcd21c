package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"
)

// Summary is what the node's database records about its state, for an
// operator's status report.
type Summary struct {
	LastSeen       time.Time // zero if the node never recorded itself running
	Gossips        []Gossip  // the stored gossips (peers of the saved views)
	Registrations  int       // (user, topic) registrations
	Users          int       // distinct registered users
	Topics         int       // distinct registered topics
	Messages       int64     // topic messages stored
	ContentBytes   int64     // their content, what storage.max_size bounds
	OldestMessage  time.Time // zero when no message is stored
	NewestMessage  time.Time
	SchemaVersion  int
	MaxSchemaKnown int
}

// ReadSummary reads a Summary from the database at path through a
// read-only connection: it neither creates the file nor migrates it, and
// it runs beside a node that has the database open (WAL readers do not
// block the writer). A missing file is an error wrapping os.ErrNotExist.
func ReadSummary(ctx context.Context, path string) (Summary, error) {
	var s Summary
	if _, err := os.Stat(path); err != nil {
		return s, fmt.Errorf("node database: %w", err)
	}
	q := url.Values{}
	q.Add("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return s, fmt.Errorf("open node database %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s, fmt.Errorf("read node database %s: %w", path, err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&s.SchemaVersion); err != nil {
		return s, fmt.Errorf("read node database %s: %w", path, err)
	}
	s.MaxSchemaKnown = len(migrations)
	if s.SchemaVersion == 0 {
		return s, fmt.Errorf("node database %s: not initialised (asmtpd never ran)", path)
	}
	var unix int64
	err = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, lastSeenKey).Scan(&unix)
	switch {
	case err == nil:
		s.LastSeen = time.Unix(unix, 0)
	case !errors.Is(err, sql.ErrNoRows):
		return s, fmt.Errorf("read last seen: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, time, bytes FROM gossips ORDER BY id`)
	if err != nil {
		return s, fmt.Errorf("read gossips: %w", err)
	}
	for rows.Next() {
		var g Gossip
		var id []byte
		if err := rows.Scan(&id, &g.Time, &g.Bytes); err != nil {
			rows.Close()
			return s, fmt.Errorf("read gossips: %w", err)
		}
		if err := fixed(g.ID[:], id, "gossip id"); err != nil {
			rows.Close()
			return s, err
		}
		s.Gossips = append(s.Gossips, g)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return s, fmt.Errorf("read gossips: %w", err)
	}
	err = tx.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT user), count(DISTINCT topic) FROM registrations`).
		Scan(&s.Registrations, &s.Users, &s.Topics)
	if err != nil {
		return s, fmt.Errorf("read registrations: %w", err)
	}
	var oldest, newest sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT count(*), min(received_at), max(received_at), coalesce(sum(length(content)), 0) FROM messages`).
		Scan(&s.Messages, &oldest, &newest, &s.ContentBytes)
	if err != nil {
		return s, fmt.Errorf("read messages: %w", err)
	}
	if oldest.Valid {
		s.OldestMessage, s.NewestMessage = time.Unix(oldest.Int64, 0), time.Unix(newest.Int64, 0)
	}
	return s, nil
}
