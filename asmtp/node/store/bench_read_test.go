package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
)

// ★ Store read latency during a 1,000-message catch-up answer: one
// goroutine reads 1,000 × 64 KiB messages of a topic over and over (what
// answering a catch-up reads) while the benchmark times the dedupe lookup
// every relayed message makes. "pool" reads through the read-only pool;
// "one-conn" sends both through the writer's single connection, as the
// store did before it had the pool. Reported: p50 and p99 of the lookup.
func BenchmarkReadDuringCatchUp(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "node.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	answer := topic.Topic{0xca}
	content := make([]byte, 64<<10)
	for i := range 1000 / 100 {
		batch := make([]NewMessage, 100)
		for j := range batch {
			var h [32]byte
			binary.BigEndian.PutUint64(h[:], uint64(i*100+j))
			batch[j] = NewMessage{Topic: answer, Hash: h, Content: content, ReceivedAt: time.Now()}
		}
		if _, err := s.AddMessages(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		db   *sql.DB
	}{{"pool", s.read}, {"one-conn", s.db}} {
		b.Run(c.name, func(b *testing.B) { benchmarkReadDuringCatchUp(b, c.db, answer) })
	}
}

func benchmarkReadDuringCatchUp(b *testing.B, db *sql.DB, answer topic.Topic) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	answers := 0
	wg.Go(func() {
		for ctx.Err() == nil {
			rows, err := db.QueryContext(ctx, `SELECT cursor, content, received_at FROM messages
				WHERE topic = ? AND received_at >= 0 AND cursor > 0 ORDER BY cursor LIMIT 1000`, answer[:])
			if err != nil {
				return
			}
			for rows.Next() {
				var cursor, at int64
				var content []byte
				rows.Scan(&cursor, &content, &at)
			}
			rows.Close()
			answers++
		}
	})
	lookups := make([]time.Duration, 0, b.N)
	other := topic.Topic{0x01}
	b.ResetTimer()
	for i := range b.N {
		var h [32]byte
		binary.BigEndian.PutUint64(h[:], uint64(i))
		began := time.Now()
		var one int
		err := db.QueryRowContext(ctx, `SELECT 1 FROM messages WHERE topic = ? AND hash = ?`, other[:], h[:]).Scan(&one)
		if err != nil && err != sql.ErrNoRows {
			b.Fatal(err)
		}
		lookups = append(lookups, time.Since(began))
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	slices.Sort(lookups)
	b.ReportMetric(float64(lookups[len(lookups)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lookups[len(lookups)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(answers), "answers")
}
