package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/asmtp/asmtp/asmtp/poldercast"
)

// params are the simulation's inputs.
type params struct {
	nodes          int
	topicsPerNode  int
	fanout         int
	churn          float64 // fraction of live nodes replaced per round, after warm-up
	rounds         int
	warmup         int // rounds before churn and publishing start
	eventsPerRound int
	seed           uint64
}

// Simulation constants. A round is one gossip cycle of every node.
const (
	period       = 30 * time.Second // gossip period: time between two Ticks of a node
	bootstrapLen = 5                // known gossips a node starts with
	zipfS        = 1.1              // topic popularity: P(rank k) ∝ k^−1.1
	pairs2sub    = 8                // fresh two-member topics measured
	maxSendTries = 8                // per node per event, counting failed sends
	fastTicks    = 8                // extra Ticks per round of a node not Settled
	fastPeriod   = 3 * time.Second  // a node not Settled ticks every 3 s
	settledAge   = 10               // rounds (5 minutes) after which a node counts as settled
)

// result holds the figures printed, in print order.
type result struct {
	hitRatio       float64
	hitSettled     float64 // over subscribers alive for settledAge rounds
	meanHops       float64
	p99Hops        int
	msgsPerSubEv   float64
	failedPerSubEv float64
	nonsubRelays   int
	roundsConverge int
	rounds2sub     float64 // mean over the pairs that met
	pairsFound     int
	pairs          int
	memPerNode     int
	ringAccuracy   float64
}

func (r result) String() string {
	return fmt.Sprintf("hit_ratio=%.4f mean_hops=%.2f p99_hops=%d msgs_per_subscriber_event=%.3f nonsubscriber_relays=%d rounds_to_converge=%d rounds_to_first_ring_neighbour_2sub=%.1f mem_per_node_bytes=%d ring_accuracy=%.4f failed_sends_per_subscriber_event=%.3f pairs_2sub_met=%d/%d hit_ratio_settled=%.4f",
		r.hitRatio, r.meanHops, r.p99Hops, r.msgsPerSubEv, r.nonsubRelays, r.roundsConverge, r.rounds2sub, r.memPerNode, r.ringAccuracy, r.failedPerSubEv, r.pairsFound, r.pairs, r.hitSettled)
}

type node struct {
	topo   *poldercast.Topology
	alive  bool
	topics []int32 // catalogue indexes
	seen   uint32  // last event received, for duplicate suppression
	hops   int32   // hops of that event's first receipt
	joined int     // round the node joined
}

type sim struct {
	p       params
	rng     *rand.Rand
	zipf    *rand.Zipf
	base    time.Time
	topics  []poldercast.Topic // catalogue, by popularity rank
	nodes   []*node            // dead nodes stay: sending to them fails
	index   map[poldercast.ID]int32
	live    []int32 // indexes of live nodes
	subs    []int32 // per catalogue topic: live subscribers
	protect map[int32]bool

	// dissemination totals
	event     uint32
	expected  int
	delivered int
	round     int
	// Same for subscribers alive for at least settledAge rounds.
	settledSubs      []int32 // per catalogue topic, recounted each round
	expectedSettled  int
	deliveredSettled int
	messages         int // event messages that reached a live node
	failed           int // sends to dead nodes (connection refused)
	subscribed       int // subscribers (publisher included) over all events
	nonsub           int
	hopHist          []int
	gossipBytes      int64 // Gossip messages sent, bytes
}

// newSim returns a simulation over a catalogue of as many random topics as
// nodes, drawn by Zipf popularity.
func newSim(p params) *sim {
	rng := rand.New(rand.NewPCG(p.seed, p.seed^0x9e3779b97f4a7c15))
	topics := make([]poldercast.Topic, p.nodes)
	for i := range topics {
		fillRandom(rng, topics[i][:])
	}
	s := newSimWith(p, rng, topics)
	s.zipf = rand.NewZipf(rng, zipfS, 1, uint64(p.nodes-1))
	return s
}

