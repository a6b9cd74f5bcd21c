package mailstore

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Search returns the UIDs, ascending, of the messages matching criteria.
// Sequence-number criteria must already be turned into UID sets by the
// caller, which alone knows its session's numbering. Text matching is a
// case-insensitive substring match against the decoded text cached at
// insert.
func (db *DB) Search(ctx context.Context, id MailboxID, criteria *imap.SearchCriteria) ([]UID, error) {
	q := compileQuery(criteria)
	if q.seqNums {
		return nil, ErrNotUIDCriteria
	}
	if _, err := ownedMailbox(ctx, db.r, id); err != nil {
		return nil, fmt.Errorf("search mailbox %s: %w", id, err)
	}
	mailboxID := id.row
	cols := "m.uid, m.flags, m.internal_date, m.internal_tz, b.size, b.sent_day"
	from := "messages m JOIN bodies b ON b.id = m.body_id"
	if q.text {
		cols += ", d.header_text, d.body_text"
		from += " JOIN body_data d ON d.body_id = m.body_id"
	}
	rows, err := db.r.QueryContext(ctx, "SELECT "+cols+" FROM "+from+" WHERE m.mailbox_id = ? ORDER BY m.uid", mailboxID)
	if err != nil {
		return nil, fmt.Errorf("search mailbox %d: %w", mailboxID, err)
	}
	defer rows.Close()
	var out []UID
	for rows.Next() {
		var (
			rec      searchRecord
			flags    string
			date, tz int64
			sentDay  sql.NullInt64
		)
		dest := []any{&rec.uid, &flags, &date, &tz, &rec.size, &sentDay}
		if q.text {
			dest = append(dest, &rec.header, &rec.body)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("search mailbox %d: %w", mailboxID, err)
		}
		rec.flags = splitFlags(flags)
		rec.day = dayOf(time.Unix(date, 0).In(time.FixedZone("", int(tz))))
		rec.sentDay = sentDay.Int64 // 0 when unknown: matches no SENT* criterion
		if matches(&rec, criteria) {
			out = append(out, rec.uid)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search mailbox %d: %w", mailboxID, err)
	}
	return out, nil
}

type searchRecord struct {
	uid          UID
	flags        []string
	size         int64
	day, sentDay int64
	header, body sql.RawBytes // lower case, see index.go
}

type queryNeeds struct{ text, seqNums bool }

func compileQuery(c *imap.SearchCriteria) queryNeeds {
	var q queryNeeds
	var walk func(c *imap.SearchCriteria)
	walk = func(c *imap.SearchCriteria) {
		q.text = q.text || len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0
		q.seqNums = q.seqNums || len(c.SeqNum) > 0
		for i := range c.Not {
			walk(&c.Not[i])
		}
		for i := range c.Or {
			walk(&c.Or[i][0])
			walk(&c.Or[i][1])
		}
	}
	walk(c)
	return q
}

func matches(r *searchRecord, c *imap.SearchCriteria) bool {
	for _, set := range c.UID {
		if !set.Contains(r.uid) {
			return false
		}
	}
	if !dayInRange(r.day, c.Since, c.Before) {
		return false
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		if r.sentDay == 0 || !dayInRange(r.sentDay, c.SentSince, c.SentBefore) {
			return false
		}
	}
	for _, f := range c.Flag {
		if !hasFlag(r.flags, string(f)) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if hasFlag(r.flags, string(f)) {
			return false
		}
	}
	if c.Larger != 0 && r.size <= c.Larger {
		return false
	}
	if c.Smaller != 0 && r.size >= c.Smaller {
		return false
	}
	for _, h := range c.Header {
		if !headerContains(r.header, h.Key, h.Value) {
			return false
		}
	}
	for _, s := range c.Body {
		if !bytes.Contains(r.body, []byte(searchFold(s))) {
			return false
		}
	}
	for _, s := range c.Text {
		needle := []byte(searchFold(s))
		if !bytes.Contains(r.header, needle) && !bytes.Contains(r.body, needle) {
			return false
		}
	}
	for i := range c.Not {
		if matches(r, &c.Not[i]) {
			return false
		}
	}
	for _, or := range c.Or {
		if !matches(r, &or[0]) && !matches(r, &or[1]) {
			return false
		}
	}
	return true
}

func dayInRange(day int64, since, before time.Time) bool {
	if !since.IsZero() && day < dayOf(since) {
		return false
	}
	if !before.IsZero() && day >= dayOf(before) {
		return false
	}
	return true
}

// headerContains reports whether a field named key has a value containing
// value; an empty value matches any message that has the field.
func headerContains(header []byte, key, value string) bool {
	prefix := []byte(strings.ToLower(key) + ": ")
	needle := []byte(searchFold(value))
	for len(header) > 0 {
		line := header
		if i := bytes.IndexByte(header, '\n'); i >= 0 {
			line, header = header[:i], header[i+1:]
		} else {
			header = nil
		}
		if bytes.HasPrefix(line, prefix) && bytes.Contains(line[len(prefix):], needle) {
			return true
		}
	}
	return false
}
