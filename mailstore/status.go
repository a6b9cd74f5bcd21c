package mailstore

import (
	"context"
	"fmt"
	"time"
)

// LastAppended returns, for each sender key of the account's appended
// inbound messages still on record (ForgetAppended bounds the record),
// when the latest of them was appended.
func (db *DB) LastAppended(ctx context.Context, account string) (map[[32]byte]time.Time, error) {
	rows, err := db.r.QueryContext(ctx,
		"SELECT sender, max(delivered_at) FROM inbound_delivered WHERE account = ? GROUP BY sender", account)
	if err != nil {
		return nil, fmt.Errorf("last appended to %s: %w", account, err)
	}
	defer rows.Close()
	out := make(map[[32]byte]time.Time)
	for rows.Next() {
		var sender []byte
		var ms int64
		if err := rows.Scan(&sender, &ms); err != nil {
			return nil, fmt.Errorf("last appended to %s: %w", account, err)
		}
		var k [32]byte
		if len(sender) != len(k) {
			return nil, fmt.Errorf("last appended to %s: malformed sender (%d bytes)", account, len(sender))
		}
		copy(k[:], sender)
		out[k] = time.UnixMilli(ms)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("last appended to %s: %w", account, err)
	}
	return out, nil
}

// CountHeaderMatches counts the messages in an account's mailbox whose
// header search text (decoded header fields, lower case) contains every
// one of the given lower-case substrings. It is for reports, not SEARCH.
func (db *DB) CountHeaderMatches(ctx context.Context, account, mailbox string, substrings ...string) (int, error) {
	query := `SELECT count(*) FROM messages m
		JOIN mailboxes b ON b.id = m.mailbox_id
		JOIN accounts a ON a.id = b.account_id
		JOIN body_data d ON d.body_id = m.body_id
		WHERE a.name = ? AND b.name = ?`
	args := []any{account, mailbox}
	for _, s := range substrings {
		query += " AND instr(d.header_text, ?) > 0"
		args = append(args, s)
	}
	var n int
	if err := db.r.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count messages in %s of %s: %w", mailbox, account, err)
	}
	return n, nil
}