// newSimWith returns a simulation over the given topic catalogue; nodes
// get their topics from addNodeWith.
func newSimWith(p params, rng *rand.Rand, topics []poldercast.Topic) *sim {
	return &sim{
		p:           p,
		rng:         rng,
		base:        time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		topics:      topics,
		index:       make(map[poldercast.ID]int32),
		subs:        make([]int32, len(topics)),
		settledSubs: make([]int32, len(topics)),
		protect:     make(map[int32]bool),
	}
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

func (s *sim) fill(b []byte) { fillRandom(s.rng, b) }

// addNode creates a node with topicsPerNode Zipf-drawn topics and
// bootstrapLen known gossips from random live nodes.
func (s *sim) addNode(now time.Time) error {
	return s.addNodeWith(now, func() []int32 {
		var topics []int32
		for len(topics) < min(s.p.topicsPerNode, s.p.nodes) {
			k := int32(s.zipf.Uint64())
			if !slices.Contains(topics, k) {
				topics = append(topics, k)
			}
		}
		return topics
	})
}

// addNodeWith creates a node subscribed to the catalogue topics that pick
// returns, with bootstrapLen known gossips from random live nodes.
func (s *sim) addNodeWith(now time.Time, pick func() []int32) error {
	var id poldercast.ID
	s.fill(id[:])
	i := int32(len(s.nodes))
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 9800)
	rng := rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64()))
	topo, err := poldercast.New(id, addr, poldercast.Config{Fanout: s.p.fanout}, rng, now)
	if err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	n := &node{topo: topo, alive: true, joined: s.round, topics: pick()}
	for _, k := range n.topics {
		if err := topo.Subscribe(s.topics[k], now); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		s.subs[k]++
	}
	for range min(bootstrapLen, len(s.live)) {
		other := s.nodes[s.live[s.rng.IntN(len(s.live))]]
		if err := topo.Add(other.topo.Self(), now); err != nil {
			return fmt.Errorf("node %d bootstrap: %w", i, err)
		}
	}
	s.nodes = append(s.nodes, n)
	s.index[id] = i
	s.live = append(s.live, i)
	return nil
}

// churnRound kills a fraction of the live nodes (never the 2sub pairs) and
// adds as many fresh ones.
func (s *sim) churnRound(now time.Time) error {
	k := int(math.Round(s.p.churn * float64(len(s.live))))
	for killed := 0; killed < k; {
		j := s.rng.IntN(len(s.live))
		i := s.live[j]
		if s.protect[i] {
			continue
		}
		n := s.nodes[i]
		n.alive = false
		for _, tp := range n.topics {
			s.subs[tp]--
		}
		s.live[j] = s.live[len(s.live)-1]
		s.live = s.live[:len(s.live)-1]
		killed++
	}
	for range k {
		if err := s.addNode(now); err != nil {
			return err
		}
	}
	return nil
}

// gossipRound ticks every live node once, in random order, each at its own
// time within the round, and runs its exchanges synchronously.
func (s *sim) gossipRound(now time.Time) {
	order := slices.Clone(s.live)
	s.rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
	for k, i := range order {
		at := now.Add(time.Duration(k) * period / time.Duration(len(order)))
		a := s.nodes[i]
		for _, id := range a.topo.Tick(at) {
			s.exchange(a, id, at)
		}
	}
	// Nodes not yet settled on their rings tick faster, as a joining node
	// does: up to fastTicks more times, fastPeriod apart.
	for f := 1; f <= fastTicks; f++ {
		for k, i := range order {
			a := s.nodes[i]
			at := now.Add(time.Duration(k)*period/time.Duration(len(order)) + time.Duration(f)*fastPeriod)
			if !a.alive || a.topo.Settled(at) {
				continue
			}
			for _, id := range a.topo.Tick(at) {
				s.exchange(a, id, at)
			}
		}
	}
}

func (s *sim) exchange(a *node, id poldercast.ID, now time.Time) {
	j, ok := s.index[id]
	if !ok || !s.nodes[j].alive {
		a.topo.Remove(id) // connection refused
		return
	}
	b := s.nodes[j]
	request := a.topo.GossipFor(id, now)
	s.gossipBytes += gossipBytes(request)
	answer, _ := b.topo.Receive(a.topo.ID(), request, now)
	if answer {
		reply := b.topo.GossipFor(a.topo.ID(), now)
		s.gossipBytes += gossipBytes(reply)
		a.topo.Receive(id, reply, now)
	}
}

// gossipBytes is the wire size of the Gossip messages carrying ps over
// IPv4 (PROTOCOL.md §8: 108 + 33 bytes per subscription each).
func gossipBytes(ps []poldercast.Profile) int64 {
	var n int64
	for _, p := range ps {
		n += 108 + 33*int64(len(p.Subscriptions))
	}
	return n
}

