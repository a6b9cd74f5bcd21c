package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/poldercast"
	"github.com/asmtp/asmtp/asmtp/topic"
)

// The privacy run (-privacy): one account per node, a power-law contact
// graph, a month of mail, and the adversaries of issue 12, run on naming
// scheme v1 and then v2 over the same seed. The overlay is the real
// PolderCast code (package poldercast) built from the scheme's
// subscriptions over -rounds gossip rounds, without overlay churn (the
// plain run measures that); churn is nodes going offline, which delays
// mail until sender and recipient are both online again.
//
// Delivery. A message leaves when its sender's node is online and is held
// by the sender's node until the recipient's node is online too (v1: both
// subscribe to the pair topic and catch up from each other; v2: the
// sender's node holds it for the inbox, PROTOCOL.md §16.6). v1 sends on the
// pair topic with the real Forward: one hop when the sender's ring for the
// pair holds the recipient, else the recipient is found at the next gossip
// round (counted as a ring miss, one period later). v2 sends to the inbox
// subscriber directly, one hop. A first contact sends a contact card to the
// recipient's intro bucket: to a bucket member from the sender's Handoff
// (or one found by a walk when Handoff knows none), then along the bucket
// ring with the real Forward; the bucket members hold it for an offline
// recipient, whose node answers with its own card direct, after which the
// first mail goes direct like any other.

// privacyParams are the inputs of the privacy run.
type privacyParams struct {
	nodes   int
	degree  float64 // mean contacts per account
	days    int
	rate    float64 // messages per contact pair per day, replies not counted
	reply   float64 // probability that a message is answered
	fresh   float64 // fraction of contact pairs made during the run
	offline float64 // fraction of the time a node is offline
	rounds  int     // gossip rounds building the overlay
	fanout  int
	spies   []float64 // colluding fractions of the nodes
	seed    uint64
	schemes []scheme // run these, in order (default v1 then v2)
}

const (
	hopDelay     = 20 * time.Millisecond // one link hop
	roundsPerDay = int(24 * time.Hour / period)
)

func (p privacyParams) validate() error {
	if p.nodes < 4 || p.degree <= 0 || p.days < 1 || p.rate <= 0 || p.reply < 0 || p.reply > 1 ||
		p.fresh < 0 || p.fresh > 1 || p.offline < 0 || p.offline >= 1 || p.rounds < 2 || p.fanout < 2 {
		return fmt.Errorf("invalid privacy parameters %+v", p)
	}
	for _, s := range p.schemes {
		if s != schemeV1 && s != schemeV2 {
			return fmt.Errorf("unknown naming scheme %q", s)
		}
	}
	for _, c := range p.spies {
		if c <= 0 || c >= 1 {
			return fmt.Errorf("spy fraction %v not in (0, 1)", c)
		}
	}
	return nil
}

// runPrivacy runs v1 and v2 on the same contacts, availability and mail.
func runPrivacy(p privacyParams) ([]privacyResult, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(p.seed, p.seed^0x5851f42d4c957f2d))
	g := newContactGraph(rng, p.nodes, p.degree)
	ids := identities{passports: make([]passport.Hash, p.nodes), seeds: make([]topic.InboxSeed, p.nodes)}
	for i := range p.nodes {
		fillRandom(rng, ids.passports[i][:])
		fillRandom(rng, ids.seeds[i][:])
	}
	av := newAvailability(rng, p.nodes, p.offline, float64(p.days*24))
	schemes := p.schemes
	if len(schemes) == 0 {
		schemes = []scheme{schemeV1, schemeV2}
	}
	var out []privacyResult
	for _, s := range schemes {
		res, err := runScheme(p, newNaming(s, g, ids), g, ids, av)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		out = append(out, res)
	}
	return out, nil
}

func runScheme(p privacyParams, nm *naming, g *contactGraph, ids identities, av *availability) (privacyResult, error) {
	sm, gossipPerNodeRound, err := buildOverlay(p, nm)
	if err != nil {
		return privacyResult{}, err
	}
	res := privacyResult{scheme: nm.scheme, accounts: p.nodes, gossipPerNodeDay: gossipPerNodeRound * float64(roundsPerDay)}
	crawl := crawlGossip(sm)
	res.passportIDs = passportsVisible(crawl, ids)
	res.computable = pairsComputable(crawl, g, ids)
	res.crawler, res.chance = bestClassifier(crawl, g)
	linked := linkedByGossip(crawl, g)
	mr := &mailRun{p: p, sm: sm, nm: nm, g: g, av: av, res: &res}
	mr.run()
	res.spies = spyCandidates(p, g, linked, mr.intros, nm)
	return res, nil
}

// buildOverlay creates one node per account with the scheme's
// subscriptions and runs the gossip rounds. It returns the Gossip bytes
// each node sent per round in steady state: averaged over the rounds after
// the join window (poldercast.Config.JoinWindow), during which a node whose
// ring is still empty — every v2 inbox, which only its owner subscribes
// to — ticks 8 more times per round; at least the last round.
func buildOverlay(p privacyParams, nm *naming) (*sim, float64, error) {
	rng := rand.New(rand.NewPCG(p.seed, p.seed^0x9e3779b97f4a7c15))
	sm := newSimWith(params{nodes: p.nodes, fanout: p.fanout}, rng, nm.topics)
	for i := range p.nodes {
		if err := sm.addNodeWith(sm.base, func() []int32 { return nm.nodeTopics[i] }); err != nil {
			return nil, 0, err
		}
	}
	from := min(p.rounds-1, int(poldercast.DefaultConfig().JoinWindow/period))
	var measured int64
	for r := range p.rounds {
		sm.round = settledAge + r
		before := sm.gossipBytes
		sm.gossipRound(sm.base.Add(time.Duration(r+1) * period))
		if r >= from {
			measured += sm.gossipBytes - before
		}
	}
	perRound := float64(measured) / float64(p.rounds-from) / float64(p.nodes)
	return sm, perRound, nil
}

