package imapserver

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/asmtp/asmtp/mailstore"
)

// mailboxView is the server's in-memory picture of one mailbox, shared by
// every session that selects it: its UIDs in order with their flags, kept
// current by the store's change notifications, and the go-imap tracker that
// queues each session's unsolicited EXISTS, EXPUNGE and FETCH responses.
// SELECT and FETCH FLAGS are answered from it without touching SQLite.
type mailboxView struct {
	id      mailstore.MailboxID
	tracker *mailboxTracker
	stop    func()

	mu          sync.Mutex
	uids        []imap.UID
	flags       [][]imap.Flag
	modSeqs     []uint64             // of each message's last change (CONDSTORE)
	highestMod  uint64               // the mailbox's HIGHESTMODSEQ
	keywords    map[string]imap.Flag // by lower case; only grows while the view lives
	uidValidity uint32
	uidNext     imap.UID
	deleted     bool
	// firstRecent is the lowest UID no session has taken \Recent for. It
	// lives with the view, in memory: a mailbox loaded afresh (after a
	// restart, or when its idle view was dropped) has every message recent
	// to the next session that selects it.
	firstRecent imap.UID
	// ordered caches SORT orders and THREAD trees of the whole mailbox,
	// by command (see wholeMailbox); generation counts the appends and
	// expunges that void them.
	ordered    map[string]any
	generation uint64

	users int // sessions holding the view; guarded by viewCache.mu
}

func newView(ctx context.Context, store mailstore.Store, id mailstore.MailboxID) (*mailboxView, error) {
	v := &mailboxView{id: id, keywords: make(map[string]imap.Flag)}
	// Watch calls v.apply only after it returns, under the store's write
	// lock; v.mu orders that against our reads of the snapshot below.
	v.mu.Lock()
	defer v.mu.Unlock()
	snap, stop, err := store.Watch(ctx, id, v.apply)
	if err != nil {
		return nil, err
	}
	v.stop = stop
	v.uids = snap.UIDs
	v.flags = make([][]imap.Flag, len(snap.Flags))
	for i, f := range snap.Flags {
		v.flags[i], _ = v.toIMAP(f)
	}
	v.modSeqs = snap.ModSeqs
	v.highestMod = snap.Mailbox.HighestModSeq
	v.uidValidity = snap.Mailbox.UIDValidity
	v.uidNext = snap.Mailbox.UIDNext
	v.tracker = newMailboxTracker(uint32(len(v.uids)))
	return v, nil
}

