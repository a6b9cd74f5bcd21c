package node

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
)

// Mail-sized publication: what the bridge does for a 1 MiB mail, 17 chunks
// of 60 KiB on a registered topic, each durably stored (fsync) before the
// publication returns. "one-by-one": one Publish per chunk, as the bridge
// did; "4-senders": four mails published at once, one chunk at a time
// each, whose commits group commit may share; "batch": one PublishBatch
// of the 17 chunks, one commit.
const (
	benchMailChunks    = 17
	benchMailChunkSize = 60 << 10
)

func BenchmarkPublishMail(b *testing.B) {
	b.Run("one-by-one", func(b *testing.B) { benchmarkPublishMail(b, 1) })
	b.Run("4-senders", func(b *testing.B) { benchmarkPublishMail(b, 4) })
	b.Run("batch", func(b *testing.B) {
		s, tp := benchPublishNode(b)
		ctx := context.Background()
		b.SetBytes(benchMailChunks * benchMailChunkSize)
		b.ResetTimer()
		for i := range b.N {
			if err := s.PublishBatch(ctx, tp, benchMail(uint64(i))); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/mail")
	})
}

// benchPublishNode starts a node with a registered topic and no peers.
func benchPublishNode(b *testing.B) (*Session, topic.Topic) {
	cfg, user := testConfig(b, b.TempDir())
	cfg.GossipInterval = time.Hour // keep gossip out of the measurement
	n := start(b, cfg, user)
	s := n.session(b)
	tp := topic.Topic{0xbe, 2}
	if err := s.Register(context.Background(), tp); err != nil {
		b.Fatal(err)
	}
	return s, tp
}

// benchMail returns the chunks of mail number i: distinct contents.
func benchMail(i uint64) [][]byte {
	chunks := make([][]byte, benchMailChunks)
	for c := range chunks {
		chunks[c] = make([]byte, benchMailChunkSize)
		binary.BigEndian.PutUint64(chunks[c], i)
		binary.BigEndian.PutUint64(chunks[c][8:], uint64(c))
	}
	return chunks
}

func benchmarkPublishMail(b *testing.B, senders int) {
	s, tp := benchPublishNode(b)
	ctx := context.Background()
	b.SetBytes(benchMailChunks * benchMailChunkSize)
	b.ResetTimer()
	var wg sync.WaitGroup
	var next sync.Mutex
	mail := 0
	for range senders {
		wg.Go(func() {
			for {
				next.Lock()
				i := mail
				mail++
				next.Unlock()
				if i >= b.N {
					return
				}
				for _, c := range benchMail(uint64(i)) {
					if err := s.Publish(ctx, tp, c); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/mail")
}
