package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// MaxPendingPassports bounds the passports being fetched from the network
// at once.
const MaxPendingPassports = 64

// maxBucketAsked bounds the members of one intro bucket a passport lookup
// asks: our ring neighbours on it first (at width 0 every v2 node with an
// account is a member), then the most recent others we know.
const maxBucketAsked = 16

// passportState tracks stored passports and GetPassport requests in flight.
// The node subscribes to the topic of every stored passport, so updates
// (single blocks on the passport topic) are applied as they pass.
type passportState struct {
	update sync.Mutex // serialises read-modify-write of stored passports

	mu      sync.Mutex
	ids     map[passport.Hash]struct{}
	pending map[passport.Hash]*pendingPassport
}

// pendingPassport is a GetPassport in flight. It stays after the first
// answer until its deadline, so that late answers from other peers are not
// taken for unsolicited ones.
type pendingPassport struct {
	deadline time.Time
	answered chan struct{} // closed on the first valid answer
	done     bool
}

func (p *passportState) init() {
	p.ids = make(map[passport.Hash]struct{})
	p.pending = make(map[passport.Hash]*pendingPassport)
}

func (p *passportState) known(id passport.Hash) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.ids[id]
	return ok
}

func (p *passportState) add(id passport.Hash) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids[id] = struct{}{}
}

func (p *passportState) remove(id passport.Hash) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.ids, id)
}

// putPassport validates blocks, merges them into the stored copy and
// stores the result durably, subscribing to the passport's topic.
func (n *Node) putPassport(ctx context.Context, blocks []byte) (passport.Hash, error) {
	return n.storePassport(ctx, blocks, false)
}

// storePassport is putPassport; a quiet passport is stored without
// subscribing to its topic (naming v2), and one subscribed before is
// unsubscribed.
func (n *Node) storePassport(ctx context.Context, blocks []byte, quiet bool) (passport.Hash, error) {
	now := time.Now()
	p, err := passport.Import(blocks, now)
	if err != nil {
		return passport.Hash{}, fmt.Errorf("put passport: %w", err)
	}
	id := p.ID()
	n.passports.update.Lock()
	defer n.passports.update.Unlock()
	stored, ok, err := n.store.Passport(ctx, id)
	if err != nil {
		return id, err
	}
	if ok {
		have, err := passport.Import(stored, now)
		if err != nil {
			return id, fmt.Errorf("put passport: stored copy: %w", err)
		}
		if _, err := have.Merge(p.Blocks(), now); err != nil {
			return id, fmt.Errorf("put passport: %w", err)
		}
		p = have
	}
	put := n.store.PutPassport
	if quiet {
		put = n.store.PutQuietPassport
	}
	if err := put(ctx, id, p.Export(), now); err != nil {
		return id, err
	}
	switch {
	case quiet && n.passports.known(id):
		n.passports.remove(id)
		n.unsubscribeUnused(topic.ForPassport(id))
	case !quiet && !n.passports.known(id):
		n.passports.add(id)
		n.subscribe(topic.ForPassport(id))
	}
	return id, nil
}

// applyPassportUpdate applies one block received on a stored passport's
// topic and persists the passport. Invalid or known blocks are ignored.
func (n *Node) applyPassportUpdate(ctx context.Context, id passport.Hash, content []byte) {
	if !n.passports.known(id) {
		return
	}
	now := time.Now()
	b, err := passport.ParseBlock(content)
	if err != nil {
		n.log.Debug("passport update: not a block", "passport", id, "err", err)
		return
	}
	n.passports.update.Lock()
	defer n.passports.update.Unlock()
	stored, ok, err := n.store.Passport(ctx, id)
	if err != nil || !ok {
		n.log.Error("passport update: stored copy", "passport", id, "err", err)
		return
	}
	p, err := passport.Import(stored, now)
	if err == nil {
		err = p.Apply(b, now)
	}
	if errors.Is(err, passport.ErrKnownBlock) {
		return
	}
	if err != nil {
		n.log.Debug("passport update rejected", "passport", id, "err", err)
		return
	}
	if err := n.store.PutPassport(ctx, id, p.Export(), now); err != nil {
		n.log.Error("passport update: store", "passport", id, "err", err)
	}
}

// answerGetPassport sends a stored passport to a node peer. Passport ids
// are unguessable hashes and passports hold only public keys, so any peer
// that knows an id may fetch it (rate-limited per link).
func (n *Node) answerGetPassport(ctx context.Context, l *link, id passport.Hash) {
	blocks, ok, err := n.store.Passport(ctx, id)
	if err != nil {
		n.log.Error("answer GetPassport", "passport", id, "err", err)
		return
	}
	if ok && len(blocks) <= wire.MaxPassportBlocks {
		l.enqueue(ctx, wire.PutPassport{ID: id, Blocks: blocks}, n.cfg.WriteTimeout)
	}
}