// publish disseminates one event of a random topic of a random live node
// with the real Forward rule, breadth first (every link has the same
// latency, so the first receipt of a node is the one with fewest hops).
func (s *sim) settled(n *node) bool { return n.joined <= s.round-settledAge }

// countSettled recounts the settled live subscribers of every topic.
func (s *sim) countSettled() {
	clear(s.settledSubs)
	for _, i := range s.live {
		if n := s.nodes[i]; s.settled(n) {
			for _, k := range n.topics {
				s.settledSubs[k]++
			}
		}
	}
}

func (s *sim) publish() {
	pub := s.nodes[s.live[s.rng.IntN(len(s.live))]]
	if len(pub.topics) == 0 {
		return
	}
	s.publishOn(pub, pub.topics[s.rng.IntN(len(pub.topics))])
}

// publishOn disseminates one event of catalogue topic k from pub, which
// subscribes to it, and counts it in the dissemination totals.
func (s *sim) publishOn(pub *node, k int32) {
	tp := s.topics[k]
	s.event++
	s.expected += int(s.subs[k]) - 1
	s.expectedSettled += int(s.settledSubs[k])
	if s.settled(pub) {
		s.expectedSettled--
	}
	s.subscribed += int(s.subs[k])
	pub.seen = s.event
	type hop struct {
		n    *node
		from poldercast.ID
		hops int32
	}
	queue := []hop{{pub, pub.topo.ID(), 0}}
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		tried := make([]poldercast.ID, 0, s.p.fanout)
		targets := h.n.topo.Forward(tp, h.from)
		for len(targets) > 0 && len(tried) < maxSendTries {
			id := targets[0]
			targets = targets[1:]
			tried = append(tried, id)
			j, ok := s.index[id]
			if !ok || !s.nodes[j].alive {
				// The send fails: forget the peer and take the first new
				// peer the rule gives now (the next ring neighbour, or
				// another shortcut) in its place, so at most F sends reach.
				s.failed++
				h.n.topo.Remove(id)
				for _, alt := range h.n.topo.Forward(tp, h.from) {
					if !slices.Contains(tried, alt) && !slices.Contains(targets, alt) {
						targets = append(targets, alt)
						break
					}
				}
				continue
			}
			b := s.nodes[j]
			s.messages++
			if !slices.Contains(b.topics, k) {
				s.nonsub++
			}
			if b.seen == s.event {
				continue
			}
			b.seen = s.event
			b.hops = h.hops + 1
			s.delivered++
			if s.settled(b) {
				s.deliveredSettled++
			}
			for int(b.hops) >= len(s.hopHist) {
				s.hopHist = append(s.hopHist, 0)
			}
			s.hopHist[b.hops]++
			queue = append(queue, hop{b, h.n.topo.ID(), b.hops})
		}
	}
}

// ringAccuracy returns the fraction of (live subscriber, topic) pairs whose
// closest successor and predecessor are the true ones among the live
// subscribers, over topics with at least two live subscribers.
func (s *sim) ringAccuracy() float64 {
	members := make([][]int32, len(s.topics))
	for _, i := range s.live {
		for _, k := range s.nodes[i].topics {
			members[k] = append(members[k], i)
		}
	}
	total, correct := 0, 0
	for k, m := range members {
		if len(m) < 2 {
			continue
		}
		slices.SortFunc(m, func(a, b int32) int {
			x, y := s.nodes[a].topo.ID(), s.nodes[b].topo.ID()
			return compareIDs(x, y)
		})
		for x, i := range m {
			want := [2]poldercast.ID{s.nodes[m[(x+1)%len(m)]].topo.ID(), s.nodes[m[(x+len(m)-1)%len(m)]].topo.ID()}
			succ, pred := s.nodes[i].topo.Ring(s.topics[k])
			total++
			if len(succ) > 0 && len(pred) > 0 && succ[0] == want[0] && pred[0] == want[1] {
				correct++
			}
		}
	}
	if total == 0 {
		return 1
	}
	return float64(correct) / float64(total)
}

