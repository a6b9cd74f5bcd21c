package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
	"github.com/asmtp/asmtp/internal/procmem"
)

// TestFiveCatchUpsMemory: a real asmtpd holding 1,000 messages of 64 KiB
// on a topic answers five other nodes that ask for all of it at once.
// Every asker gets all 1,000 messages and then the Complete marker, and
// the answering node's peak RSS stays at most 256 MiB (answers are
// streamed a page at a time, not loaded whole: five whole answers would
// be 320 MB).
func TestFiveCatchUpsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and moves 320 MB through a node")
	}
	const messages, askers = 1000, 5
	bin := buildBinaries(t)
	a := newProc(t, bin, "a")
	generateKeys(t, a)
	a.writeConfig(t, nil)
	var tp topic.Topic
	rand.Read(tp[:])
	fillStore(t, a, tp, messages, wire.MaxTopicContent)
	a.start(t)
	a.waitListening(t)
	before := procmem.MustStatus(t, a.cmd.Process.Pid, "VmHWM")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	began := time.Now()
	got := make([]int, askers)
	errs := make([]error, askers)
	var wg sync.WaitGroup
	for i := range askers {
		wg.Go(func() { got[i], errs[i] = catchUpFrom(ctx, a, tp) })
	}
	wg.Wait()
	for i := range askers {
		if errs[i] != nil || got[i] != messages {
			t.Errorf("asker %d: %d messages before Complete, want %d (%v)", i, got[i], messages, errs[i])
		}
	}
	peak := procmem.MustStatus(t, a.cmd.Process.Pid, "VmHWM")
	t.Logf("%d answers of %d x %d bytes in %v; node peak RSS %d MiB (%d MiB before the queries)",
		askers, messages, wire.MaxTopicContent, time.Since(began).Round(time.Millisecond), peak>>20, before>>20)
	if peak > 256<<20 {
		t.Errorf("answering node's peak RSS %d MiB, want at most 256 MiB", peak>>20)
	}
	a.stop(t)
}

// fillStore stores count random messages of size bytes on tp in the
// stopped node p's database.
func fillStore(t *testing.T, p *proc, tp topic.Topic, count, size int) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(p.dir, "asmtpd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	for done := 0; done < count; {
		var batch []store.NewMessage
		for ; done < count && len(batch) < 100; done++ {
			c := make([]byte, size)
			rand.Read(c)
			h, _ := blake2b.New256(nil)
			h.Write(tp[:])
			h.Write(c)
			m := store.NewMessage{Topic: tp, Content: c, ReceivedAt: now}
			h.Sum(m.Hash[:0])
			batch = append(batch, m)
		}
		if _, err := st.AddMessages(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
}

// catchUpFrom links to p as a node subscribing to tp, asks for all of
// tp's messages and counts those that arrive before the Complete marker.
func catchUpFrom(ctx context.Context, p *proc, tp topic.Topic) (int, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return 0, err
	}
	raw, err := net.Dial("tcp", p.addr())
	if err != nil {
		return 0, err
	}
	wc, err := wire.Dial(ctx, raw, key, p.id)
	if err != nil {
		return 0, err
	}
	defer wc.Close()
	// The address is never dialled: the node reuses this link.
	g, err := gossip.New(key, gossip.FromTime(time.Now()), netip.MustParseAddrPort("127.0.0.1:1"),
		[]gossip.Subscription{{Topic: tp, Interest: 1}})
	if err != nil {
		return 0, err
	}
	q := wire.QueryTopicMessages{Topic: tp}
	for _, m := range []wire.Message{wire.Gossip{Gossip: g}, q} {
		if err := wc.WriteMessage(ctx, m); err != nil {
			return 0, err
		}
	}
	count := 0
	for {
		m, err := wc.ReadMessage(ctx)
		if err != nil {
			return count, err
		}
		tm, ok := m.(wire.Topic)
		if !ok {
			continue
		}
		if mk, ok := wire.ParseAnswerMarker(tm); ok {
			switch mk.Status {
			case wire.AnswerComplete:
				return count, nil
			case wire.AnswerRefused:
				return count, fmt.Errorf("query refused")
			}
			continue
		}
		if tm.Topic == tp {
			count++
		}
	}
}
