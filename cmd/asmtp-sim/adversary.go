package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/poldercast"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// The adversaries of the privacy run.
//
//   - Gossip crawler: holds the signed profile of every node (a full crawl
//     is cheap, PROTOCOL.md §16.1) and classifies node pairs as contacts
//     from their shared topics.
//   - Topic computer: holds every passport (they are public) and computes
//     every topic that is a public function of one or two passports.
//   - Spies: a fraction of the nodes colluding; they know what the crawler
//     and the topic computer know, plus every message handed to them.

// privacyResult holds the figures of one scheme.
type privacyResult struct {
	scheme           scheme
	accounts         int
	passportIDs      int     // distinct account passport ids in gossip
	computable       float64 // contact pairs whose public pair topic both nodes advertise
	crawler          classifierResult
	chance           float64 // precision of guessing pairs at random
	spies            []spyResult
	gossipPerNodeDay float64
	mailBytes        float64
	mailPerNodeDay   float64
	sent, delivered  int
	ringMiss         int // v1: sender's pair ring lacked the recipient
	introLost        int // v2: first contact not reaching the recipient
	hopHist          []int
	cardHops         []int // v2: hops of first-contact cards to the recipient
	latency          []time.Duration
}

// classifierResult is one pair classifier: predict "contacts" for two nodes
// sharing a topic that at most maxSubs nodes advertise.
type classifierResult struct {
	maxSubs           int
	precision, recall float64
	predicted         int
}

// spyResult is what a colluding fraction of nodes learns about the pairs of
// which neither account is a spy.
type spyResult struct {
	fraction float64
	pairs    int     // contact pairs without a spy account
	median   int     // median candidate-set size for a pair's partner
	linked   float64 // share of those pairs with a candidate set of 1
	withSpy  float64 // share of all pairs with a spy account (known trivially)
}

// crawl maps every advertised topic to the nodes advertising it.
type crawl map[poldercast.Topic][]int32

func crawlGossip(sm *sim) crawl {
	c := crawl{}
	for i, n := range sm.nodes {
		for _, s := range n.topo.Self().Subscriptions {
			c[s.Topic] = append(c[s.Topic], int32(i))
		}
	}
	return c
}

// passportsVisible counts the accounts whose passport id a topic in gossip
// names (16 zero bytes ‖ id).
func passportsVisible(c crawl, ids identities) int {
	accounts := map[passport.Hash]bool{}
	for _, id := range ids.passports {
		accounts[id] = true
	}
	seen := map[passport.Hash]bool{}
	for tp := range c {
		if id, ok := topic.Topic(tp).Passport(); ok && accounts[id] {
			seen[id] = true
		}
	}
	return len(seen)
}

// pairsComputable is the share of contact pairs whose v1 pair topic, which
// the topic computer derives from the two passports, both nodes advertise.
// v2 has no topic that is a function of two passports; the computer still
// tries the v1 one.
func pairsComputable(c crawl, g *contactGraph, ids identities) float64 {
	hit := 0
	for _, e := range g.edges {
		subs := c[v1PairTopic(ids.passports[e[0]], ids.passports[e[1]])]
		if slices.Contains(subs, e[0]) && slices.Contains(subs, e[1]) {
			hit++
		}
	}
	return float64(hit) / float64(max(1, len(g.edges)))
}

// classifierLimits are the topic sizes the crawler's classifiers try.
var classifierLimits = [...]int{2, 8, 64, math.MaxInt32}

// bestClassifier evaluates the shared-topic classifiers and returns the one
// with the best F1 score, and the precision of random guessing.
func bestClassifier(c crawl, g *contactGraph) (classifierResult, float64) {
	n := len(g.adj)
	byNode := make([][]poldercast.Topic, n)
	for tp, subs := range c {
		for _, i := range subs {
			byNode[i] = append(byNode[i], tp)
		}
	}
	var best classifierResult
	bestF1 := -1.0
	for _, limit := range classifierLimits {
		r := classify(c, g, byNode, limit)
		f1 := 0.0
		if r.precision+r.recall > 0 {
			f1 = 2 * r.precision * r.recall / (r.precision + r.recall)
		}
		if f1 > bestF1 {
			best, bestF1 = r, f1
		}
	}
	chance := float64(len(g.edges)) / (float64(n) * float64(n-1) / 2)
	return best, chance
}

func classify(c crawl, g *contactGraph, byNode [][]poldercast.Topic, limit int) classifierResult {
	stamp := make([]int32, len(g.adj))
	for i := range stamp {
		stamp[i] = -1
	}
	predicted, correct := 0, 0
	for a, topics := range byNode {
		for _, tp := range topics {
			subs := c[tp]
			if len(subs) > limit {
				continue
			}
			for _, b := range subs {
				if b <= int32(a) || stamp[b] == int32(a) {
					continue
				}
				stamp[b] = int32(a)
				predicted++
				if g.edge(int32(a), b) >= 0 {
					correct++
				}
			}
		}
	}
	r := classifierResult{maxSubs: limit, predicted: predicted}
	if predicted > 0 {
		r.precision = float64(correct) / float64(predicted)
	}
	r.recall = float64(correct) / float64(max(1, len(g.edges)))
	return r
}

// linkedByGossip marks the contact pairs that gossip alone singles out: the
// two only advertisers of some topic.
func linkedByGossip(c crawl, g *contactGraph) []bool {
	linked := make([]bool, len(g.edges))
	for _, subs := range c {
		if len(subs) == 2 {
			if e := g.edge(subs[0], subs[1]); e >= 0 {
				linked[e] = true
			}
		}
	}
	return linked
}