func compareIDs(a, b poldercast.ID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// pickUnprotected returns a random live node not in a 2sub pair yet and
// protects it from churn.
func (s *sim) pickUnprotected() *node {
	for {
		i := s.live[s.rng.IntN(len(s.live))]
		if !s.protect[i] {
			s.protect[i] = true
			return s.nodes[i]
		}
	}
}

type pair struct {
	a, b  *node
	topic poldercast.Topic
	start int // round they subscribed
	done  int // rounds until each was the other's ring neighbour; 0 = not yet
}

func (p *pair) neighbours() bool {
	return isFirst(p.a.topo, p.topic, p.b.topo.ID()) && isFirst(p.b.topo, p.topic, p.a.topo.ID())
}

func isFirst(t *poldercast.Topology, tp poldercast.Topic, id poldercast.ID) bool {
	succ, pred := t.Ring(tp)
	return (len(succ) > 0 && succ[0] == id) || (len(pred) > 0 && pred[0] == id)
}

func runPlain(p params) (result, error) {
	if p.nodes < 2 || p.topicsPerNode < 1 || p.rounds < 1 || p.warmup < 0 || p.warmup >= p.rounds || p.churn < 0 || p.churn >= 1 {
		return result{}, fmt.Errorf("invalid parameters %+v", p)
	}
	s := newSim(p)
	for range p.nodes {
		if err := s.addNode(s.base); err != nil {
			return result{}, err
		}
	}
	var pairs []*pair
	res := result{roundsConverge: -1}
	for r := range p.rounds {
		// Initial nodes joined at round 0 and so count as settled from the
		// start; a node joining in round r is settled from r+settledAge.
		s.round = settledAge + r
		now := s.base.Add(time.Duration(r+1) * period)
		if r >= p.warmup && p.churn > 0 {
			if err := s.churnRound(now); err != nil {
				return result{}, err
			}
		}
		if r == p.warmup {
			var err error
			if pairs, err = s.subscribePairs(r, now); err != nil {
				return result{}, err
			}
		}
		s.gossipRound(now)
		for _, pr := range pairs {
			if pr.done == 0 && pr.neighbours() {
				pr.done = r - pr.start + 1
			}
		}
		if res.roundsConverge < 0 && s.ringAccuracy() == 1 {
			res.roundsConverge = r + 1
		}
		if r >= p.warmup {
			s.countSettled()
			for range p.eventsPerRound {
				s.publish()
			}
		}
	}
	s.summarize(&res, pairs)
	return res, nil
}

// subscribePairs picks pairs2sub pairs of live nodes, spares them from
// churn, and subscribes each pair to a fresh topic of its own.
func (s *sim) subscribePairs(round int, now time.Time) ([]*pair, error) {
	var pairs []*pair
	for range min(pairs2sub, len(s.live)/4) {
		pr := &pair{a: s.pickUnprotected(), b: s.pickUnprotected(), start: round}
		s.fill(pr.topic[:])
		if err := pr.a.topo.Subscribe(pr.topic, now); err != nil {
			return nil, err
		}
		if err := pr.b.topo.Subscribe(pr.topic, now); err != nil {
			return nil, err
		}
		pairs = append(pairs, pr)
	}
	return pairs, nil
}

// summarize fills in the figures of a finished run.
func (s *sim) summarize(res *result, pairs []*pair) {
	res.ringAccuracy = s.ringAccuracy()
	if s.expected > 0 {
		res.hitRatio = float64(s.delivered) / float64(s.expected)
	}
	if s.expectedSettled > 0 {
		res.hitSettled = float64(s.deliveredSettled) / float64(s.expectedSettled)
	}
	if s.subscribed > 0 {
		res.msgsPerSubEv = float64(s.messages) / float64(s.subscribed)
		res.failedPerSubEv = float64(s.failed) / float64(s.subscribed)
	}
	res.nonsubRelays = s.nonsub
	sum, count := 0, 0
	for h, c := range s.hopHist {
		sum += h * c
		count += c
	}
	if count > 0 {
		res.meanHops = float64(sum) / float64(count)
		seen := 0
		for h, c := range s.hopHist {
			seen += c
			if seen*100 >= count*99 {
				res.p99Hops = h
				break
			}
		}
	}
	res.rounds2sub = -1
	total := 0
	for _, pr := range pairs {
		if pr.done > 0 {
			res.pairsFound++
			total += pr.done
		}
	}
	res.pairs = len(pairs)
	if res.pairsFound > 0 {
		res.rounds2sub = float64(total) / float64(res.pairsFound)
	}
	mem := 0
	for _, i := range s.live {
		mem += s.nodes[i].topo.Footprint()
	}
	res.memPerNode = mem / len(s.live)
}
