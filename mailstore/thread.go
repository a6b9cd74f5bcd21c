package mailstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/emersion/go-imap/v2"
)

// Thread is one node of a THREAD answer: a message (UID 0 for a dummy that
// only holds its children together) and the messages under it.
type Thread struct {
	UID      UID
	Children []Thread
}

// threadMessage is what threading needs of a message.
type threadMessage struct {
	uid        UID
	date       int64 // sent date, or INTERNALDATE without one (unix seconds)
	subject    string
	reply      bool
	messageID  string
	references []string
}

// Thread threads the messages matching criteria with the given algorithm
// of RFC 5256: ORDEREDSUBJECT or REFERENCES.
func (db *DB) Thread(ctx context.Context, id MailboxID, criteria *imap.SearchCriteria, algorithm imap.ThreadAlgorithm) ([]Thread, error) {
	msgs, err := db.threadRecords(ctx, id, criteria)
	if err != nil {
		return nil, fmt.Errorf("thread mailbox %s: %w", id, err)
	}
	switch algorithm {
	case imap.ThreadOrderedSubject:
		return threadBySubject(msgs), nil
	case imap.ThreadReferences:
		return threadByReferences(msgs), nil
	}
	return nil, fmt.Errorf("thread mailbox %s: unknown algorithm %q", id, algorithm)
}

// earlier orders messages by date, then by UID (the mailbox order).
func earlier(a, b *threadMessage) int {
	if a.date != b.date {
		return cmpInt(a.date, b.date)
	}
	return cmpInt(a.uid, b.uid)
}

func cmpInt[T ~int64 | ~uint32](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// threadBySubject is ORDEREDSUBJECT: one thread per base subject, its
// messages by date, the first the parent of the others; threads by the
// date of their first message.
func threadBySubject(msgs []threadMessage) []Thread {
	slices.SortFunc(msgs, func(a, b threadMessage) int {
		if a.subject != b.subject {
			if a.subject < b.subject {
				return -1
			}
			return 1
		}
		return earlier(&a, &b)
	})
	var threads []Thread
	var firsts []*threadMessage
	for i := range msgs {
		if i > 0 && msgs[i].subject == msgs[i-1].subject {
			t := &threads[len(threads)-1]
			t.Children = append(t.Children, Thread{UID: msgs[i].uid})
			continue
		}
		threads = append(threads, Thread{UID: msgs[i].uid})
		firsts = append(firsts, &msgs[i])
	}
	order := make([]int, len(threads))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return earlier(firsts[a], firsts[b]) })
	out := make([]Thread, len(threads))
	for i, j := range order {
		out[i] = threads[j]
	}
	return out
}

// container is a node of the REFERENCES algorithm's tree; msg is nil for a
// message only referred to.
type container struct {
	msg      *threadMessage
	parent   *container
	children []*container
}

func (c *container) link(child *container) {
	child.parent = c
	c.children = append(c.children, child)
}

func (c *container) unlink() {
	if p := c.parent; p != nil {
		p.children = slices.DeleteFunc(p.children, func(x *container) bool { return x == c })
		c.parent = nil
	}
}

// reaches reports whether other is c or below it, or deeper below
// anything than maxThreadDepth: a link there is refused as a loop is.
func (c *container) reaches(other *container) bool {
	for depth := 0; other != nil; other, depth = other.parent, depth+1 {
		if other == c || depth >= maxThreadDepth {
			return true
		}
	}
	return false
}

// threadByReferences is REFERENCES (RFC 5256 §3, after Jamie Zawinski's
// algorithm): link messages by Message-ID and References, drop and promote
// dummies, gather root threads by base subject, sort siblings by date.
func threadByReferences(msgs []threadMessage) []Thread {
	all := linkReferences(msgs)
	var roots []*container
	for _, c := range all {
		if c.parent == nil {
			roots = append(roots, c)
		}
	}
	roots = pruneDummies(roots, true)
	roots = gatherBySubject(roots)
	sortSiblings(roots)
	return toThreads(roots)
}

