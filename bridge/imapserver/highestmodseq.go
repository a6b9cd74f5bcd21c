package imapserver

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// Once QRESYNC is enabled, a command (or IDLE) after which the mailbox's
// HIGHESTMODSEQ moved past what the client knows gets the new value
// (RFC 7162 §3.2.10), so that a client that saves it misses nothing on its
// next QRESYNC SELECT. The bridge follows Dovecot's rule (imap-sync.c): the
// value is sent when it is above the last one the session was synced to and
// above every MODSEQ the client was just sent in FETCH responses (which
// told it already). While expunges wait to be sent (FETCH, STORE, SEARCH)
// and the client was sent a MODSEQ beyond the last sync, it is told that
// sync's value again: a client that took the higher MODSEQ as its
// HIGHESTMODSEQ would otherwise never learn of the waiting expunges.

// pollSelected writes the selected mailbox's pending updates and then,
// with QRESYNC, its HIGHESTMODSEQ if the client must learn it.
func (ss *session) pollSelected(w *imapserver.UpdateWriter, allowExpunge bool) error {
	sel := ss.sel
	if !ss.enabled(imap.CapQResync) {
		return sel.tracker.poll(w, allowExpunge, false)
	}
	for {
		if err := sel.tracker.poll(w, allowExpunge, true); err != nil {
			return err
		}
		highest, delayed, settled := sel.view.settledModSeq(sel.tracker, allowExpunge)
		if settled {
			return sel.tracker.reportModSeq(w, highest, delayed)
		}
	}
}

// settledModSeq returns the mailbox's highest mod-sequence if st has no
// update left that a poll could write now, checked under the view's lock so
// that no change falls between the two, and whether expunges still wait.
func (v *mailboxView) settledModSeq(st *sessionTracker, allowExpunge bool) (highest uint64, delayed, settled bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case len(st.queue) == 0:
		return v.highestMod, false, true
	case !allowExpunge && st.queue[0].expunge != 0:
		return v.highestMod, true, true
	}
	return 0, false, false
}

// reportModSeq applies the rule above once the updates are written.
func (st *sessionTracker) reportModSeq(w *imapserver.UpdateWriter, highest uint64, delayed bool) error {
	st.mu.Lock()
	var send uint64
	switch {
	case delayed && st.fetchedModSeq > st.syncedModSeq:
		send = st.syncedModSeq
	case !delayed && highest > st.syncedModSeq && highest > st.fetchedModSeq:
		send = highest
	}
	if !delayed {
		st.syncedModSeq = highest
	}
	st.fetchedModSeq = 0
	st.mu.Unlock()
	if send == 0 {
		return nil
	}
	return w.WriteHighestModSeq(send)
}

// noteFetchedModSeq records a MODSEQ written in a FETCH response.
func (st *sessionTracker) noteFetchedModSeq(modSeq uint64) {
	st.mu.Lock()
	st.fetchedModSeq = max(st.fetchedModSeq, modSeq)
	st.mu.Unlock()
}
