package imapserver

import (
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/asmtp/asmtp/mailstore"
)

var (
	_ imapserver.SessionSort   = (*session)(nil)
	_ imapserver.SessionThread = (*session)(nil)
)

// Sort answers SORT and UID SORT (RFC 5256) from the sort keys the store
// cached at insert. Messages this session has not been told of yet are
// left out, as in SEARCH.
func (ss *session) Sort(kind imapserver.NumKind, criteria []imap.SortCriterion, search *imap.SearchCriteria) ([]uint32, error) {
	sel, err := ss.selected()
	if err != nil {
		return nil, err
	}
	if err := ss.seqToUIDCriteria(search); err != nil {
		return nil, err
	}
	uids, err := wholeMailbox(sel.view, search, fmt.Sprint("SORT ", criteria), func() ([]imap.UID, error) {
		return ss.store().Sort(ss.ctx, sel.view.id, search, criteria)
	})
	if err != nil {
		return nil, storeError(err)
	}
	nums := sel.view.numbers(sel.tracker, kind, slices.Sorted(slices.Values(uids)))
	out := make([]uint32, 0, len(uids))
	for _, uid := range uids {
		if num := nums[uid]; num != 0 {
			out = append(out, num)
		}
	}
	return out, nil
}

// maxOrderedCached is how many sort orders and thread trees of a mailbox
// its view keeps. Their memory is of the order of the view's own (a UID,
// or a thread node of some 40 bytes, per message) and goes with the view
// (viewCache keeps the views in use and maxIdleViews others); an idle view
// keeps them because clients SELECT again before sorting again.
const maxOrderedCached = 4

// wholeMailbox runs compute (a SORT or THREAD), except that the answer for
// the whole mailbox (... ALL, what clients send after each change) is kept
// in the view under key until a message is added or expunged: flag changes
// move no message in any sort order or thread. An answer that raced a
// change is not kept.
func wholeMailbox[T any](v *mailboxView, search *imap.SearchCriteria, key string, compute func() (T, error)) (T, error) {
	if !mailstore.IsAll(search) {
		return compute()
	}
	v.mu.Lock()
	cached, ok := v.ordered[key].(T)
	generation := v.generation
	v.mu.Unlock()
	if ok {
		return cached, nil
	}
	answer, err := compute()
	if err != nil {
		return answer, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.generation == generation {
		if len(v.ordered) >= maxOrderedCached || v.ordered == nil {
			v.ordered = make(map[string]any)
		}
		v.ordered[key] = answer
	}
	return answer, nil
}

// Thread answers THREAD and UID THREAD with ORDEREDSUBJECT or REFERENCES.
func (ss *session) Thread(kind imapserver.NumKind, algorithm imap.ThreadAlgorithm, search *imap.SearchCriteria) ([]imap.ThreadData, error) {
	sel, err := ss.selected()
	if err != nil {
		return nil, err
	}
	if err := ss.seqToUIDCriteria(search); err != nil {
		return nil, err
	}
	threads, err := wholeMailbox(sel.view, search, "THREAD "+string(algorithm), func() ([]mailstore.Thread, error) {
		return ss.store().Thread(ss.ctx, sel.view.id, search, algorithm)
	})
	if err != nil {
		return nil, storeError(err)
	}
	var uids []imap.UID
	collectUIDs(threads, &uids)
	slices.Sort(uids)
	return threadData(threads, sel.view.numbers(sel.tracker, kind, uids)), nil
}

func collectUIDs(threads []mailstore.Thread, uids *[]imap.UID) {
	for _, t := range threads {
		if t.UID != 0 {
			*uids = append(*uids, t.UID)
		}
		collectUIDs(t.Children, uids)
	}
}

// threadData writes the store's trees as RFC 5256 thread lists: a message
// with one child continues its chain; with more, each child starts a
// nested list. A message the session does not know yet is left out as a
// dummy is.
func threadData(threads []mailstore.Thread, nums map[imap.UID]uint32) []imap.ThreadData {
	var out []imap.ThreadData
	for _, t := range threads {
		if d, ok := threadList(t, nums); ok {
			out = append(out, d)
		}
	}
	return out
}

func threadList(t mailstore.Thread, nums map[imap.UID]uint32) (imap.ThreadData, bool) {
	var d imap.ThreadData
	for nums[t.UID] != 0 {
		d.Chain = append(d.Chain, nums[t.UID])
		if len(t.Children) != 1 {
			break
		}
		t = t.Children[0]
	}
	subs := threadData(t.Children, nums)
	switch {
	case len(subs) == 1 && len(d.Chain) == 0:
		return subs[0], true
	case len(subs) == 1: // a single child left after unknown ones
		d.Chain = append(d.Chain, subs[0].Chain...)
		d.SubThreads = subs[0].SubThreads
	default:
		d.SubThreads = subs
	}
	return d, len(d.Chain) > 0 || len(d.SubThreads) > 0
}

// numbers maps UIDs (ascending) to what the session calls them: their
// sequence numbers, or themselves, for those it has been told of.
func (v *mailboxView) numbers(st *sessionTracker, kind imapserver.NumKind, uids []imap.UID) map[imap.UID]uint32 {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[imap.UID]uint32, len(uids))
	at := 0
	for _, uid := range uids {
		for at < len(v.uids) && v.uids[at] < uid {
			at++
		}
		if at == len(v.uids) || v.uids[at] != uid {
			continue
		}
		if seq := st.encodeSeqNum(uint32(at + 1)); seq != 0 {
			out[uid] = seq
			if kind == imapserver.NumKindUID {
				out[uid] = uint32(uid)
			}
		}
	}
	return out
}
