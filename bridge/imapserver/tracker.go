package imapserver

import (
	"fmt"
	"slices"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// flagRecent is IMAP4rev1's \Recent, which go-imap keeps internal.
const flagRecent imap.Flag = `\Recent`

// mailboxTracker queues each selecting session's unsolicited EXISTS,
// EXPUNGE, FLAGS and FETCH responses. It follows go-imap's MailboxTracker
// but its sessions also count the messages their client was told about:
// go-imap's tracker cannot say how many messages a client believes exist
// once the last ones were expunged elsewhere, and RFC 3501 §7.4.1 lets the
// client address them until it is sent the EXPUNGE.
type mailboxTracker struct {
	mu          sync.Mutex
	numMessages uint32
	sessions    map[*sessionTracker]struct{}
}

func newMailboxTracker(numMessages uint32) *mailboxTracker {
	return &mailboxTracker{numMessages: numMessages, sessions: make(map[*sessionTracker]struct{})}
}

// trackerUpdate is one queued response; exactly one field is set.
type trackerUpdate struct {
	expunge      uint32
	expungeUID   imap.UID // with expunge, for VANISHED once QRESYNC is enabled
	numMessages  uint32
	recent       bool // numRecent is set, possibly to 0
	numRecent    uint32
	mailboxFlags []imap.Flag
	fetch        *trackerFetch
}

type trackerFetch struct {
	seqNum uint32
	uid    imap.UID
	flags  []imap.Flag
	modSeq uint64 // written once CONDSTORE is enabled
	// modSeqOnly is STORE .SILENT's own answer under CONDSTORE: MODSEQ
	// without FLAGS.
	modSeqOnly bool
}

// newSession registers a session that was just told the mailbox has
// t.numMessages messages, of which it holds \Recent for recent, and
// HIGHESTMODSEQ highestModSeq; the caller
// must close it.
func (t *mailboxTracker) newSession(readOnly bool, recent []imap.UID, highestModSeq uint64) *sessionTracker {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := &sessionTracker{mailbox: t, known: t.numMessages, readOnly: readOnly, recent: recent,
		toldRecent: uint32(len(recent)), syncedModSeq: highestModSeq}
	t.sessions[st] = struct{}{}
	return st
}

func (t *mailboxTracker) queue(u trackerUpdate, source *sessionTracker) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u.expunge > t.numMessages {
		panic(fmt.Errorf("imapserver: expunge of message %d of %d", u.expunge, t.numMessages))
	}
	for st := range t.sessions {
		if st != source {
			st.push(st.ownCopyLocked(u))
		}
	}
	switch {
	case u.expunge != 0:
		t.numMessages--
	case u.numMessages != 0:
		t.numMessages = u.numMessages
	}
}

func (t *mailboxTracker) queueExpunge(seqNum uint32, uid imap.UID) {
	t.queue(trackerUpdate{expunge: seqNum, expungeUID: uid}, nil)
}

func (t *mailboxTracker) queueNumMessages(n uint32) { t.queue(trackerUpdate{numMessages: n}, nil) }

func (t *mailboxTracker) queueMailboxFlags(flags []imap.Flag) {
	t.queue(trackerUpdate{mailboxFlags: flags}, nil)
}

// queueMessageFlags queues a FETCH FLAGS for every session but source,
// which answers its own STORE.
func (t *mailboxTracker) queueMessageFlags(seqNum uint32, uid imap.UID, flags []imap.Flag, modSeq uint64, source *sessionTracker) {
	t.queue(trackerUpdate{fetch: &trackerFetch{seqNum: seqNum, uid: uid, flags: flags, modSeq: modSeq}}, source)
}

