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
//
// With -privacy it runs the metadata-privacy workload instead (privacy.go,
// adversary.go): one account per node with power-law contacts (-degree),
// -days of Poisson mail with replies, log-normal sizes, new contacts and
// offline spells, under naming scheme v1 and v2 (PROTOCOL.md §16) on the
// same seed, and prints a Markdown table of what a gossip crawler, a topic
// computer and colluding spies (-spies percentages) learn, with the bytes,
// delivery, hops and latency of each scheme.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "asmtp-sim:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("asmtp-sim", flag.ContinueOnError)
	var p params
	fs.IntVar(&p.nodes, "nodes", 1000, "number of nodes")
	fs.IntVar(&p.topicsPerNode, "topics-per-node", 10, "topics each node subscribes to")
	fs.IntVar(&p.fanout, "fanout", 3, "dissemination fanout F (at least 2)")
	fs.Float64Var(&p.churn, "churn", 0, "fraction of live nodes replaced per round after warm-up")
	fs.IntVar(&p.rounds, "rounds", 30, "gossip rounds in total (privacy run: rounds building the overlay)")
	fs.IntVar(&p.warmup, "warmup", 10, "rounds before churn and publishing start")
	fs.IntVar(&p.eventsPerRound, "events", 20, "events published per round after warm-up")
	fs.Uint64Var(&p.seed, "seed", 1, "random seed")
	privacy := fs.Bool("privacy", false, "run the privacy workload and adversaries on naming schemes v1 and v2")
	pp := privacyParams{}
	fs.Float64Var(&pp.degree, "degree", 20, "privacy: mean contacts per account (power law)")
	fs.IntVar(&pp.days, "days", 30, "privacy: simulated days of mail")
	fs.Float64Var(&pp.rate, "mail-rate", 1, "privacy: messages per contact pair per day, before replies")
	fs.Float64Var(&pp.reply, "reply", 0.5, "privacy: probability that a message is answered")
	fs.Float64Var(&pp.fresh, "new-contacts", 0.1, "privacy: fraction of contact pairs made during the run")
	fs.Float64Var(&pp.offline, "offline", 0.05, "privacy: fraction of the time a node is offline")
	spies := fs.String("spies", "1,5,10", "privacy: colluding node percentages, comma-separated")
	schemes := fs.String("schemes", "v1,v2", "privacy: naming schemes to run, comma-separated")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The simulation keeps a large, long-lived heap; collecting it less
	// often saves about a tenth of the run time.
	debug.SetGCPercent(400)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if !*privacy {
		res, err := runPlain(p)
		if err != nil {
			return err
		}
		fmt.Println(res)
		return nil
	}
	pp.nodes, pp.rounds, pp.fanout, pp.seed = p.nodes, p.rounds, p.fanout, p.seed
	for _, f := range strings.Split(*spies, ",") {
		c, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return fmt.Errorf("-spies: %w", err)
		}
		pp.spies = append(pp.spies, c/100)
	}
	for _, s := range strings.Split(*schemes, ",") {
		pp.schemes = append(pp.schemes, scheme(strings.TrimSpace(s)))
	}
	rs, err := runPrivacy(pp)
	if err != nil {
		return err
	}
	fmt.Print(privacyTable(rs))
	return nil
}