// spyCandidates computes, for each spy fraction, the candidate set of each
// contact pair without a spy account: 1 when gossip singles the pair out;
// the recipient's bucket when a spy was handed the pair's first contact
// (it sees the sender and the bucket, not which member it is for);
// otherwise every other account.
func spyCandidates(p privacyParams, g *contactGraph, linked []bool, intros []introSeen, nm *naming) []spyResult {
	perm := rand.New(rand.NewPCG(p.seed, p.seed^0x61c8864680b583eb)).Perm(p.nodes)
	var out []spyResult
	for _, c := range p.spies {
		spy := make([]bool, p.nodes)
		for _, i := range perm[:int(math.Round(c*float64(p.nodes)))] {
			spy[i] = true
		}
		cand := make([]int, len(g.edges))
		for e := range cand {
			cand[e] = p.nodes - 1
			if linked[e] {
				cand[e] = 1
			}
		}
		for _, in := range intros {
			if spy[in.handoff] && in.edge >= 0 {
				cand[in.edge] = min(cand[in.edge], len(nm.members[in.bucket]))
			}
		}
		out = append(out, summarizeSpies(c, g, spy, cand))
	}
	return out
}

func summarizeSpies(c float64, g *contactGraph, spy []bool, cand []int) spyResult {
	var sizes []int
	ones, withSpy := 0, 0
	for e, ab := range g.edges {
		if spy[ab[0]] || spy[ab[1]] {
			withSpy++
			continue
		}
		sizes = append(sizes, cand[e])
		if cand[e] == 1 {
			ones++
		}
	}
	r := spyResult{fraction: c, pairs: len(sizes), withSpy: float64(withSpy) / float64(max(1, len(g.edges)))}
	if len(sizes) > 0 {
		slices.Sort(sizes)
		r.median = sizes[len(sizes)/2]
		r.linked = float64(ones) / float64(len(sizes))
	}
	return r
}

// privacyTable formats results side by side as a Markdown table.
func privacyTable(rs []privacyResult) string {
	var b strings.Builder
	b.WriteString("| figure |")
	for _, r := range rs {
		fmt.Fprintf(&b, " %s |", r.scheme)
	}
	b.WriteString("\n|---|")
	for range rs {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, row := range privacyRows(rs) {
		fmt.Fprintf(&b, "| %s |", row.name)
		for _, r := range rs {
			fmt.Fprintf(&b, " %s |", row.value(r))
		}
		b.WriteString("\n")
	}
	return b.String()
}

type privacyRow struct {
	name  string
	value func(privacyResult) string
}

func privacyRows(rs []privacyResult) []privacyRow {
	rows := []privacyRow{
		{"passport ids in gossip", func(r privacyResult) string { return fmt.Sprintf("%d / %d", r.passportIDs, r.accounts) }},
		{"pairs computable from public passports", func(r privacyResult) string { return pct(r.computable) }},
		{"crawler: best pair classifier (topic ≤ n nodes)", func(r privacyResult) string {
			return fmt.Sprintf("n=%s: precision %.4f, recall %.4f", limitName(r.crawler.maxSubs), r.crawler.precision, r.crawler.recall)
		}},
		{"crawler: chance precision", func(r privacyResult) string { return fmt.Sprintf("%.4f", r.chance) }},
	}
	for i := range rs[0].spies {
		rows = append(rows, privacyRow{fmt.Sprintf("spies %s: median candidates / pairs linked", pct(rs[0].spies[i].fraction)), func(r privacyResult) string {
			s := r.spies[i]
			return fmt.Sprintf("%d / %s (%s of pairs have a spy account)", s.median, pct(s.linked), pct(s.withSpy))
		}})
	}
	return append(rows, []privacyRow{
		{"gossip bytes per node per day", func(r privacyResult) string { return fmt.Sprintf("%.1f MB", r.gossipPerNodeDay/1e6) }},
		{"mail bytes sent per node per day", func(r privacyResult) string { return fmt.Sprintf("%.1f MB", r.mailPerNodeDay/1e6) }},
		{"delivery ratio", func(r privacyResult) string {
			return fmt.Sprintf("%.4f (%d / %d)", float64(r.delivered)/float64(max(1, r.sent)), r.delivered, r.sent)
		}},
		{"hops p50 / p99", func(r privacyResult) string {
			return fmt.Sprintf("%d / %d", histPercentile(r.hopHist, 0.5), histPercentile(r.hopHist, 0.99))
		}},
		{"latency p50 / p99", func(r privacyResult) string {
			return fmt.Sprintf("%v / %v", durationPercentile(r.latency, 0.5).Round(time.Millisecond), durationPercentile(r.latency, 0.99).Round(time.Second))
		}},
		{"first-contact card hops p50 / p99 (v2)", func(r privacyResult) string {
			if len(r.cardHops) == 0 {
				return "-"
			}
			return fmt.Sprintf("%d / %d", histPercentile(r.cardHops, 0.5), histPercentile(r.cardHops, 0.99))
		}},
		{"v1 ring misses / v2 first contacts lost", func(r privacyResult) string { return fmt.Sprintf("%d / %d", r.ringMiss, r.introLost) }},
	}...)
}

func pct(x float64) string { return fmt.Sprintf("%.1f %%", 100*x) }

func limitName(n int) string {
	if n == math.MaxInt32 {
		return "any"
	}
	return fmt.Sprint(n)
}