// toIMAP converts stored flags and remembers keywords, reporting whether
// one is new to the mailbox; v.mu must be held.
func (v *mailboxView) toIMAP(flags []string) ([]imap.Flag, bool) {
	out := make([]imap.Flag, len(flags))
	added := false
	for i, f := range flags {
		out[i] = imap.Flag(f)
		if key := strings.ToLower(f); !strings.HasPrefix(f, `\`) && v.keywords[key] == "" {
			v.keywords[key] = imap.Flag(f)
			added = true
		}
	}
	return out, added
}

// mailboxFlagsLocked is the FLAGS list: system flags, then keywords in use.
func (v *mailboxView) mailboxFlagsLocked() []imap.Flag {
	flags := []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft}
	var keywords []imap.Flag
	for _, k := range v.keywords {
		keywords = append(keywords, k)
	}
	slices.Sort(keywords)
	return append(flags, keywords...)
}

// apply is the store's change callback. It must not block: it only updates
// memory and queues responses, which the sessions write themselves.
func (v *mailboxView) apply(c mailstore.Change) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if c.Kind != mailstore.ChangeFlags {
		v.generation++
		v.ordered = nil
	}
	v.highestMod = max(v.highestMod, c.ModSeq)
	switch c.Kind {
	case mailstore.ChangeAppended:
		for i, uid := range c.UIDs {
			flags, newKeyword := v.toIMAP(c.Flags[i])
			if newKeyword {
				v.tracker.queueMailboxFlags(v.mailboxFlagsLocked())
			}
			v.uids = append(v.uids, uid)
			v.flags = append(v.flags, flags)
			v.modSeqs = append(v.modSeqs, c.ModSeq)
			v.uidNext = max(v.uidNext, uid+1)
		}
		// One EXISTS for the whole change (a COPY of thousands of
		// messages, a MULTIAPPEND), as Dovecot sends.
		if len(c.UIDs) > 0 {
			v.tracker.queueNumMessages(uint32(len(v.uids)))
		}
		// A read-write session has taken every earlier message at its
		// SELECT, so firstRecent can move past these.
		origin, _ := c.Origin.(*sessionTracker)
		if v.tracker.claimRecent(c.UIDs, origin) {
			v.firstRecent = v.uidNext
		}
	case mailstore.ChangeFlags:
		source, _ := c.Origin.(*sessionTracker)
		for i, uid := range c.UIDs {
			if at, ok := slices.BinarySearch(v.uids, uid); ok {
				flags, newKeyword := v.toIMAP(c.Flags[i])
				if newKeyword {
					v.tracker.queueMailboxFlags(v.mailboxFlagsLocked())
				}
				v.flags[at] = flags
				v.modSeqs[at] = c.ModSeq
				v.tracker.queueMessageFlags(uint32(at+1), uid, flags, c.ModSeq, source)
			}
		}
	case mailstore.ChangeExpunged:
		v.expungeLocked(c.UIDs)
		v.tracker.forgetRecent(c.UIDs)
	case mailstore.ChangeMailboxDeleted:
		v.expungeLocked(slices.Clone(v.uids))
		v.deleted = true
	}
}

// expungeLocked removes uids (ascending), queueing EXPUNGE from the highest
// sequence number down so that each one stays valid as the next is sent.
func (v *mailboxView) expungeLocked(uids []imap.UID) {
	gone := make(map[int]bool, len(uids))
	for i := len(uids) - 1; i >= 0; i-- {
		if at, ok := slices.BinarySearch(v.uids, uids[i]); ok && !gone[at] {
			gone[at] = true
			v.tracker.queueExpunge(uint32(at+1), uids[i])
		}
	}
	keep := 0
	for i := range v.uids {
		if !gone[i] {
			v.uids[keep], v.flags[keep], v.modSeqs[keep] = v.uids[i], v.flags[i], v.modSeqs[i]
			keep++
		}
	}
	clear(v.flags[keep:])
	v.uids, v.flags, v.modSeqs = v.uids[:keep], v.flags[:keep], v.modSeqs[:keep]
}

// selectData answers SELECT and registers the session's tracker in the same
// critical section, so no change falls between the two.
func (v *mailboxView) selectData(readOnly bool) (*imap.SelectData, *sessionTracker, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.deleted {
		return nil, nil, errNoMailbox
	}
	flags := v.mailboxFlagsLocked()
	data := &imap.SelectData{
		Flags:          flags,
		PermanentFlags: append(slices.Clone(flags), imap.FlagWildcard),
		NumMessages:    uint32(len(v.uids)),
		UIDNext:        v.uidNext,
		UIDValidity:    v.uidValidity,
		HighestModSeq:  v.highestMod,
	}
	if readOnly {
		data.PermanentFlags = []imap.Flag{} // EXAMINE: nothing can be changed
	}
	for i, f := range v.flags {
		if !slices.Contains(f, imap.FlagSeen) {
			data.FirstUnseenSeqNum = uint32(i + 1)
			break
		}
	}
	// SELECT takes \Recent for the messages no session has; EXAMINE only
	// counts them.
	recent := v.unclaimedLocked()
	data.NumRecent = uint32(len(recent))
	if readOnly {
		return data, v.tracker.newSession(true, nil, v.highestMod), nil
	}
	v.firstRecent = v.uidNext
	return data, v.tracker.newSession(false, recent, v.highestMod), nil
}

// unclaimedLocked are the messages no session has taken \Recent for.
func (v *mailboxView) unclaimedLocked() []imap.UID {
	at, _ := slices.BinarySearch(v.uids, v.firstRecent)
	return slices.Clone(v.uids[at:])
}

// numRecent is STATUS RECENT: the messages that are \Recent to a session
// or not yet taken by one.
func (v *mailboxView) numRecent() uint32 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return uint32(len(v.unclaimedLocked())) + v.tracker.heldRecent()
}

// target is one message a command addresses: its number in the session's
// view, its UID and its index in the shared view.
type target struct {
	seq uint32
	uid imap.UID
	at  int
}

// resolve turns a client's sequence or UID set into targets in UID order.
// Messages the session has not been told about yet are left out; sequence
// numbers beyond what the session knows are a client error.
func (v *mailboxView) resolve(st *sessionTracker, numSet imap.NumSet) ([]target, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []target
	switch set := numSet.(type) {
	case imap.SeqSet:
		known := v.knownLocked(st)
		for _, r := range set {
			start, stop := staticRange(r.Start, r.Stop, known)
			if start == 0 || stop > known {
				return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Invalid message sequence number"}
			}
			for seq := start; seq <= stop; seq++ {
				if at := int(st.decodeSeqNum(seq)) - 1; at >= 0 {
					out = append(out, target{seq: seq, uid: v.uids[at], at: at})
				}
			}
		}
	case imap.UIDSet:
		last := imap.UID(0)
		if len(v.uids) > 0 {
			last = v.uids[len(v.uids)-1]
		}
		for _, r := range set {
			start, stop := staticRange(uint32(r.Start), uint32(r.Stop), uint32(last))
			at, _ := slices.BinarySearch(v.uids, imap.UID(start))
			for ; at < len(v.uids) && v.uids[at] <= imap.UID(stop); at++ {
				if seq := st.encodeSeqNum(uint32(at + 1)); seq != 0 {
					out = append(out, target{seq: seq, uid: v.uids[at], at: at})
				}
			}
		}
	default:
		return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unsupported message set"}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].uid < out[j].uid })
	return slices.CompactFunc(out, func(a, b target) bool { return a.uid == b.uid }), nil
}

// knownLocked is how many messages the session believes the mailbox has,
// including those expunged elsewhere whose EXPUNGE it has not been sent:
// it may still name them (RFC 3501 §7.4.1).
func (v *mailboxView) knownLocked(st *sessionTracker) uint32 {
	return st.knownMessages()
}

// staticUIDs replaces "*" in a UID set by the highest UID, so that UID *
// and UID n:* with n beyond it match that message (RFC 3501 §6.4.8).
func (v *mailboxView) staticUIDs(set imap.UIDSet) imap.UIDSet {
	v.mu.Lock()
	last := imap.UID(0)
	if len(v.uids) > 0 {
		last = v.uids[len(v.uids)-1]
	}
	v.mu.Unlock()
	out := make(imap.UIDSet, 0, len(set))
	for _, r := range set {
		start, stop := staticRange(uint32(r.Start), uint32(r.Stop), uint32(last))
		if start == 0 {
			continue // "*" in an empty mailbox
		}
		out = append(out, imap.UIDRange{Start: imap.UID(start), Stop: imap.UID(stop)})
	}
	return out
}

// staticRange resolves "*" (0) to max and orders the bounds.
func staticRange(start, stop, max uint32) (uint32, uint32) {
	if start == 0 {
		start = max
	}
	if stop == 0 {
		stop = max
	}
	if start > stop {
		start, stop = stop, start
	}
	return start, stop
}

// modSeqOf returns the mod-sequence of a message's last change, or 0 if
// it is gone.
func (v *mailboxView) modSeqOf(uid imap.UID) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	if at, ok := slices.BinarySearch(v.uids, uid); ok {
		return v.modSeqs[at]
	}
	return 0
}

// changedSince returns the UIDs, among those in set (nil: all), of the
// messages changed after mod-sequence modSeq.
func (v *mailboxView) changedSince(modSeq uint64, set imap.UIDSet) imap.UIDSet {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := imap.UIDSet{}
	for i, m := range v.modSeqs {
		if m > modSeq && (set == nil || set.Contains(v.uids[i])) {
			out.AddNum(v.uids[i])
		}
	}
	return out
}

// missingFrom returns the UIDs of set, up to the highest UID handed out,
// that name no message now: what may have vanished, when the store's
// record of expunges does not reach back far enough.
func (v *mailboxView) missingFrom(set imap.UIDSet) imap.UIDSet {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := imap.UIDSet{}
	last := uint32(v.uidNext - 1)
	for _, r := range set {
		start, stop := staticRange(uint32(r.Start), uint32(r.Stop), last)
		stop = min(stop, last)
		if start == 0 || start > stop {
			continue
		}
		at, _ := slices.BinarySearch(v.uids, imap.UID(start))
		for next := start; next <= stop; at++ { // the gaps between the messages
			end := stop
			present := at < len(v.uids) && uint32(v.uids[at]) <= stop
			if present {
				end = uint32(v.uids[at]) - 1
			}
			if next <= end {
				out.AddRange(imap.UID(next), imap.UID(end))
			}
			if !present {
				break
			}
			next = uint32(v.uids[at]) + 1
		}
	}
	return out
}

// flagsOf returns the current flags of a message, or nil if it is gone.
func (v *mailboxView) flagsOf(uid imap.UID) ([]imap.Flag, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	at, ok := slices.BinarySearch(v.uids, uid)
	if !ok {
		return nil, false
	}
	return v.flags[at], true
}

// viewCache keeps one view per mailbox while sessions use it, and up to
// maxIdleViews more so that re-selecting a mailbox costs no reload.
type viewCache struct {
	store mailstore.Store
	mu    sync.Mutex
	views map[mailstore.MailboxID]*mailboxView
}

const maxIdleViews = 32

func (c *viewCache) acquire(ctx context.Context, id mailstore.MailboxID) (*mailboxView, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.views[id]
	if v != nil && v.isDeleted() {
		delete(c.views, id)
		v = nil
	}
	if v == nil {
		var err error
		if v, err = newView(ctx, c.store, id); err != nil {
			return nil, fmt.Errorf("load mailbox %s: %w", id, err)
		}
		c.views[id] = v
	}
	v.users++
	return v, nil
}

// numRecent is STATUS RECENT: of a loaded mailbox, see mailboxView's; of
// one not loaded, all its messages (see firstRecent).
func (c *viewCache) numRecent(id mailstore.MailboxID, messages uint32) uint32 {
	c.mu.Lock()
	v := c.views[id]
	c.mu.Unlock()
	if v == nil {
		return messages
	}
	return v.numRecent()
}

func (c *viewCache) release(v *mailboxView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v.users--
	if len(c.views) <= maxIdleViews {
		return
	}
	for id, idle := range c.views {
		if idle.users == 0 {
			idle.stop()
			delete(c.views, id)
		}
	}
}

func (c *viewCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, v := range c.views {
		v.stop()
		delete(c.views, id)
	}
}

func (v *mailboxView) isDeleted() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.deleted
}
