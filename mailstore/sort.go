package mailstore

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// sortColumns are the SQL expressions SORT orders by, per key (RFC 5256):
// DATE is the Date: header in UTC, or INTERNALDATE without one.
var sortColumns = map[imap.SortKey]string{
	imap.SortKeyArrival: "m.internal_date",
	imap.SortKeyCc:      "k.cc_key",
	imap.SortKeyDate:    "coalesce(k.sent_date, m.internal_date)",
	imap.SortKeyFrom:    "k.from_key",
	imap.SortKeySize:    "b.size",
	imap.SortKeySubject: "k.subject",
	imap.SortKeyTo:      "k.to_key",
}

// Sort returns the UIDs of the messages matching criteria (see Search),
// ordered by keys, ties in UID order: one query over the sort keys cached
// at insert, so no message is parsed.
func (db *DB) Sort(ctx context.Context, id MailboxID, criteria *imap.SearchCriteria, keys []imap.SortCriterion) ([]UID, error) {
	var order []string
	from := "messages m"
	joined := map[string]bool{}
	for _, k := range keys {
		col, ok := sortColumns[k.Key]
		if !ok {
			return nil, fmt.Errorf("sort mailbox %s: unknown sort key %q", id, k.Key)
		}
		// Join only the tables the keys need: each costs a lookup a message.
		for _, j := range []struct{ alias, join string }{
			{"b.", " JOIN bodies b ON b.id = m.body_id"}, {"k.", " JOIN sort_keys k ON k.body_id = m.body_id"},
		} {
			if strings.Contains(col, j.alias) && !joined[j.alias] {
				from += j.join
				joined[j.alias] = true
			}
		}
		if k.Reverse {
			col += " DESC"
		}
		order = append(order, col)
	}
	matched, err := db.matching(ctx, id, criteria)
	if err != nil {
		return nil, fmt.Errorf("sort mailbox %s: %w", id, err)
	}
	rows, err := db.r.QueryContext(ctx, "SELECT m.uid FROM "+from+" WHERE m.mailbox_id = ? ORDER BY "+strings.Join(order, ", ")+", m.uid", id.row)
	if err != nil {
		return nil, fmt.Errorf("sort mailbox %s: %w", id, err)
	}
	defer rows.Close()
	var out []UID
	for rows.Next() {
		var uid UID
		if err := rows.Scan(&uid); err != nil {
			return nil, fmt.Errorf("sort mailbox %s: %w", id, err)
		}
		if matched.has(uid) {
			out = append(out, uid)
		}
	}
	return out, rows.Err()
}

// uidFilter is the result of a search: all messages, or those listed.
type uidFilter struct {
	all  bool
	uids map[UID]bool
}

func (f uidFilter) has(uid UID) bool { return f.all || f.uids[uid] }

// matching runs the search part of SORT and THREAD, skipping it for ALL
// (an empty criteria), which is what clients send most.
func (db *DB) matching(ctx context.Context, id MailboxID, criteria *imap.SearchCriteria) (uidFilter, error) {
	if _, err := ownedMailbox(ctx, db.r, id); err != nil {
		return uidFilter{}, err
	}
	if IsAll(criteria) {
		return uidFilter{all: true}, nil
	}
	uids, err := db.Search(ctx, id, criteria)
	if err != nil {
		return uidFilter{}, err
	}
	f := uidFilter{uids: make(map[UID]bool, len(uids))}
	for _, uid := range uids {
		f.uids[uid] = true
	}
	return f, nil
}

// IsAll reports whether criteria match every message (SEARCH ALL). Its
// dates are compared by IsZero: go-imap's parser leaves them zero in UTC,
// which reflect does not count as zero.
func IsAll(criteria *imap.SearchCriteria) bool {
	if criteria == nil {
		return true
	}
	c := *criteria
	for _, t := range []*time.Time{&c.Since, &c.Before, &c.SentSince, &c.SentBefore} {
		if t.IsZero() {
			*t = time.Time{}
		}
	}
	return reflect.ValueOf(c).IsZero()
}

// threadRecords reads what THREAD needs of the matching messages, in UID
// order.
func (db *DB) threadRecords(ctx context.Context, id MailboxID, criteria *imap.SearchCriteria) ([]threadMessage, error) {
	matched, err := db.matching(ctx, id, criteria)
	if err != nil {
		return nil, err
	}
	rows, err := db.r.QueryContext(ctx, `SELECT m.uid, k.sent_date, m.internal_date, k.subject, k.reply, k.message_id, k.refs
		FROM messages m JOIN sort_keys k ON k.body_id = m.body_id WHERE m.mailbox_id = ? ORDER BY m.uid`, id.row)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []threadMessage
	for rows.Next() {
		var (
			m        threadMessage
			sent     sql.NullInt64
			internal int64
			refs     string
		)
		if err := rows.Scan(&m.uid, &sent, &internal, &m.subject, &m.reply, &m.messageID, &refs); err != nil {
			return nil, err
		}
		if !matched.has(m.uid) {
			continue
		}
		m.date = sentOrInternal(sent, internal).Unix()
		m.references = strings.Fields(refs)
		out = append(out, m)
	}
	return out, rows.Err()
}
