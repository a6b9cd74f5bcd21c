package main

import (
	"math/rand/v2"
	"testing"

	"github.com/asmtp/asmtp/asmtp/topic"
)

func smallPrivacy() privacyParams {
	return privacyParams{nodes: 150, degree: 20, days: 1, rate: 1, reply: 0.5, fresh: 0.1, offline: 0.05,
		rounds: 6, fanout: 3, spies: []float64{0.01, 0.1}, seed: 7}
}

// TestPrivacyV1LeaksV2DoesNot: on the same workload the crawler and the
// topic computer recover every v1 pair and no v2 pair, v2's gossip is no
// larger, and mail is delivered as well as with v1.
func TestPrivacyV1LeaksV2DoesNot(t *testing.T) {
	p := smallPrivacy()
	rs, err := runPrivacy(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + privacyTable(rs))
	v1, v2 := rs[0], rs[1]
	if v1.passportIDs != p.nodes || v2.passportIDs != 0 {
		t.Errorf("passport ids in gossip: v1 %d, v2 %d; want %d and 0", v1.passportIDs, v2.passportIDs, p.nodes)
	}
	if v1.computable != 1 || v2.computable != 0 {
		t.Errorf("pairs computable: v1 %v, v2 %v; want 1 and 0", v1.computable, v2.computable)
	}
	if v1.crawler.precision < 0.99 || v1.crawler.recall < 0.99 {
		t.Errorf("v1 crawler precision %v recall %v, want both ≈ 1", v1.crawler.precision, v1.crawler.recall)
	}
	if v2.crawler.precision > 2*v2.chance {
		t.Errorf("v2 crawler precision %v, want no better than chance %v", v2.crawler.precision, v2.chance)
	}
	for i, s := range v2.spies {
		if v1.spies[i].median != 1 || v1.spies[i].linked != 1 {
			t.Errorf("v1 spies %v: median %d linked %v, want 1 and 1", s.fraction, v1.spies[i].median, v1.spies[i].linked)
		}
		// The least a spy handed a first contact is left with: the bucket.
		if s.median < topic.MinBucketNodes || s.linked != 0 {
			t.Errorf("v2 spies %v: median %d linked %v, want ≥ %d and 0", s.fraction, s.median, s.linked, topic.MinBucketNodes)
		}
	}
	if v2.gossipPerNodeDay > 1.05*v1.gossipPerNodeDay {
		t.Errorf("gossip bytes v2 %.0f > 1.05 × v1 %.0f", v2.gossipPerNodeDay, v1.gossipPerNodeDay)
	}
	if v1.sent != v2.sent || v2.delivered < v1.delivered-v1.sent/100 {
		t.Errorf("delivered v1 %d/%d, v2 %d/%d: want the same workload and v2 within 1 %%", v1.delivered, v1.sent, v2.delivered, v2.sent)
	}
	if h1, h2 := histPercentile(v1.hopHist, 0.5), histPercentile(v2.hopHist, 0.5); h1 != 1 || h2 != 1 {
		t.Errorf("median hops v1 %d, v2 %d, want 1", h1, h2)
	}
	if v2.introLost > 0 {
		t.Errorf("%d first contacts did not reach the recipient through its intro bucket", v2.introLost)
	}
}

func TestPrivacyDeterministic(t *testing.T) {
	p := smallPrivacy()
	p.nodes, p.days, p.rounds = 80, 1, 3
	a, err := runPrivacy(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := runPrivacy(p)
	if err != nil {
		t.Fatal(err)
	}
	if x, y := privacyTable(a), privacyTable(b); x != y {
		t.Errorf("same seed, different output:\n%s\n%s", x, y)
	}
}

func TestPrivacyRejectsBadParams(t *testing.T) {
	for name, modify := range map[string]func(*privacyParams){
		"offline always": func(p *privacyParams) { p.offline = 1 },
		"no days":        func(p *privacyParams) { p.days = 0 },
		"spies 100 %":    func(p *privacyParams) { p.spies = []float64{1} },
		"one round":      func(p *privacyParams) { p.rounds = 1 },
	} {
		p := smallPrivacy()
		modify(&p)
		if _, err := runPrivacy(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestContactGraph: the mean degree is as asked, the tail is heavy (a
// power law, not a random graph), and no account exceeds maxContacts.
func TestContactGraph(t *testing.T) {
	g := newContactGraph(rand.New(rand.NewPCG(1, 2)), 5000, 20)
	top := 0
	for _, l := range g.adj {
		top = max(top, len(l))
		if len(l) > maxContacts {
			t.Fatalf("%d contacts, cap %d", len(l), maxContacts)
		}
	}
	if mean := 2 * float64(len(g.edges)) / 5000; mean < 19 || mean > 21 {
		t.Errorf("mean degree %.2f, want 20", mean)
	}
	if top < 200 {
		t.Errorf("largest degree %d: no heavy tail", top)
	}
	a, b := g.edges[0][0], g.edges[0][1]
	if g.edge(b, a) != 0 || g.edge(a, a) != -1 {
		t.Error("edge lookup wrong")
	}
}

func TestAvailability(t *testing.T) {
	av := &availability{off: [][]float64{{1, 2, 5, 6}, {1.5, 5.5}}}
	for _, tt := range []struct {
		name       string
		a, b       int32
		at, online float64
	}{
		{"online", 0, 0, 0.5, 0.5},
		{"at spell start", 0, 0, 1, 2},
		{"inside a spell", 0, 0, 5.5, 6},
		{"at spell end", 0, 0, 2, 2},
		{"after the last spell", 0, 0, 7, 7},
		{"both: chained spells", 0, 1, 1, 6},
	} {
		got := av.bothOnline(tt.a, tt.b, tt.at)
		if got != tt.online {
			t.Errorf("%s: online at %v, want %v", tt.name, got, tt.online)
		}
	}
}
