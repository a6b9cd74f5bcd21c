// Package poldercast is the peer topology of an ASMTP node: which peers it
// gossips with and which peers it forwards a topic's events to. It follows
// the PolderCast paper (Setty, van Steen, Vitenberg, Voulgaris, Middleware
// 2012), not the upstream primetype/poldercast crate, whose neighbour
// selection and forwarding deviate from the paper (see
// PROTOCOL.md §15.3).
//
// The package is pure: no I/O, no clock, no global random source. Every
// call that depends on time takes an explicit now, and randomness comes
// from the *rand.Rand given to New, so asmtp-sim runs the same code
// deterministically. It does not encode gossips: the node converts between
// Profile and the signed Gossip bytes (package asmtp/gossip). A Topology is
// not safe for concurrent use; the node serialises calls.
//
// # Modules
//
// Three views, each with a cap from Config:
//
//   - Rings: for every subscribed topic, the RingSize/2 closest known
//     subscribers after our id and the RingSize/2 closest before it, on the
//     circular 256-bit id space (the successor of the largest id is the
//     smallest). They guarantee delivery.
//   - Vicinity: the VicinitySize known peers of highest proximity to us: the
//     sum of our priorities over the topics we share, ties by the number of
//     shared topics. A topic's priority is RingSize minus its current ring
//     degree, so topics with incomplete rings attract neighbours. Ranked
//     again whenever profiles or priorities change. Feeds Rings with
//     subscribers of our topics and provides the dissemination shortcuts.
//   - Cyclon: CyclonSize peers, a random sample of the network kept random
//     by shuffles; keeps the overlay connected and feeds Vicinity.
//
// Every profile we hold is in at least one view; profiles that fall out of
// all views are dropped (after the next Tick), so memory is bounded by the
// view sizes. Our own profile advertises every subscribed topic with its
// priority as interest level (see interestLevel), also when the ring is
// full.
//
// # Gossip
//
// A profile's Time is the age of its descriptor: a live node re-stamps its
// profile on every Tick, so the newest profile of a node is the freshest
// news of it, and a profile not refreshed for ProfileTTL belongs to a node
// that stopped. A profile replaces the one we hold only if strictly newer;
// one dated more than MaxClockSkew ahead is rejected.
//
// On every cycle the node calls Tick, which picks the peers to exchange
// with — the oldest Cyclon entry (Cyclon's shuffle, which also ages out
// dead entries), the stalest Vicinity neighbour, the stalest ring
// neighbour, and up to Config.Introductions closest ring neighbours we never
// exchanged with (they do not know us, so they do not forward to us) — and
// sends each GossipFor(peer): our profile, GossipSize−1 random Cyclon
// entries, and up to GossipSize profiles chosen for the peer (its closest
// known ring neighbours for its topics, interleaved with the peers of
// highest proximity from its point of view). The peer merges them with
// Receive and answers with its own GossipFor. Received entries replace the
// Cyclon entries sent in the same exchange; all received profiles are
// offered to the Rings and Vicinity. The wire protocol has no requests or
// replies, so an exchange is two pushes; Receive tells the node when a push
// is a request to answer. While Settled is false (a closest ring neighbour
// has never been contacted, or a ring subscribed less than JoinWindow ago
// is still empty: typically just after start-up or a Subscribe)
// the node should Tick faster than its period, a bounded number of times:
// a joining node then takes its place on its rings in seconds rather than
// in several periods. The paper's cycle is fixed; the introductions and the
// fast join are additions of ours, needed for delivery under churn.
//
// # Dissemination
//
// Forward implements the paper's rule with fanout F (Config.Fanout,
// default 3). On the first receipt of an event of topic t (the node drops
// duplicates), a subscriber of t forwards it:
//
//   - received from its closest ring successor for t: to its closest ring
//     predecessor and F−1 random shortcuts; from its closest predecessor:
//     the reverse;
//   - received from any other peer, or published locally: to both closest
//     ring neighbours and F−2 random shortcuts.
//
// Shortcuts are Vicinity neighbours subscribed to t (other known
// subscribers of t when the Vicinity has too few). The sender is never sent
// back to. Each subscriber therefore sends each event at most F times, and
// only to subscribers of t: a node not subscribed to t never receives or
// relays t's events (relay-free). To publish on a topic it does not
// subscribe to, a node sends the event to Handoff(t), a few known
// subscribers, which then forward it as above.
//
// # Why every subscriber receives every event
//
// Let S be the live subscribers of t, ordered by id on the circle, and say
// the rings are correct when every s ∈ S has as closest successor and
// predecessor the next and previous member of S. Assume messages between
// live nodes are not lost, and the duplicate cache of each node outlives
// the dissemination of an event.
//
//  1. Every node that receives e for the first time forwards it to each of
//     its two ring neighbours, except the one it received e from, which
//     already has e. So once a node has e, both its ring neighbours get e.
//     (The F−2 or F−1 shortcuts only make this faster; they are not needed
//     for completeness.)
//  2. The publisher, or the subscriber a Handoff reached, has e; by (1)
//     applied along the ring, e travels around the circle in both
//     directions until the two waves meet, so with correct rings every
//     member of S receives e, whatever F ≥ 2.
//  3. With one dead or missing member on the ring, the two waves still
//     reach every other member: the circle minus one point is a path from
//     the publisher in both directions. It takes two faults on the same
//     ring to cut off the arc between them; that arc is then reached only
//     if a shortcut lands in it (each informed node throws F−2 or F−1
//     random shortcuts at subscribers, so a long arc is almost surely hit)
//     or after the rings repair: a failed send makes the node Remove the
//     peer, the ring is rebuilt from the next known subscriber (RingSize/2
//     per side are kept for this), and a node that re-runs Forward after a
//     failed send bridges the gap at once.
//  4. The rings become correct because every exchange sends each peer its
//     closest known ring neighbours for its topics, and Vicinity keeps
//     pulling in subscribers of the topics whose rings are incomplete: as
//     long as the overlay is connected (Cyclon), every member of S learns
//     of closer members until none is left. Duplicate events are bounded:
//     each member sends e at most F times, so a dissemination costs at most
//     F·|S| messages.
//
// Delivery is therefore complete in a converged overlay, and degrades only
// for members whose ring is cut twice before repair, or who joined so
// recently that no ring neighbour knows them yet.
package poldercast
