package mailstore

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestThreadDeepReferences is the attack of a sender who mails a long
// reply chain in which every message lists all its ancestors: kept whole,
// the References of 5,000 such messages take 12.5 million ids of disk, and
// each link THREAD checks for a loop walks the chain. Both are bounded:
// the last maxReferences ids are kept, and a chain deeper than
// maxThreadDepth is cut (its deeper messages start threads of their own).
func TestThreadDeepReferences(t *testing.T) {
	const n = 5000
	var msgs []threadMessage
	var refs []string
	for i := range n {
		id := fmt.Sprintf("m%d@x", i)
		k := sortKeysOf(&imap.Envelope{MessageID: id, Subject: "chain"}, refs)
		msgs = append(msgs, threadMessage{uid: UID(i + 1), date: int64(i), subject: k.subject, messageID: k.messageID,
			references: strings.Fields(k.references)})
		refs = append(refs, id)
	}
	if got := len(msgs[n-1].references); got != maxReferences {
		t.Errorf("%d references kept of %d, want %d", got, n-1, maxReferences)
	}
	messages, depth := threadShape(threadByReferences(msgs), 0)
	// A piece of the chain is maxThreadDepth+1 messages, under the dummy
	// that joins the pieces by subject.
	if messages != n || depth > maxThreadDepth+2 {
		t.Errorf("threads hold %d messages, %d deep; want %d, at most %d", messages, depth, n, maxThreadDepth+2)
	}
}

// threadShape counts the messages in threads and their greatest depth.
func threadShape(threads []Thread, depth int) (messages, deepest int) {
	deepest = depth
	for _, th := range threads {
		if th.UID != 0 {
			messages++
		}
		m, d := threadShape(th.Children, depth+1)
		messages, deepest = messages+m, max(deepest, d)
	}
	return messages, deepest
}
