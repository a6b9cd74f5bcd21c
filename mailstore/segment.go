package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
)

// Message bodies and queued messages are stored in segments: rows of at
// most segmentSize bytes, keyed by (owner id, n), written from a reader and
// read back in order. SQLite copies every value it binds or reads in full,
// into memory of its own that the process keeps for reuse, so a 25 MiB
// blob cost 25 MiB more each time it was written or read, beside the
// caller's copy. With segments, writing or reading a message costs one
// segment on SQLite's side however large the message is, and a writer that
// streams from a file (SMTP submission) holds no more than that in memory.

// segmentSize is the most bytes one segment row holds.
const segmentSize = 1 << 20

// segmentTable names a table of segments and the column of their owner
// (whose table has the size of the whole).
type segmentTable struct{ name, owner string }

var (
	bodySegments   = segmentTable{"body_segments", "body_id"}
	outboxSegments = segmentTable{"outbox_segments", "outbox_id"}
)

// segmentWriter stores what is written to it as the segments of one
// owner, each Write cut into rows of at most segmentSize bytes without a
// copy; more than limit bytes in all fail with ErrTooBig.
type segmentWriter struct {
	ctx    context.Context
	insert *sql.Stmt
	id     int64
	n      int
	total  int64
	limit  int64
}

func newSegmentWriter(ctx context.Context, tx *sql.Tx, t segmentTable, id, limit int64) (*segmentWriter, error) {
	insert, err := tx.PrepareContext(ctx, "INSERT INTO "+t.name+" ("+t.owner+", n, data) VALUES (?, ?, ?)")
	if err != nil {
		return nil, fmt.Errorf("store segments: %w", err)
	}
	return &segmentWriter{ctx: ctx, insert: insert, id: id, limit: limit}, nil
}

func (w *segmentWriter) Write(p []byte) (int, error) {
	if w.total += int64(len(p)); w.total > w.limit {
		return 0, fmt.Errorf("%w (more than %d bytes)", ErrTooBig, w.limit)
	}
	for done := 0; done < len(p); w.n++ {
		seg := p[done:min(len(p), done+segmentSize)]
		if _, err := w.insert.ExecContext(w.ctx, w.id, w.n, seg); err != nil {
			return done, fmt.Errorf("store segment %d: %w", w.n, err)
		}
		done += len(seg)
	}
	return len(p), nil
}

// ReadFrom stores r's bytes a segment at a time: io.Copy would hand Write
// the 32 KiB reads of its own buffer, one row each.
func (w *segmentWriter) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, segmentSize)
	var total int64
	for {
		got, err := io.ReadFull(r, buf)
		if got > 0 {
			if _, err := w.Write(buf[:got]); err != nil {
				return total, err
			}
			total += int64(got)
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return total, nil
		case err != nil:
			return total, fmt.Errorf("read segment %d: %w", w.n, err)
		}
	}
}

// Close releases the insert statement.
func (w *segmentWriter) Close() error { return w.insert.Close() }

// readSegments joins the segments that query yields: rows of (size of
// the whole, one segment's data) in segment order, with NULL data for an
// empty message (a LEFT JOIN), and no row for none. Once the first row
// tells the size, and before the buffer for the whole is made, admit (if
// not nil) is called with it, to take the memory; its release is returned
// (nil when admit is nil), and is the caller's to call unless err is
// set. The size and the segments come from one statement, so one
// snapshot: a message deleted meanwhile is either read whole or not
// found. It should run on a connection that does not map the database
// (db.text): a mapped read adds the file's pages to the process's
// resident set on top of the copy.
func readSegments(ctx context.Context, conn querier, admit func(size int64) (func(), error), query string, args ...any) (raw []byte, release func(), err error) {
	rows, err := conn.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	defer func() {
		if err != nil && release != nil {
			release()
			release = nil
		}
	}()
	var size int64
	for first := true; rows.Next(); first = false {
		var data sql.RawBytes // valid until Next: copied out before it
		if err := rows.Scan(&size, &data); err != nil {
			return nil, release, err
		}
		if first {
			if admit != nil {
				if release, err = admit(size); err != nil {
					return nil, nil, err
				}
			}
			raw = make([]byte, 0, size)
		}
		if int64(len(raw)+len(data)) > size {
			return nil, release, fmt.Errorf("segments hold more than the %d bytes recorded", size)
		}
		raw = append(raw, data...)
	}
	if err := rows.Err(); err != nil {
		return nil, release, err
	}
	if raw == nil {
		return nil, nil, sql.ErrNoRows
	}
	if int64(len(raw)) != size {
		return nil, release, fmt.Errorf("segments hold %d bytes, %d recorded", len(raw), size)
	}
	return raw, release, nil
}