// getPassport returns a stored passport, or asks the network for it.
func (n *Node) getPassport(ctx context.Context, id passport.Hash) ([]byte, error) {
	blocks, ok, err := n.store.Passport(ctx, id)
	if err != nil || ok {
		return blocks, err
	}
	runCtx, err := n.runContext(ctx)
	if err != nil {
		return nil, err
	}
	p, err := n.passports.expect(id, time.Now().Add(n.cfg.PassportTimeout))
	if err != nil {
		return nil, err
	}
	asked := 0
	for _, peer := range n.passportPeers(id) {
		if l, err := n.linkTo(peer); err == nil && l.enqueue(runCtx, wire.GetPassport{ID: id}, 0) {
			asked++
		}
	}
	if asked == 0 {
		return nil, fmt.Errorf("get passport %s: no peer to ask", id)
	}
	t := time.NewTimer(n.cfg.PassportTimeout)
	defer t.Stop()
	select {
	case <-p.answered:
	case <-t.C:
		return nil, fmt.Errorf("get passport %s: no answer within %v", id, n.cfg.PassportTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	blocks, ok, err = n.store.Passport(ctx, id)
	if err == nil && !ok {
		err = fmt.Errorf("get passport %s: answer not stored", id)
	}
	return blocks, err
}

// passportPeers returns whom to ask for a passport: known subscribers of
// its topic (v1 nodes), known members of its intro bucket (the account's
// node is one: naming v2 holds passports without advertising them), then
// random connected nodes, up to Fanout more.
func (n *Node) passportPeers(id passport.Hash) []keys.PublicKey {
	peers := n.overlay.handoff(topic.ForPassport(id))
	// The account's width may differ from ours by one across a change
	// (§16.4): its node is a member at one of the three.
	b := n.bucketBits()
	for w := max(0, b-1); w <= min(topic.MaxBucketBits, b+1); w++ {
		for _, p := range n.overlay.subscribers(topic.IntroBucket(id, w), maxBucketAsked) {
			if !slices.Contains(peers, p) {
				peers = append(peers, p)
			}
		}
	}
	want := len(peers) + n.cfg.Fanout
	n.mu.Lock()
	var connected []keys.PublicKey
	for k, l := range n.links {
		if !l.user {
			connected = append(connected, k)
		}
	}
	n.mu.Unlock()
	rand.Shuffle(len(connected), func(i, j int) { connected[i], connected[j] = connected[j], connected[i] })
	for _, k := range connected {
		if len(peers) >= want {
			break
		}
		dup := false
		for _, p := range peers {
			dup = dup || p == k
		}
		if !dup {
			peers = append(peers, k)
		}
	}
	return peers
}

// expect registers a GetPassport in flight (or joins one).
func (p *passportState) expect(id passport.Hash, deadline time.Time) (*pendingPassport, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for k, pp := range p.pending {
		if now.After(pp.deadline) {
			delete(p.pending, k)
		}
	}
	if pp := p.pending[id]; pp != nil && !pp.done {
		return pp, nil
	}
	if len(p.pending) >= MaxPendingPassports {
		return nil, fmt.Errorf("get passport %s: %d requests already in flight", id, MaxPendingPassports)
	}
	pp := &pendingPassport{deadline: deadline, answered: make(chan struct{})}
	p.pending[id] = pp
	return pp, nil
}

// passportAnswer takes a node peer's PutPassport answering one of our
// GetPassports. It returns false for an unsolicited or invalid one.
func (n *Node) passportAnswer(ctx context.Context, m wire.PutPassport) bool {
	n.passports.mu.Lock()
	pp := n.passports.pending[m.ID]
	late := pp != nil && pp.done
	n.passports.mu.Unlock()
	if pp == nil {
		return false
	}
	if late {
		return true
	}
	// A v2 node keeps what it looked up without subscribing to it (its
	// user subscribes with PutPassport, for a v1 contact).
	quiet := !n.cfg.NamingV1 && !n.passports.known(m.ID)
	id, err := n.storePassport(ctx, m.Blocks, quiet)
	if err != nil || id != m.ID {
		n.log.Debug("passport answer rejected", "passport", m.ID, "err", err)
		return false
	}
	n.passports.mu.Lock()
	if !pp.done {
		pp.done = true
		close(pp.answered)
	}
	n.passports.mu.Unlock()
	return true
}