// sessionTracker is one session's queue and its client's view of the
// message numbers.
type sessionTracker struct {
	mailbox *mailboxTracker

	mu      sync.Mutex
	queue   []trackerUpdate
	known   uint32 // messages the client was told about
	updates chan struct{}

	// recent are the messages this session holds \Recent for (RFC 3501
	// §2.3.2: one session per message), ascending; guarded by mailbox.mu.
	recent   []imap.UID
	readOnly bool
	// toldRecent is the RECENT count the client was last told, guarded by
	// mu: as Dovecot, the bridge repeats no unchanged count (a MOVE into
	// the selected mailbox trades one \Recent message for another).
	toldRecent uint32

	// For HIGHESTMODSEQ under QRESYNC (see pollSelected), guarded by mu:
	// the mod-sequence the client was last synced to, and the highest
	// MODSEQ it was sent in FETCH responses since.
	syncedModSeq, fetchedModSeq uint64
}

// claimRecent gives newly appended messages \Recent in one read-write
// session, the one that added them if it has the mailbox selected, and
// tells it its new count after the EXISTS. It reports false, leaving them
// to the next SELECT, when no session can take them.
func (t *mailboxTracker) claimRecent(uids []imap.UID, origin *sessionTracker) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	claimant := origin
	if _, ok := t.sessions[origin]; !ok || origin.readOnly {
		claimant = nil
		for st := range t.sessions {
			if !st.readOnly {
				claimant = st
				break
			}
		}
	}
	if claimant == nil {
		return false
	}
	claimant.recent = append(claimant.recent, uids...)
	claimant.push(trackerUpdate{recent: true, numRecent: uint32(len(claimant.recent))})
	return true
}

// forgetRecent drops expunged messages from every session's \Recent set
// and, as Dovecot does, tells a session whose count fell its new count
// after the EXPUNGEs.
func (t *mailboxTracker) forgetRecent(uids []imap.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for st := range t.sessions {
		n := len(st.recent)
		st.recent = slices.DeleteFunc(st.recent, func(u imap.UID) bool {
			_, gone := slices.BinarySearch(uids, u)
			return gone
		})
		if len(st.recent) != n {
			st.push(trackerUpdate{recent: true, numRecent: uint32(len(st.recent))})
		}
	}
}

// heldRecent is how many messages sessions hold \Recent for.
func (t *mailboxTracker) heldRecent() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for st := range t.sessions {
		n += len(st.recent)
	}
	return uint32(n)
}

// queueAfterFlags queues a command's own FETCH FLAGS responses behind a
// pending FLAGS response, if there is one and no EXPUNGE is pending (the
// poll after STORE stops at an EXPUNGE), so that the client learns of a
// new keyword before it is used, as Dovecot orders them. It reports
// whether it queued them; if not, the caller writes them itself.
func (st *sessionTracker) queueAfterFlags(fetches []trackerFetch) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	pendingFlags := false
	for _, u := range st.queue {
		if u.expunge != 0 {
			return false
		}
		pendingFlags = pendingFlags || u.mailboxFlags != nil
	}
	if !pendingFlags {
		return false
	}
	for _, f := range fetches {
		st.queue = append(st.queue, trackerUpdate{fetch: &f})
	}
	return true
}

// recentSet is the session's \Recent messages as a UID set, for SEARCH.
func (st *sessionTracker) recentSet() imap.UIDSet {
	st.mailbox.mu.Lock()
	defer st.mailbox.mu.Unlock()
	set := imap.UIDSet{}
	for _, uid := range st.recent {
		set.AddNum(uid)
	}
	return set
}

// withRecent adds \Recent to flags if this session holds it for uid.
func (st *sessionTracker) withRecent(uid imap.UID, flags []imap.Flag) []imap.Flag {
	st.mailbox.mu.Lock()
	defer st.mailbox.mu.Unlock()
	return st.withRecentLocked(uid, flags)
}

func (st *sessionTracker) withRecentLocked(uid imap.UID, flags []imap.Flag) []imap.Flag {
	if _, ok := slices.BinarySearch(st.recent, uid); !ok {
		return flags
	}
	return append(slices.Clip(flags), flagRecent)
}

// ownCopyLocked gives a FETCH FLAGS update this session's \Recent as it
// is now, when the change happened: the message may be expunged (and
// forgotten) before the update is written.
func (st *sessionTracker) ownCopyLocked(u trackerUpdate) trackerUpdate {
	if u.fetch != nil {
		f := *u.fetch
		f.flags = st.withRecentLocked(f.uid, f.flags)
		u.fetch = &f
	}
	return u
}

