package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// The mail workload of the privacy run: who knows whom, when nodes are
// online, and the mail they exchange. It depends only on the seed, so v1 and
// v2 see exactly the same contacts, availability and messages.

const (
	powerLawExponent = 2.5  // contact degrees: P(d) ∝ d^−2.5, a social graph
	maxContacts      = 500  // v1 subscribes 2·contacts+1 topics, at most 1,023
	sizeMedian       = 20e3 // mail size, bytes: log-normal, median 20 KB …
	sizeSigma        = 1.68 // … and 1 % above 1 MB (ln 50 / z₀.₉₉)
	replyMedianHours = 1.0  // reply delay: log-normal, median 1 h
	replySigma       = 1.0
	offlineMeanHours = 1.0 // mean length of a node's offline spell
)

// contactGraph is an undirected contact graph: node i hosts account i.
type contactGraph struct {
	adj   [][]int32 // sorted contacts of each account
	edges [][2]int32
	index map[[2]int32]int32 // edge (lower, higher) → position in edges
}

// newContactGraph draws a Chung–Lu graph with power-law expected degrees of
// the given mean, each account capped at maxContacts.
func newContactGraph(rng *rand.Rand, n int, mean float64) *contactGraph {
	weights := make([]float64, n)
	cum := make([]float64, n)
	wmin := mean * (powerLawExponent - 2) / (powerLawExponent - 1)
	total := 0.0
	for i := range weights {
		w := wmin * math.Pow(1-rng.Float64(), -1/(powerLawExponent-1))
		weights[i] = min(w, maxContacts)
		total += weights[i]
		cum[i] = total
	}
	pick := func() int32 {
		return int32(sort.SearchFloat64s(cum, rng.Float64()*total))
	}
	g := &contactGraph{adj: make([][]int32, n), index: make(map[[2]int32]int32)}
	want := int(math.Round(float64(n) * mean / 2))
	for tries := 0; len(g.edges) < want && tries < 20*want; tries++ {
		a, b := pick(), pick()
		if a == b || len(g.adj[a]) >= maxContacts || len(g.adj[b]) >= maxContacts {
			continue
		}
		e := [2]int32{min(a, b), max(a, b)}
		if _, ok := g.index[e]; ok {
			continue
		}
		g.index[e] = int32(len(g.edges))
		g.edges = append(g.edges, e)
		g.adj[a] = append(g.adj[a], b)
		g.adj[b] = append(g.adj[b], a)
	}
	for _, l := range g.adj {
		slices.Sort(l)
	}
	return g
}

// edge returns the position of edge a–b, or -1 if a and b are not contacts.
func (g *contactGraph) edge(a, b int32) int32 {
	if e, ok := g.index[[2]int32{min(a, b), max(a, b)}]; ok {
		return e
	}
	return -1
}

// availability is when each node is offline: alternating exponential
// online and offline spells, offline a given fraction of the time.
type availability struct {
	off [][]float64 // per node: start, end, start, end … of offline spells, hours
}

func newAvailability(rng *rand.Rand, n int, offline, hours float64) *availability {
	av := &availability{off: make([][]float64, n)}
	if offline <= 0 {
		return av
	}
	onMean := offlineMeanHours * (1 - offline) / offline
	for i := range av.off {
		t := 0.0
		if rng.Float64() < 1-offline {
			t = rng.ExpFloat64() * onMean
		}
		for t < hours {
			end := t + rng.ExpFloat64()*offlineMeanHours
			av.off[i] = append(av.off[i], t, end)
			t = end + rng.ExpFloat64()*onMean
		}
	}
	return av
}

// nextOnline is the first time at or after t that node i is online.
func (av *availability) nextOnline(i int32, t float64) float64 {
	spells := av.off[i]
	// The first spell boundary after t: odd index = inside a spell.
	k := sort.SearchFloat64s(spells, t)
	if k < len(spells) && spells[k] == t && k%2 == 0 {
		return spells[k+1]
	}
	if k%2 == 1 {
		return spells[k]
	}
	return t
}

// bothOnline is the first time at or after t that nodes a and b are both
// online.
func (av *availability) bothOnline(a, b int32, t float64) float64 {
	for {
		ta := av.nextOnline(a, t)
		tb := av.nextOnline(b, ta)
		if tb == ta {
			return ta
		}
		t = tb
	}
}

// mail is one message of the workload.
type mail struct {
	from, to int32
	at       float64 // hours since the start
	size     float64 // bytes
	first    bool    // the first message of a contact made during the run
}

// mailWorkload generates the messages of every contact pair in time order
// per pair: Poisson at rate per pair per day, each way equally likely,
// answered with probability reply after a log-normal delay. A fraction
// fresh of the pairs become contacts during the run, at a uniform time;
// their first message is a first contact.
type mailWorkload struct {
	rate, reply, fresh, hours float64
}

func (w mailWorkload) each(rng *rand.Rand, g *contactGraph, emit func(mail)) {
	for _, e := range g.edges {
		start := 0.0
		fresh := rng.Float64() < w.fresh
		if fresh {
			start = rng.Float64() * w.hours
		}
		t := start
		for {
			if !fresh || t > start {
				t += rng.ExpFloat64() * 24 / w.rate
			}
			if t >= w.hours {
				break
			}
			from, to := e[0], e[1]
			if rng.IntN(2) == 1 {
				from, to = to, from
			}
			emit(mail{from: from, to: to, at: t, size: logNormal(rng, sizeMedian, sizeSigma), first: fresh && t == start})
			if rng.Float64() < w.reply {
				if at := t + logNormal(rng, replyMedianHours, replySigma); at < w.hours {
					emit(mail{from: to, to: from, at: at, size: logNormal(rng, sizeMedian, sizeSigma)})
				}
			}
			if fresh && t == start {
				t += 1e-9 // the next message is an ordinary one
			}
		}
	}
}

func logNormal(rng *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*rng.NormFloat64())
}
