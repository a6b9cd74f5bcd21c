package mailstore

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Search returns the UIDs, ascending, of the messages matching criteria.
// Sequence-number criteria must already be turned into UID sets by the
// caller, which alone knows its session's numbering. Text matching is a
// case-insensitive substring match against the decoded text cached at
// insert.
//
// The mailbox's small columns are read first; then, if the criteria search
// text, each message's text is looked at on its own, under the store's
// memory budget, on one of the few connections that do not map the file:
// SQLite matches the body text (up to maxSearchText) itself and only the
// header text (up to maxSearchHeader) comes into Go, so the memory of
// concurrent text searches is bounded by the budget, not by the number of
// searches times the size of the texts.
func (db *DB) Search(ctx context.Context, id MailboxID, criteria *imap.SearchCriteria) ([]UID, error) {
	q := compileQuery(criteria)
	if q.seqNums {
		return nil, ErrNotUIDCriteria
	}
	if _, err := ownedMailbox(ctx, db.r, id); err != nil {
		return nil, fmt.Errorf("search mailbox %s: %w", id, err)
	}
	recs, err := searchRecords(ctx, db.r, id.row)
	if err != nil {
		return nil, fmt.Errorf("search mailbox %s: %w", id, err)
	}
	var out []UID
	for i := range recs {
		rec := &recs[i]
		if q.text {
			if err := db.loadText(ctx, rec, q.needles); err != nil {
				return nil, fmt.Errorf("search mailbox %s: %w", id, err)
			}
		}
		if matches(rec, criteria) {
			out = append(out, rec.uid)
		}
		rec.header, rec.bodyHas = nil, nil
	}
	return out, nil
}

// searchRecords reads the small columns of every message in a mailbox.
func searchRecords(ctx context.Context, q querier, mailboxID int64) ([]searchRecord, error) {
	rows, err := q.QueryContext(ctx, `SELECT m.uid, m.flags, m.internal_date, m.internal_tz, b.size, b.sent_day, m.body_id
		FROM messages m JOIN bodies b ON b.id = m.body_id WHERE m.mailbox_id = ? ORDER BY m.uid`, mailboxID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var recs []searchRecord
	for rows.Next() {
		var (
			rec      searchRecord
			flags    string
			date, tz int64
			sentDay  sql.NullInt64
		)
		if err := rows.Scan(&rec.uid, &flags, &date, &tz, &rec.size, &sentDay, &rec.bodyID); err != nil {
			return nil, err
		}
		rec.flags = splitFlags(flags)
		rec.day = dayOf(time.Unix(date, 0).In(time.FixedZone("", int(tz))))
		rec.sentDay = sentDay.Int64 // 0 when unknown: matches no SENT* criterion
		recs = append(recs, rec)
	}
	return recs, rows.Err()
}

// loadText reads a message's header text and has SQLite tell which of the
// needles its body text contains, holding the memory this takes (SQLite
// loads the body text once per needle) from the budget.
func (db *DB) loadText(ctx context.Context, rec *searchRecord, needles []string) error {
	cost := min(rec.size, maxSearchHeader) + min(rec.size, maxSearchText)*int64(len(needles))
	release, err := db.budget.acquire(ctx, cost)
	if err != nil {
		return err
	}
	defer release()
	query := "SELECT header_text"
	args := make([]any, 0, len(needles)+1)
	for _, n := range needles {
		query += ", instr(body_text, ?) > 0"
		args = append(args, n)
	}
	args = append(args, rec.bodyID)
	found := make([]bool, len(needles))
	dest := []any{&rec.header}
	for i := range found {
		dest = append(dest, &found[i])
	}
	if err := db.text.QueryRowContext(ctx, query+" FROM body_data WHERE body_id = ?", args...).Scan(dest...); err != nil {
		return fmt.Errorf("read text of message %d: %w", rec.uid, err)
	}
	rec.bodyHas = make(map[string]bool, len(needles))
	for i, n := range needles {
		rec.bodyHas[n] = found[i]
	}
	return nil
}

type searchRecord struct {
	uid          UID
	bodyID       int64
	flags        []string
	size         int64
	day, sentDay int64
	header       []byte          // lower case, see index.go
	bodyHas      map[string]bool // by folded needle: whether the body text contains it
}

// queryNeeds is what compileQuery finds the criteria need: text (and the
// folded strings to look for in bodies) or sequence numbers.
type queryNeeds struct {
	text, seqNums bool
	needles       []string
}

func compileQuery(c *imap.SearchCriteria) queryNeeds {
	var q queryNeeds
	var walk func(c *imap.SearchCriteria)
	walk = func(c *imap.SearchCriteria) {
		q.text = q.text || len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0
		q.seqNums = q.seqNums || len(c.SeqNum) > 0
		for _, s := range append(slices.Clone(c.Body), c.Text...) {
			if n := searchFold(s); !slices.Contains(q.needles, n) {
				q.needles = append(q.needles, n)
			}
		}
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
		if !r.bodyHas[searchFold(s)] {
			return false
		}
	}
	for _, s := range c.Text {
		needle := searchFold(s)
		if !bytes.Contains(r.header, []byte(needle)) && !r.bodyHas[needle] {
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