// mailRun delivers the workload over a built overlay.
type mailRun struct {
	p      privacyParams
	sm     *sim
	nm     *naming
	g      *contactGraph
	av     *availability
	res    *privacyResult
	rng    *rand.Rand
	ring   map[[2]int32]bool // v1: whether from's pair ring holds to
	intros []introSeen
}

// introSeen is a first contact as the node it was handed to saw it: the
// sender, and the bucket it was for.
type introSeen struct {
	edge    int32
	handoff int32
	bucket  int32
}

func (m *mailRun) run() {
	// The same draws for both schemes: the workload depends on the seed only.
	m.rng = rand.New(rand.NewPCG(m.p.seed, m.p.seed^0x2545f4914f6cdd1d))
	handoff := rand.New(rand.NewPCG(m.p.seed, m.p.seed^0x14057b7ef767814f))
	m.ring = map[[2]int32]bool{}
	w := mailWorkload{rate: m.p.rate, reply: m.p.reply, fresh: m.p.fresh, hours: float64(m.p.days * 24)}
	w.each(m.rng, m.g, func(ml mail) { m.deliver(ml, handoff) })
	m.res.mailPerNodeDay = m.res.mailBytes / float64(m.p.nodes) / float64(m.p.days)
}

// deliver sends one message and records whether and when it arrived.
func (m *mailRun) deliver(ml mail, rng *rand.Rand) {
	hours := float64(m.p.days * 24)
	m.res.sent++
	leave := m.av.nextOnline(ml.from, ml.at)
	var hops int
	var arrive float64
	switch {
	case m.nm.scheme == schemeV2 && ml.first:
		cardHops, ok := m.intro(ml, rng)
		if !ok {
			m.res.introLost++
			return
		}
		m.res.cardHops = addHop(m.res.cardHops, cardHops)
		// Bucket members hold the card until the recipient's node is back;
		// its answer card and then the mail go direct while both are online.
		hops = 1
		arrive = m.av.bothOnline(ml.from, ml.to, m.av.nextOnline(ml.to, leave))
		arrive += float64(cardHops+1) * hopDelay.Hours()
		m.res.mailBytes += ml.size + introCardSize
	case m.nm.scheme == schemeV2:
		hops, arrive = 1, m.av.bothOnline(ml.from, ml.to, leave)
		m.res.mailBytes += ml.size
	default:
		hops, arrive = 1, m.av.bothOnline(ml.from, ml.to, leave)
		m.res.mailBytes += ml.size
		if !m.pairRing(ml.from, ml.to) {
			m.res.ringMiss++
			arrive = m.av.bothOnline(ml.from, ml.to, arrive+period.Hours())
		}
	}
	if arrive >= hours {
		return
	}
	m.res.delivered++
	m.res.hopHist = addHop(m.res.hopHist, hops)
	wait := time.Duration((arrive - ml.at) * float64(time.Hour))
	m.res.latency = append(m.res.latency, wait+time.Duration(hops)*hopDelay)
}

func addHop(hist []int, hops int) []int {
	for hops >= len(hist) {
		hist = append(hist, 0)
	}
	hist[hops]++
	return hist
}

// pairRing reports whether from's Forward on their pair topic reaches to.
func (m *mailRun) pairRing(from, to int32) bool {
	key := [2]int32{from, to}
	if ok, done := m.ring[key]; done {
		return ok
	}
	tp := m.nm.topics[m.nm.pair[m.g.edge(from, to)]]
	a, b := m.sm.nodes[from].topo, m.sm.nodes[to].topo
	ok := slices.Contains(a.Forward(tp, a.ID()), b.ID())
	m.ring[key] = ok
	return ok
}

// introCardSize is the sealed contact card a first contact sends through
// the intro bucket (PROTOCOL.md §16.5): passport id, inbox seed, node id
// and address, sealed to the recipient; the mail itself waits for the
// recipient's answer card and then goes direct.
const introCardSize = 1024

// intro disseminates a first-contact card in the recipient's intro bucket
// and returns the hops it took to reach the recipient.
func (m *mailRun) intro(ml mail, rng *rand.Rand) (int, bool) {
	k := m.nm.bucket[ml.to]
	members := m.nm.members[k]
	from := m.sm.nodes[ml.from]
	h := int32(-1)
	if slices.Contains(members, ml.from) {
		h = ml.from
	}
	for _, id := range from.topo.Handoff(m.sm.topics[k]) {
		if j, ok := m.sm.index[id]; ok && h < 0 {
			h = j
		}
	}
	if h < 0 {
		h = members[rng.IntN(len(members))] // found by a walk of the overlay
	}
	m.intros = append(m.intros, introSeen{edge: m.g.edge(ml.from, ml.to), handoff: h, bucket: k})
	before := m.sm.messages
	m.sm.publishOn(m.sm.nodes[h], k)
	sends := m.sm.messages - before
	hops := 0
	if h != ml.from {
		sends++
		hops = 1
	}
	m.res.mailBytes += introCardSize * float64(sends)
	to := m.sm.nodes[ml.to]
	switch {
	case h == ml.to:
		return hops, true
	case to.seen == m.sm.event:
		return hops + int(to.hops), true
	}
	return 0, false
}

// percentile returns the q-quantile of the hop histogram.
func histPercentile(hist []int, q float64) int {
	total := 0
	for _, c := range hist {
		total += c
	}
	seen := 0
	for h, c := range hist {
		seen += c
		if float64(seen) >= q*float64(total) {
			return h
		}
	}
	return 0
}

func durationPercentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)]
}
