package main

import (
	"testing"
)

func smallParams() params {
	return params{nodes: 200, topicsPerNode: 8, fanout: 3, rounds: 20, warmup: 8, eventsPerRound: 20, seed: 42}
}

// TestNoChurnDeliversEverything: without churn the converged overlay
// delivers every event to every subscriber, only through subscribers, with
// at most F messages per subscriber.
func TestNoChurnDeliversEverything(t *testing.T) {
	p := smallParams()
	res, err := runPlain(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.hitRatio != 1 {
		t.Errorf("hit_ratio = %v, want 1", res.hitRatio)
	}
	if res.nonsubRelays != 0 {
		t.Errorf("nonsubscriber_relays = %d, want 0", res.nonsubRelays)
	}
	if res.msgsPerSubEv > float64(p.fanout) {
		t.Errorf("msgs_per_subscriber_event = %v, want at most %d", res.msgsPerSubEv, p.fanout)
	}
	if res.roundsConverge < 1 || res.roundsConverge > p.warmup {
		t.Errorf("rounds_to_converge = %d, want within the %d warm-up rounds", res.roundsConverge, p.warmup)
	}
	if res.rounds2sub < 1 {
		t.Errorf("rounds_to_first_ring_neighbour_2sub = %v, want a positive number of rounds", res.rounds2sub)
	}
	if res.meanHops <= 0 || res.p99Hops < 1 {
		t.Errorf("hops mean %v p99 %d: no deliveries measured", res.meanHops, res.p99Hops)
	}
}

// TestDeterministic: the same seed gives the same figures, churn included;
// another seed gives others.
func TestDeterministic(t *testing.T) {
	p := smallParams()
	p.nodes, p.rounds, p.warmup, p.churn = 120, 12, 6, 0.05
	a, err := runPlain(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := runPlain(p)
	if err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Errorf("same seed, different output:\n%s\n%s", a, b)
	}
	p.seed++
	c, err := runPlain(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.String() == a.String() {
		t.Errorf("different seeds, same output: %s", a)
	}
}

func TestRejectsBadParams(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*params)
	}{
		{"one node", func(p *params) { p.nodes = 1 }},
		{"no topics", func(p *params) { p.topicsPerNode = 0 }},
		{"warm-up past the end", func(p *params) { p.warmup = p.rounds }},
		{"churn 100%", func(p *params) { p.churn = 1 }},
		{"fanout 1", func(p *params) { p.fanout = 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := smallParams()
			tt.modify(&p)
			if _, err := runPlain(p); err == nil {
				t.Error("run succeeded, want an error")
			}
		})
	}
}
