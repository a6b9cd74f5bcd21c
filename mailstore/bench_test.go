package mailstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
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
		indexMessage(nil, raw)
	}
}

// bigMessage is a size-byte text/plain message of 76-character lines.
func bigMessage(size int) []byte {
	head := "From: alice\r\nSubject: big\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n"
	const line = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ABCDEFGHIJKL\r\n"
	raw := []byte(head)
	for len(raw)+len(line) <= size {
		raw = append(raw, line...)
	}
	return raw
}

func BenchmarkIndexMessage1MiB(b *testing.B) {
	raw := bigMessage(1 << 20)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		indexMessage(nil, raw)
	}
}

func BenchmarkAppend1MiB(b *testing.B) {
	db, _ := openTest(b)
	raw := bigMessage(1 << 20)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := db.Append(context.Background(), "alice", "INBOX", raw, nil, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSearchBody is SEARCH BODY over 2,000 small messages.
func BenchmarkSearchBody(b *testing.B) {
	db, _ := openTest(b)
	ctx := context.Background()
	for i := range 2000 {
		if _, err := db.Append(ctx, "alice", "INBOX", msg(fmt.Sprint("s", i), fmt.Sprintf("body %d of the benchmark", i)), nil, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	inbox, _ := db.Mailbox(ctx, "alice", "INBOX")
	b.ResetTimer()
	for range b.N {
		uids, err := db.Search(ctx, inbox.ID, &imap.SearchCriteria{Body: []string{"body 1999 of"}})
		if err != nil || len(uids) != 1 {
			b.Fatal(uids, err)
		}
	}
}

// BenchmarkSort is SORT (SUBJECT) over 10,000 messages.
func BenchmarkSort(b *testing.B) {
	db, _ := openTest(b)
	ctx := context.Background()
	for i := range 10000 {
		if _, err := db.Append(ctx, "alice", "INBOX", msg(fmt.Sprintf("s%d re %d", i%97, i), "x"), nil, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	inbox, _ := db.Mailbox(ctx, "alice", "INBOX")
	b.ResetTimer()
	for range b.N {
		uids, err := db.Sort(ctx, inbox.ID, &imap.SearchCriteria{}, []imap.SortCriterion{{Key: imap.SortKeySubject}})
		if err != nil || len(uids) != 10000 {
			b.Fatal(len(uids), err)
		}
	}
}

// BenchmarkWithRaw reads a stored message whole, as FETCH BODY[] does, for
// a small message, one of a segment and one of the largest size.
func BenchmarkWithRaw(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20, 24 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			db, _ := openTest(b)
			ctx := context.Background()
			a, err := db.Append(ctx, "alice", "INBOX", bigMessage(size), nil, time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := db.WithRaw(ctx, a.MailboxID, a.UID, func([]byte) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
