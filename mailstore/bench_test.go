package mailstore

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func BenchmarkAppend(b *testing.B) {
	db, _ := openTest(b)
	raw := msg("bench", "body of the benchmark message")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := db.Append(context.Background(), "alice", "INBOX", raw, nil, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIndexMessage(b *testing.B) {
	raw := []byte(fmt.Sprintf("Subject: x\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n%s\r\n--b--\r\n", "hello world"))
	for i := 0; i < b.N; i++ {
		indexMessage(raw)
	}
}