// linkReferences is step 1: one container per message id, parents from
// References (never making a loop, never replacing a parent seen before),
// and each message under its last reference. It returns the containers in
// creation order.
func linkReferences(msgs []threadMessage) []*container {
	byID := make(map[string]*container)
	var all []*container
	get := func(id string) *container {
		c := byID[id]
		if c == nil {
			c = &container{}
			byID[id] = c
			all = append(all, c)
		}
		return c
	}
	for i := range msgs {
		m := &msgs[i]
		var prev *container
		for _, ref := range m.references {
			c := get(ref)
			if prev != nil && c.parent == nil && !c.reaches(prev) && !prev.reaches(c) {
				prev.link(c)
			}
			prev = c
		}
		id := m.messageID
		if id == "" || byID[id] != nil && byID[id].msg != nil {
			id = "\x00" + strconv.Itoa(i) // no or duplicate Message-ID: a unique one
		}
		own := get(id)
		own.msg = m
		own.unlink()
		if prev != nil && !own.reaches(prev) {
			prev.link(own)
		}
	}
	return all
}

// pruneDummies is step 4: dummies without children go; a dummy's children
// take its place, except at the root where only a single child does.
func pruneDummies(list []*container, root bool) []*container {
	var out []*container
	for _, c := range list {
		c.children = pruneDummies(c.children, false)
		if c.msg == nil && (len(c.children) == 0 || !root || len(c.children) == 1) {
			for _, child := range c.children {
				child.parent = c.parent
			}
			out = append(out, c.children...)
			continue
		}
		out = append(out, c)
	}
	return out
}

// subjectOf is a root's message for subject gathering: its own, or a
// dummy's first child's (which pruneDummies left real).
func subjectOf(c *container) *threadMessage {
	if c.msg != nil {
		return c.msg
	}
	return c.children[0].msg
}

// gatherBySubject is step 5: root threads with the same base subject are
// joined, under a dummy or under the one that is not a reply.
func gatherBySubject(roots []*container) []*container {
	table := make(map[string]*container)
	for _, r := range roots {
		s := subjectOf(r)
		if s.subject == "" {
			continue
		}
		old := table[s.subject]
		if old == nil || old.msg != nil && (r.msg == nil || old.msg.reply && !s.reply) {
			table[s.subject] = r
		}
	}
	var out []*container
	for _, r := range roots {
		s := subjectOf(r)
		t := table[s.subject]
		if s.subject == "" || t == r {
			out = append(out, r)
			continue
		}
		switch {
		case t.msg == nil && r.msg == nil:
			for _, child := range r.children {
				t.link(child)
			}
		case t.msg == nil:
			t.link(r)
		case !t.msg.reply && r.msg.reply:
			t.link(r)
		default:
			dummy := &container{}
			at := slices.Index(out, t)
			dummy.link(t)
			dummy.link(r)
			table[s.subject] = dummy
			if at >= 0 {
				out[at] = dummy
			} else {
				roots = replaceRoot(roots, t, dummy)
			}
		}
	}
	return out
}

// replaceRoot puts dummy where t is among the roots not yet visited.
func replaceRoot(roots []*container, t, dummy *container) []*container {
	if at := slices.Index(roots, t); at >= 0 {
		roots[at] = dummy
	}
	return roots
}

// sortSiblings is step 6: every set of siblings by date, children first,
// a dummy dated by its first child.
func sortSiblings(list []*container) {
	for _, c := range list {
		sortSiblings(c.children)
	}
	slices.SortStableFunc(list, func(a, b *container) int { return earlier(subjectOf(a), subjectOf(b)) })
}

func toThreads(list []*container) []Thread {
	out := make([]Thread, len(list))
	for i, c := range list {
		if c.msg != nil {
			out[i].UID = c.msg.uid
		}
		out[i].Children = toThreads(c.children)
	}
	return out
}

// Bounds against a sender's long reference chains: the ids of References
// kept per message (the last ones, which place it; the first ones matter
// only when all the others are missing), and how deep THREAD follows a
// chain (each link it makes walks the chain to refuse loops).
const (
	maxReferences  = 64
	maxThreadDepth = 1000
)
