package node

import (
	"context"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/internal/wait"
)

func TestCatchUpStart(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	const skew, retention = 10 * time.Minute, 30 * 24 * time.Hour
	floor := now.Add(-retention)
	var never time.Time
	cases := []struct {
		name           string
		lastSeen, owed time.Time
		want           time.Time
	}{
		{"never ran: whole retention window", never, never, floor},
		{"ran: skew before last seen", now.Add(-time.Hour), never, now.Add(-time.Hour - skew)},
		{"an earlier window still owed wins", now.Add(-time.Hour), now.Add(-5 * time.Hour), now.Add(-5 * time.Hour)},
		{"a later owed window changes nothing", now.Add(-time.Hour), now.Add(-time.Minute), now.Add(-time.Hour - skew)},
		{"owed, never recorded running", never, now.Add(-time.Hour), floor},
		{"nothing before the retention window", now.Add(-2 * retention), now.Add(-3 * retention), floor},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := catchUpStart(now, c.lastSeen, c.owed, skew, retention); !got.Equal(c.want) {
				t.Fatalf("start %v, want %v", got, c.want)
			}
		})
	}
}

// Which owed catch-ups a completed one pays: those scheduled before its
// query went out, from its since or later.
func TestOwedCatchUps(t *testing.T) {
	tp := topic.Topic{7}
	t0 := time.Unix(1_800_000_000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type owe struct{ since, noted int }
	type pay struct{ since, sentAt int }
	cases := []struct {
		name string
		owed []owe
		paid []pay
		want int // earliest since still owed; -1: nothing
	}{
		{"nothing owed", nil, nil, -1},
		{"owed, not paid", []owe{{10, 20}}, nil, 10},
		{"paid", []owe{{10, 20}}, []pay{{10, 21}}, -1},
		{"paid by an earlier since", []owe{{10, 20}}, []pay{{5, 21}}, -1},
		{"a later since does not pay", []owe{{10, 20}}, []pay{{11, 21}}, 10},
		{"a query sent before it was owed does not pay", []owe{{10, 20}}, []pay{{10, 19}}, 10},
		{"owed again after the query went out", []owe{{10, 20}, {15, 30}}, []pay{{10, 25}}, 15},
		{"then paid too", []owe{{10, 20}, {15, 30}}, []pay{{10, 25}, {15, 31}}, -1},
		{"earliest wins", []owe{{10, 20}, {5, 21}}, nil, 5},
		{"merged beyond the bound: the earliest since, the latest time",
			[]owe{{1, 1}, {9, 2}, {9, 3}, {9, 4}, {9, 5}, {9, 6}, {9, 7}, {9, 8}, {9, 9}}, []pay{{9, 100}}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := owedCatchUps{m: make(map[topic.Topic][]owedEntry)}
			for _, e := range c.owed {
				o.owe(tp, at(e.since), at(e.noted))
			}
			for _, p := range c.paid {
				o.paid(tp, at(p.since), at(p.sentAt))
			}
			got := o.snapshot(func(topic.Topic) bool { return true })
			switch {
			case c.want < 0 && len(got) != 0:
				t.Fatalf("still owed: %+v", got)
			case c.want >= 0 && (len(got) != 1 || !got[0].Since.Equal(at(c.want))):
				t.Fatalf("owed %+v, want from %v", got, at(c.want))
			}
		})
	}
	o := owedCatchUps{m: make(map[topic.Topic][]owedEntry)}
	o.owe(tp, t0, t0)
	if got := o.snapshot(func(topic.Topic) bool { return false }); len(got) != 0 || len(o.m) != 0 {
		t.Fatalf("a topic no longer registered is still owed: %+v", got)
	}
}

// ★ A node whose start-up catch-up cannot be answered (its only other
// subscriber is down) records itself running, and stops. Its next start
// must still catch up from the old window: the last-seen time moved, the
// catch-up did not complete. Once it does complete, nothing stays owed.
func TestUnfinishedCatchUpSurvivesRestart(t *testing.T) {
	// A short write timeout makes catch-ups settle within a second.
	nodes := startNetwork(t, 2, func(c *Config) { c.WriteTimeout = 500 * time.Millisecond })
	ctx := context.Background()
	tp := topic.Topic{0x0c, 0xa7}
	a, c := nodes[0], nodes[1]
	for _, n := range nodes {
		if err := n.session(t).Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 15*time.Second, "rings", func() bool { return ringsConverged(nodes, nodes, tp) == nil })
	a.stop(t)
	c.stop(t)

	// a holds a message c never got, received two hours ago; c last ran
	// three hours ago and owes nothing.
	now := time.Now()
	missed := []byte("received while c was down")
	editStore(t, a.cfg.StoragePath, func(st *store.Store) error {
		_, _, err := st.AddMessage(ctx, store.Durable, tp, messageHash(tp, missed), missed, now.Add(-2*time.Hour))
		return err
	})
	editStore(t, c.cfg.StoragePath, func(st *store.Store) error {
		return st.SaveRunState(ctx, now.Add(-3*time.Hour), nil)
	})

	// c runs while a is down: it records itself running, but its
	// catch-up finds nobody to answer.
	c2 := start(t, c.cfg, c.user)
	wait.Until(t, 10*time.Second, "c to record itself running", func() bool {
		s, err := store.ReadSummary(ctx, c.cfg.StoragePath)
		return err == nil && s.LastSeen.After(now.Add(-time.Minute))
	})
	c2.stop(t)
	var owed []store.PendingCatchUp
	editStore(t, c.cfg.StoragePath, func(st *store.Store) (err error) {
		owed, err = st.PendingCatchUps(ctx)
		return err
	})
	if want := now.Add(-3*time.Hour - c.cfg.MaxClockSkew).Unix(); len(owed) != 1 || owed[0].Topic != tp || owed[0].Since.Unix() > want {
		t.Fatalf("owed catch-ups %+v, want %s from %v at the latest", owed, tp, time.Unix(want, 0))
	}

	// Both back: c fetches the old message.
	acfg := a.cfg
	acfg.ListenAddress = a.Addr().String()
	start(t, acfg, a.user)
	var sc *Session
	c3 := startWith(t, c.cfg, c.user, func(tn *testNode) { sc = tn.session(t) })
	if d := receive(t, sc, 1, 15*time.Second); string(d[0].Content) != string(missed) {
		t.Fatalf("got %q, want %q", d[0].Content, missed)
	}
	wait.Until(t, 15*time.Second, "the catch-up to complete", func() bool {
		c3.owed.mu.Lock()
		defer c3.owed.mu.Unlock()
		return len(c3.owed.m) == 0
	})
	c3.stop(t)
	editStore(t, c.cfg.StoragePath, func(st *store.Store) (err error) {
		owed, err = st.PendingCatchUps(ctx)
		return err
	})
	if len(owed) != 0 {
		t.Fatalf("still owed after the catch-up completed: %+v", owed)
	}
}

// editStore opens a stopped node's database, runs f and closes it.
func editStore(t *testing.T, path string, f func(*store.Store) error) {
	t.Helper()
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := f(st); err != nil {
		t.Fatal(err)
	}
}