func (st *sessionTracker) close() {
	st.mailbox.mu.Lock()
	delete(st.mailbox.sessions, st)
	st.mailbox.mu.Unlock()
}

func (st *sessionTracker) push(u trackerUpdate) {
	st.mu.Lock()
	st.queue = append(st.queue, u)
	updates := st.updates
	st.mu.Unlock()
	if updates != nil {
		select {
		case updates <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// poll writes the pending updates; without allowExpunge it stops before
// the first EXPUNGE (RFC 3501 §7.4.1: not during FETCH, STORE or SEARCH).
// With vanished (QRESYNC enabled) a run of expunges is one VANISHED.
func (st *sessionTracker) poll(w *imapserver.UpdateWriter, allowExpunge, vanished bool) error {
	for {
		st.mu.Lock()
		if len(st.queue) == 0 {
			st.mu.Unlock()
			return nil
		}
		if !allowExpunge && st.queue[0].expunge != 0 {
			st.mu.Unlock()
			return st.announceBehindExpunges(w)
		}
		n, write := st.nextBatchLocked(vanished)
		st.mu.Unlock()
		if err := write(w); err != nil {
			return err
		}
		// Dequeue only once written, so the number mapping keeps the
		// updates until the client has them.
		st.mu.Lock()
		for _, u := range st.queue[:n] {
			switch {
			case u.expunge != 0:
				st.known--
			case u.numMessages != 0:
				st.known = u.numMessages
			}
		}
		st.queue = st.queue[n:]
		st.mu.Unlock()
	}
}

// nextBatchLocked returns how many queued updates go out together and the
// function that writes them: a run of expunges is one VANISHED once QRESYNC
// is enabled, and a run of EXISTS and RECENT is the last of each, as Dovecot
// reports a COPY of many messages (or updates queued while the client was
// busy) in one EXISTS and one RECENT; other updates go one by one.
func (st *sessionTracker) nextBatchLocked(vanished bool) (int, func(*imapserver.UpdateWriter) error) {
	u := st.queue[0]
	n := 1
	switch {
	case u.expunge != 0 && vanished:
		var uids imap.UIDSet
		for n = 0; n < len(st.queue) && st.queue[n].expunge != 0; n++ {
			uids.AddNum(st.queue[n].expungeUID)
		}
		return n, func(w *imapserver.UpdateWriter) error { return w.WriteVanished(uids) }
	case u.numMessages != 0 || u.recent:
		var exists, recent *trackerUpdate
		for n = 0; n < len(st.queue); n++ {
			switch next := &st.queue[n]; {
			case next.numMessages != 0:
				exists = next
			case next.recent:
				recent = next
			default:
				return n, st.writeCountsLocked(exists, recent)
			}
		}
		return n, st.writeCountsLocked(exists, recent)
	}
	return n, func(w *imapserver.UpdateWriter) error { return st.writeUpdate(w, u) }
}

// writeCountsLocked writes EXISTS then RECENT, those of the two that are
// set, RECENT only if the count changed.
func (st *sessionTracker) writeCountsLocked(exists, recent *trackerUpdate) func(*imapserver.UpdateWriter) error {
	var numMessages, numRecent uint32
	if exists != nil {
		numMessages = exists.numMessages
	}
	if recent != nil && recent.numRecent == st.toldRecent {
		recent = nil
	}
	if recent != nil {
		numRecent = recent.numRecent
		st.toldRecent = numRecent
	}
	return func(w *imapserver.UpdateWriter) error {
		if exists != nil {
			if err := w.WriteNumMessages(numMessages); err != nil {
				return err
			}
		}
		if recent != nil {
			return w.WriteNumRecent(numRecent)
		}
		return nil
	}
}

// announceBehindExpunges writes, during FETCH, STORE or SEARCH, the EXISTS
// queued behind an EXPUNGE the client may not be sent yet, counting the
// expunged messages it still sees, as Dovecot does: the client learns of
// new messages and its numbers stay put. The EXISTS leave the queue, so
// the number mapping sees only the EXPUNGEs, which still come later.
func (st *sessionTracker) announceBehindExpunges(w *imapserver.UpdateWriter) error {
	st.mu.Lock()
	exists, expunges := uint32(0), uint32(0)
	keep := make([]trackerUpdate, 0, len(st.queue))
	for _, u := range st.queue {
		switch {
		case u.numMessages != 0:
			exists = u.numMessages + expunges
			continue
		case u.expunge != 0:
			expunges++
		}
		keep = append(keep, u)
	}
	if exists <= st.known {
		st.mu.Unlock()
		return nil
	}
	st.queue, st.known = keep, exists
	st.mu.Unlock()
	return w.WriteNumMessages(exists)
}

func (st *sessionTracker) writeUpdate(w *imapserver.UpdateWriter, u trackerUpdate) error {
	switch {
	case u.expunge != 0:
		return w.WriteExpunge(u.expunge)
	case u.numMessages != 0:
		return w.WriteNumMessages(u.numMessages)
	case u.mailboxFlags != nil:
		return st.writeMailboxFlags(w, u.mailboxFlags)
	case u.fetch.modSeqOnly:
		st.noteFetchedModSeq(u.fetch.modSeq)
		return w.WriteMessageModSeq(u.fetch.seqNum, u.fetch.uid, u.fetch.modSeq)
	default:
		st.noteFetchedModSeq(u.fetch.modSeq) // written once CONDSTORE is enabled
		return w.WriteMessageFlagsModSeq(u.fetch.seqNum, u.fetch.uid, u.fetch.flags, u.fetch.modSeq)
	}
}

// writeMailboxFlags announces a new keyword: FLAGS, then, as Dovecot does,
// PERMANENTFLAGS with the keyword, so the client knows it may set it too;
// a read-only session is told again that it can set nothing.
func (st *sessionTracker) writeMailboxFlags(w *imapserver.UpdateWriter, flags []imap.Flag) error {
	if err := w.WriteMailboxFlags(flags); err != nil {
		return err
	}
	if st.readOnly {
		return w.WritePermanentFlags([]imap.Flag{})
	}
	return w.WritePermanentFlags(append(slices.Clone(flags), imap.FlagWildcard))
}

// idle writes updates with poll as they are queued until stop is closed.
func (st *sessionTracker) idle(stop <-chan struct{}, poll func() error) error {
	updates := make(chan struct{}, 1)
	st.mu.Lock()
	st.updates = updates
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		st.updates = nil
		st.mu.Unlock()
	}()
	for {
		if err := poll(); err != nil {
			return err
		}
		select {
		case <-updates:
		case <-stop:
			return nil
		}
	}
}

// knownMessages is how many messages the client believes the mailbox has.
func (st *sessionTracker) knownMessages() uint32 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.known
}

// decodeSeqNum maps a client's message number to the server's, or 0 if the
// message is expunged (EXPUNGE not sent yet) or unknown to the client.
func (st *sessionTracker) decodeSeqNum(seqNum uint32) uint32 {
	st.mailbox.mu.Lock() // the mailbox before the session, as in queue
	defer st.mailbox.mu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	if seqNum == 0 || seqNum > st.known {
		return 0
	}
	for _, u := range st.queue {
		switch {
		case u.expunge == 0:
		case seqNum == u.expunge:
			return 0
		case seqNum > u.expunge:
			seqNum--
		}
	}
	if seqNum > st.mailbox.numMessages {
		return 0
	}
	return seqNum
}

// encodeSeqNum maps a server message number to the client's, or 0 if the
// client has not been told about the message yet. Undoing the pending
// expunges puts a message appended since the client's last EXISTS past
// every message it knows, so the known count is the only test needed.
func (st *sessionTracker) encodeSeqNum(seqNum uint32) uint32 {
	st.mailbox.mu.Lock()
	defer st.mailbox.mu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	if seqNum == 0 || seqNum > st.mailbox.numMessages {
		return 0
	}
	for i := len(st.queue) - 1; i >= 0; i-- {
		if e := st.queue[i].expunge; e != 0 && seqNum >= e {
			seqNum++
		}
	}
	if seqNum > st.known {
		return 0
	}
	return seqNum
}
