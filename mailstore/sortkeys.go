package mailstore

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// sortKeys are what SORT and THREAD compare of a message, kept in the
// sort_keys table so that ordering 10,000 messages is one query.
type sortKeys struct {
	sentDate   any // unix seconds, or nil when Date: is absent or unparsable
	subject    string
	reply      bool
	from       string
	to         string
	cc         string
	messageID  string
	references string
}

// sortKeysOf derives the keys from a message's envelope and its References
// message ids. Addresses compare by the first one's mailbox (local part),
// as RFC 5256 says and Dovecot does, groups included (a group's name).
func sortKeysOf(env *imap.Envelope, references []string) sortKeys {
	k := sortKeys{from: firstMailbox(env.From), to: firstMailbox(env.To), cc: firstMailbox(env.Cc)}
	k.subject, k.reply = baseSubject(env.Subject)
	k.subject = truncateUTF8(k.subject, maxSortKeyBytes)
	if !env.Date.IsZero() {
		k.sentDate = env.Date.Unix()
	}
	k.messageID = strings.ToLower(truncateUTF8(env.MessageID, maxSortKeyBytes))
	if len(references) == 0 && len(env.InReplyTo) > 0 {
		references = env.InReplyTo[:1]
	}
	var kept []string
	for _, ref := range references[max(0, len(references)-maxReferences):] {
		kept = append(kept, truncateUTF8(ref, maxSortKeyBytes))
	}
	references = kept
	k.references = strings.ToLower(strings.Join(references, " "))
	return k
}

func firstMailbox(addrs []imap.Address) string {
	if len(addrs) == 0 {
		return ""
	}
	return asciiUpper(truncateUTF8(addrs[0].Mailbox, maxSortKeyBytes))
}

// maxSortKeyBytes bounds each key kept (a header can be megabytes long);
// keys that differ only beyond it sort as equal, by UID.
const maxSortKeyBytes = 512

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

func insertSortKeys(ctx context.Context, tx *sql.Tx, bodyID int64, k sortKeys) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO sort_keys (body_id, sent_date, subject, reply, from_key, to_key, cc_key, message_id, refs)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, bodyID, k.sentDate, k.subject, k.reply, k.from, k.to, k.cc, k.messageID, k.references)
	if err != nil {
		return fmt.Errorf("insert sort keys: %w", err)
	}
	return nil
}

// backfillSortKeys gives the bodies stored before the sort_keys table
// theirs, from the cached envelope and header text, in batches so that a
// large store is not one long write.
func (db *DB) backfillSortKeys(ctx context.Context) error {
	for {
		n, err := db.backfillSortBatch(ctx, 500)
		if err != nil {
			return fmt.Errorf("backfill sort keys: %w", err)
		}
		if n == 0 {
			return nil
		}
	}
}

func (db *DB) backfillSortBatch(ctx context.Context, limit int) (int, error) {
	n := 0
	err := db.write(ctx, func(tx *sql.Tx) ([]change, error) {
		rows, err := tx.QueryContext(ctx, `SELECT b.id, b.envelope, d.header_text FROM bodies b
			JOIN body_data d ON d.body_id = b.id LEFT JOIN sort_keys k ON k.body_id = b.id
			WHERE k.body_id IS NULL LIMIT ?`, limit)
		if err != nil {
			return nil, err
		}
		type pending struct {
			id   int64
			keys sortKeys
		}
		var todo []pending
		for rows.Next() {
			var (
				id     int64
				envBuf []byte
				header string
			)
			if err := rows.Scan(&id, &envBuf, &header); err != nil {
				rows.Close()
				return nil, err
			}
			env, err := decodeEnvelope(envBuf)
			if err != nil {
				env = &imap.Envelope{}
			}
			todo = append(todo, pending{id, sortKeysOf(env, referencesInHeaderText(header))})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		for _, p := range todo {
			if err := insertSortKeys(ctx, tx, p.id, p.keys); err != nil {
				return nil, err
			}
		}
		n = len(todo)
		return nil, nil
	})
	return n, err
}

var msgIDPattern = regexp.MustCompile(`<([^<>\s]+)>`)

// referencesInHeaderText finds the References ids in the cached header
// text (headerSearchText's "name: value" lines).
func referencesInHeaderText(header string) []string {
	var ids []string
	for _, line := range strings.Split(header, "\n") {
		if v, ok := strings.CutPrefix(line, "references: "); ok {
			for _, m := range msgIDPattern.FindAllStringSubmatch(v, -1) {
				ids = append(ids, m[1])
			}
		}
	}
	return ids
}

// sentOrInternal is a message's date for SORT DATE and THREAD: the Date:
// header, or INTERNALDATE without one (RFC 5256).
func sentOrInternal(sent sql.NullInt64, internal int64) time.Time {
	if sent.Valid {
		return time.Unix(sent.Int64, 0)
	}
	return time.Unix(internal, 0)
}
