// Command asmtp-sim runs the real PolderCast topology and dissemination code
// of package asmtp/poldercast over an in-memory transport, deterministically,
// and prints one line of key=value figures.
//
// A round is one gossip cycle: every live node Ticks once (in a random
// order, each at its own time within the 30 s round) and runs the returned
// exchanges synchronously; a send to a dead node fails at once and the
// sender calls Remove, as a node does on a refused connection. A node not
// yet Settled on its rings ticks up to 8 more times per round, 3 s apart,
// as a joining node does (poldercast.Topology.Settled). The first
// -warmup rounds build the overlay from 5 random known gossips per node;
// then each round replaces a -churn fraction of the live nodes by fresh
// ones (same topic distribution, 5 known gossips each) and publishes
// -events events, each from a random live node on one of its topics,
// disseminated breadth first with the real Forward (a failed send is
// followed by Remove and one replacement target from Forward, as a node
// does).
//
// Topic popularity is Zipf with exponent 1.1 over a catalogue of as many
// topics as nodes: each node draws -topics-per-node distinct topics with
// P(rank k) ∝ k^−1.1, the heavy tail of follower counts in the Twitter and
// Facebook workloads the PolderCast paper used. At 10,000 nodes and 10
// topics per node the most popular topic has about 8,000 subscribers and
// most topics a handful.
//
// Figures:
//
//	hit_ratio                  first receipts by live subscribers / live subscribers (publisher excluded) at publish time
//	mean_hops, p99_hops        hops of those first receipts
//	msgs_per_subscriber_event  event messages that reached a node / live subscribers (publisher included), over all events
//	failed_sends_per_subscriber_event
//	                           sends to dead nodes (connection refused) / live subscribers
//	nonsubscriber_relays       event messages that reached a node not subscribed to the topic
//	rounds_to_converge         first round after which every live subscriber has the true closest
//	                           successor and predecessor on every topic ring (-1: never)
//	rounds_to_first_ring_neighbour_2sub
//	                           8 pairs of live nodes (spared by churn) subscribe a fresh topic after warm-up:
//	                           mean rounds until each is the other's closest ring neighbour, over the pairs
//	                           that got there before the end (-1: none did)
//	pairs_2sub_met             how many of the pairs got there
//	hit_ratio_settled          hit_ratio over subscribers alive for at least 10 rounds (5 minutes): the
//	                           initial nodes, and joiners once settled
//	mem_per_node_bytes         mean poldercast.Topology.Footprint at the end
//	ring_accuracy              fraction of (subscriber, topic) rings correct at the end
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
)

func main() {
	var p params
	flag.IntVar(&p.nodes, "nodes", 1000, "number of nodes")
	flag.IntVar(&p.topicsPerNode, "topics-per-node", 10, "topics each node subscribes to")
	flag.IntVar(&p.fanout, "fanout", 3, "dissemination fanout F (at least 2)")
	flag.Float64Var(&p.churn, "churn", 0, "fraction of live nodes replaced per round after warm-up")
	flag.IntVar(&p.rounds, "rounds", 30, "gossip rounds in total")
	flag.IntVar(&p.warmup, "warmup", 10, "rounds before churn and publishing start")
	flag.IntVar(&p.eventsPerRound, "events", 20, "events published per round after warm-up")
	flag.Uint64Var(&p.seed, "seed", 1, "random seed")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "asmtp-sim:", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "asmtp-sim:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	res, err := run(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "asmtp-sim:", err)
		os.Exit(2)
	}
	fmt.Println(res)
}
