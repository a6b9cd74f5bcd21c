package node

import (
	"context"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/node/store"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// Answering another node's QueryTopicMessages. An answer holds every
// stored message of the window, however many: the node reads it from the
// store a page at a time (at most QueryLimit messages and answerPageBytes
// of content) and queues each page on the link with back-pressure, so it
// holds one page in memory per answer, and the link's queue bounds what
// waits for the network. Answers run on a goroutine per link, one at a
// time in the order asked, never on the link's reader (two nodes
// answering each other on their readers would each wait for the other to
// read). At most maxAnswering pages are read from the store at once; the
// slot is taken per page, not per answer, so a long answer (or a peer
// that asks for one again and again) cannot keep others waiting.
//
// Markers (wire.AnswerMarker, PROTOCOL.md §15.4) frame an answer: Begins
// when the query is accepted, Complete after its last message, Refused
// instead of an answer. The asking node pays a catch-up window only on
// Complete (catchup.go). A node that does not know markers drops them as
// messages on a topic it does not subscribe to.
const (
	// answerPageBytes bounds the content read from the store at once for
	// one answer.
	answerPageBytes = 1 << 20
	// maxAnswering bounds the answer pages being read from the store at
	// once.
	maxAnswering = 4
	// maxQueuedAnswers bounds the queries waiting for their answer on one
	// link; a query beyond it is refused (the peer asks again later).
	maxQueuedAnswers = 32
)

// answerQueue holds a link's queries waiting for their answer; its
// goroutine starts with the first query.
type answerQueue chan answerJob

// answerJob is a query waiting for its answer; an empty one is answered
// with no message whatever is stored (the peer may not read the topic).
type answerJob struct {
	q     wire.QueryTopicMessages
	empty bool
}

// answerNodeQuery accepts a node peer's QueryTopicMessages while the link
// has room for it, for a topic the peer may read (mayRead, §16.7: as
// §15.4, a topic its own gossip on this link advertises unless
// OpenQueries, but never an own inbox, and mail held for another node
// only to that node). A v2 node gives every other query the same answer
// as a topic it keeps with nothing since: Begins, then Complete, in the
// queue's order, so that a probe learns nothing from the bytes or their
// order; a v1 node (Config.NamingV1) refuses it, as v1 did. It runs on
// the link's reader, which owns l.answers.
func (n *Node) answerNodeQuery(ctx context.Context, l *link, q wire.QueryTopicMessages) {
	job := answerJob{q: q}
	switch {
	case n.mayRead(ctx, l, q.Topic):
	case n.cfg.NamingV1:
		n.log.Debug("query refused: the peer may not read the topic", "peer", l.remote, "topic", q.Topic)
		n.sendMarker(ctx, l, q, wire.AnswerRefused)
		return
	default:
		n.log.Debug("query answered empty: the peer may not read the topic", "peer", l.remote, "topic", q.Topic)
		job.empty = true
	}
	if l.answers == nil {
		ch := make(answerQueue, maxQueuedAnswers)
		if !n.spawn(func() { n.answerLoop(ctx, l, ch) }) {
			return
		}
		l.answers = ch
	}
	if len(l.answers) == cap(l.answers) {
		n.log.Debug("query refused: too many waiting on the link", "peer", l.remote, "topic", q.Topic)
		n.sendMarker(ctx, l, q, wire.AnswerRefused)
		return
	}
	// Begins goes out now, before the answers queued ahead are done, so
	// that the peer knows at once that this node frames its answers.
	if n.sendMarker(ctx, l, q, wire.AnswerBegins) {
		l.answers <- job // never blocks: only this goroutine sends
	}
}

// sendMarker queues an answer marker with back-pressure; a link that
// cannot take it within WriteTimeout is stuck and closed.
func (n *Node) sendMarker(ctx context.Context, l *link, q wire.QueryTopicMessages, st wire.AnswerStatus) bool {
	if l.enqueue(ctx, wire.AnswerMarker{Query: q, Status: st}.Topic(), n.cfg.WriteTimeout) {
		return true
	}
	if ctx.Err() == nil {
		n.closeLink(l)
	}
	return false
}

// answerLoop answers a link's queries in order until the link closes.
func (n *Node) answerLoop(ctx context.Context, l *link, queries answerQueue) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.done:
			return
		case job := <-queries:
			if job.empty || n.streamAnswer(ctx, l, job.q) {
				n.sendMarker(ctx, l, job.q, wire.AnswerComplete)
			}
		}
	}
}

// newAnswerSlots returns the node's answering slots, all free.
func newAnswerSlots() chan struct{} {
	slots := make(chan struct{}, maxAnswering)
	for range maxAnswering {
		slots <- struct{}{}
	}
	return slots
}

// streamAnswer queues every stored message of q's window on l, a page at
// a time, and reports whether it got to the end. A link that stays full
// for WriteTimeout is stuck and closed.
func (n *Node) streamAnswer(ctx context.Context, l *link, q wire.QueryTopicMessages) bool {
	_, ok := n.streamStored(ctx, l, q)
	return ok
}

// streamStored is streamAnswer, also reporting how many messages it
// queued.
func (n *Node) streamStored(ctx context.Context, l *link, q wire.QueryTopicMessages) (int, bool) {
	since := gossip.ToTime(q.Since)
	var after int64
	sent := 0
	for {
		page, err := n.readAnswerPage(ctx, l, q, since, after)
		if err != nil {
			if ctx.Err() == nil && !l.isClosed() {
				n.log.Error("answer query", "peer", l.remote, "topic", q.Topic, "err", err)
			}
			return sent, false
		}
		for _, m := range page {
			if !l.enqueue(ctx, wire.Topic{Topic: m.Topic, Content: m.Content}, n.cfg.WriteTimeout) {
				if ctx.Err() == nil && !l.isClosed() {
					n.log.Debug("answer: link stuck; closed", "peer", l.remote)
					n.closeLink(l)
				}
				return sent, false
			}
			after = m.Cursor
			sent++
		}
		if !store.PageFull(page, n.cfg.QueryLimit, answerPageBytes) {
			n.log.Debug("query answered", "peer", l.remote, "topic", q.Topic, "messages", sent)
			return sent, true
		}
	}
}

// readAnswerPage reads the next page of an answer, in one of the node's
// answering slots.
func (n *Node) readAnswerPage(ctx context.Context, l *link, q wire.QueryTopicMessages, since time.Time, after int64) ([]store.Message, error) {
	select {
	case <-n.answerSlots:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.done:
		return nil, ErrClosed
	}
	defer func() { n.answerSlots <- struct{}{} }()
	return n.store.MessagesPage(ctx, q.Topic, since, after, n.cfg.QueryLimit, answerPageBytes)
}
