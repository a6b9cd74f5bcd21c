package sqlitedb

import "database/sql"

// Row is what a scan function reads a row from: *sql.Row or *sql.Rows.
// It is an alias so that the stores' scan functions, written against the
// interface literal, fit Collect as they are.
type Row = interface{ Scan(dest ...any) error }

// Collect reads every row of rows with scan and closes rows: the loop
// every list query would otherwise write out again, including the check
// of rows.Err that such loops are apt to forget. On an error it returns
// no rows; the caller wraps the error with what it was listing.
func Collect[T any](rows *sql.Rows, scan func(Row) (T, error)) ([]T, error) {
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
