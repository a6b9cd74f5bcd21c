package sqlitedb

import (
	"context"
	"database/sql"
)

// Row is what a scan function reads a row from: *sql.Row or *sql.Rows.
// It is an alias so that the stores' scan functions, written against the
// interface literal, fit Select as they are.
type Row = interface{ Scan(dest ...any) error }

// Querier is what Select runs its query on: *sql.DB, *sql.Tx or *sql.Conn.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Select runs query on q and reads every row with scan: the loop every
// list query would otherwise write out again, including the check of
// rows.Err that such loops are apt to forget. On an error it returns no
// rows; the caller wraps the error with what it was listing.
func Select[T any](ctx context.Context, q Querier, scan func(Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
