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
	for len(recs) > 0 {
		batch := recs[:textBatch(recs)]
		recs = recs[len(batch):]
		if q.text {
			if err := db.loadTexts(ctx, batch, q.needles); err != nil {
				return nil, fmt.Errorf("search mailbox %s: %w", id, err)
			}
		}
		for i := range batch {
			if matches(&batch[i], criteria) {
				out = append(out, batch[i].uid)
			}
			batch[i].header, batch[i].bodyHas = nil, nil
		}
	}
	return out, nil
}

// Batches of messages whose text one query reads: at most this many, and
// a message of textCost above maxBatchCost goes alone.
const (
	maxTextBatch = 256
	maxBatchCost = 4 << 20
)

// textBatch is how many of recs the next text query reads.
func textBatch(recs []searchRecord) int {
	n, cost := 0, int64(0)
	for n < len(recs) && n < maxTextBatch {
		cost += textCost(recs[n].size)
		if n > 0 && cost > maxBatchCost {
			break
		}
		n++
	}
	return n
}

// textCost is what reading the text of a message of size bytes holds in
// memory: its header text in Go, its body text in SQLite.
func textCost(size int64) int64 { return min(size, maxSearchHeader) + min(size, maxSearchText) }

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

// loadTexts reads the header text of a batch of messages and has SQLite
// tell which of the needles each body text contains, holding the memory
// this may take from the budget (SQLite holds one body text at a time, once
// per needle).
func (db *DB) loadTexts(ctx context.Context, batch []searchRecord, needles []string) error {
	var cost int64
	for _, rec := range batch {
		cost = max(cost, textCost(rec.size)*int64(max(1, len(needles))))
	}
	release, err := db.budget.Acquire(ctx, cost)
	if err != nil {
		return err
	}
	defer release()
	query := "SELECT body_id, header_text"
	args := make([]any, 0, len(needles)+len(batch))
	for _, n := range needles {
		query += ", instr(body_text, ?) > 0"
		args = append(args, n)
	}
	byBody := make(map[int64][]*searchRecord, len(batch))
	for i := range batch {
		byBody[batch[i].bodyID] = append(byBody[batch[i].bodyID], &batch[i])
		args = append(args, batch[i].bodyID)
	}
	query += " FROM body_data WHERE body_id IN (?" + strings.Repeat(", ?", len(batch)-1) + ")"
	rows, err := db.text.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("read message text: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			bodyID int64
			header []byte
			found  = make([]bool, len(needles))
		)
		dest := []any{&bodyID, &header}
		for i := range found {
			dest = append(dest, &found[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read message text: %w", err)
		}
		has := make(map[string]bool, len(needles))
		for i, n := range needles {
			has[n] = found[i]
		}
		for _, rec := range byBody[bodyID] {
			rec.header, rec.bodyHas = header, has
		}
	}
	return rows.Err()
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
