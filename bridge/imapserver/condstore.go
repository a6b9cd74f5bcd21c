package imapserver

import (
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// CONDSTORE and QRESYNC (RFC 7162). The view holds each message's
// mod-sequence beside its flags, so these answer from memory; only
// VANISHED asks the store, for its tombstones of expunged messages.

// HighestModSeq implements imapserver.SessionCondStore.
func (ss *session) HighestModSeq() uint64 {
	if ss.sel == nil {
		return 0
	}
	return ss.sel.view.highestModSeq()
}

func (v *mailboxView) highestModSeq() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.highestMod
}

// Resync implements imapserver.SessionQResync: after SELECT's data, the
// UIDs expunged since the client's mod-sequence (VANISHED (EARLIER)), then
// FETCH (UID FLAGS MODSEQ) for the messages changed since it. A client
// whose UIDVALIDITY is stale gets nothing: it must resynchronise in full.
func (ss *session) Resync(w *imapserver.FetchWriter, q *imap.SelectQResync) error {
	sel := ss.sel
	if sel == nil || q.UIDValidity != sel.view.uidValidityOf() {
		return nil
	}
	known := q.KnownUIDs
	if known == nil {
		known = imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}} // 1:*
	}
	if err := ss.writeVanished(w, known, q.ModSeq, q.SeqMatch); err != nil {
		return err
	}
	targets, err := sel.view.resolve(sel.tracker, sel.view.changedSince(q.ModSeq, nil))
	if err != nil {
		return err
	}
	ss.wire.hold()
	defer ss.wire.release()
	for _, t := range targets {
		flags, ok := sel.view.flagsOf(t.uid)
		if !ok {
			continue
		}
		rw := w.CreateMessage(t.seq)
		rw.WriteUID(t.uid)
		rw.WriteFlags(sel.tracker.withRecent(t.uid, flags))
		modSeq := sel.view.modSeqOf(t.uid)
		sel.tracker.noteFetchedModSeq(modSeq)
		rw.WriteModSeq(modSeq)
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// writeVanished writes VANISHED (EARLIER) for the UIDs of set expunged
// after mod-sequence since. When the store no longer remembers that far
// back (mailstore.MaxTombstones), it names every UID of set that is not in
// the mailbox now, as RFC 7162 §3.2.5.1 allows, except those below where
// the client's sequence match data still holds (§3.2.5.2): it knows those
// are gone.
func (ss *session) writeVanished(w *imapserver.FetchWriter, set imap.UIDSet, since uint64, match *imap.SelectSeqMatch) error {
	view := ss.sel.view
	gone, complete, err := ss.store().Vanished(ss.ctx, view.id, since)
	if err != nil {
		return storeError(err)
	}
	if !complete {
		return w.WriteVanished(above(view.missingFrom(set), view.matchedUpTo(ss.sel.tracker, match)))
	}
	set = view.upToUIDNext(set)
	var out imap.UIDSet
	for _, uid := range gone {
		if set.Contains(uid) {
			out.AddNum(uid)
		}
	}
	return w.WriteVanished(out)
}

// matchedUpTo checks QRESYNC's sequence match data as Dovecot does: it
// takes the first and last UID of each range of the client's known UIDs
// with the sequence number the client gives it, and returns the UID of the
// last of these pairs, in order, that the mailbox still has at that
// sequence number. No message at or below it vanished unknown to the
// client. It returns 0 without match data or when the first pair fails.
func (v *mailboxView) matchedUpTo(st *sessionTracker, match *imap.SelectSeqMatch) imap.UID {
	if match == nil {
		return 0
	}
	seqs := seqCursor{set: match.SeqNums}
	var upTo imap.UID
	for _, r := range match.UIDs {
		first, last := min(r.Start, r.Stop), max(r.Start, r.Stop)
		if !v.hasAt(st, seqs.next(0), first) {
			return upTo
		}
		upTo = first
		if last != first {
			if !v.hasAt(st, seqs.next(uint64(last-first)-1), last) {
				return upTo
			}
			upTo = last
		}
	}
	return upTo
}

// hasAt reports whether message seq, in st's numbering, has UID uid.
func (v *mailboxView) hasAt(st *sessionTracker, seq uint32, uid imap.UID) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if seq == 0 || seq > v.knownLocked(st) {
		return false
	}
	at := int(st.decodeSeqNum(seq)) - 1
	return at >= 0 && v.uids[at] == uid
}

// seqCursor walks a sequence set's numbers in order without expanding it:
// the client chooses its size.
type seqCursor struct {
	set  imap.SeqSet
	i    int    // current range
	done uint64 // numbers of set[i] already passed
}

// next skips skip numbers and returns the one after them, 0 past the end.
func (c *seqCursor) next(skip uint64) uint32 {
	for ; c.i < len(c.set); c.i, c.done = c.i+1, 0 {
		r := c.set[c.i]
		first, last := min(r.Start, r.Stop), max(r.Start, r.Stop)
		size := uint64(last-first) + 1
		if c.done+skip < size {
			c.done += skip + 1
			return first + uint32(c.done-1)
		}
		skip -= size - c.done
	}
	return 0
}

// above is set without the UIDs up to floor.
func above(set imap.UIDSet, floor imap.UID) imap.UIDSet {
	out := imap.UIDSet{}
	for _, r := range set {
		if r.Stop > floor {
			out = append(out, imap.UIDRange{Start: max(r.Start, floor+1), Stop: r.Stop})
		}
	}
	return out
}

// keepChangedSince drops the targets not changed after modSeq (FETCH
// CHANGEDSINCE).
func (v *mailboxView) keepChangedSince(targets []target, modSeq uint64) []target {
	return slices.DeleteFunc(targets, func(t target) bool { return v.modSeqOf(t.uid) <= modSeq })
}

// usesModSeq reports whether SEARCH criteria contain MODSEQ anywhere: the
// answer then carries the highest mod-sequence of the messages found.
func usesModSeq(c *imap.SearchCriteria) bool {
	if c.ModSeq != nil {
		return true
	}
	for i := range c.Not {
		if usesModSeq(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if usesModSeq(&c.Or[i][0]) || usesModSeq(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

// modSeqToUIDCriteria turns MODSEQ m (messages changed at or after m) into
// a UID set from the view: the store keeps mod-sequences but the view has
// them in memory.
func (ss *session) modSeqToUIDCriteria(c *imap.SearchCriteria) {
	if c.ModSeq == nil {
		return
	}
	since := c.ModSeq.ModSeq
	if since > 0 {
		since-- // changedSince is strictly after
	}
	c.UID = append(c.UID, ss.sel.view.changedSince(since, nil))
	c.ModSeq = nil
}

// highestModSeqOf is the highest mod-sequence among uids, for SEARCH.
func (v *mailboxView) highestModSeqOf(uids []imap.UID) uint64 {
	var highest uint64
	for _, uid := range uids {
		highest = max(highest, v.modSeqOf(uid))
	}
	return highest
}

// upToUIDNext resolves "*" in a UID set to the highest UID handed out,
// which VANISHED needs: expunged UIDs may lie past the last message.
func (v *mailboxView) upToUIDNext(set imap.UIDSet) imap.UIDSet {
	v.mu.Lock()
	last := uint32(v.uidNext - 1)
	v.mu.Unlock()
	out := make(imap.UIDSet, 0, len(set))
	for _, r := range set {
		start, stop := staticRange(uint32(r.Start), uint32(r.Stop), last)
		out = append(out, imap.UIDRange{Start: imap.UID(start), Stop: imap.UID(stop)})
	}
	return out
}

func (v *mailboxView) uidValidityOf() uint32 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.uidValidity
}

// modifiedError is STORE's answer when UNCHANGEDSINCE kept messages from
// changing: OK [MODIFIED set] (RFC 7162 §3.1.3), numbered as the command.
func modifiedError(targets []target, modified []imap.UID, byUID bool) error {
	var set imap.NumSet
	if byUID {
		var uids imap.UIDSet
		uids.AddNum(modified...)
		set = uids
	} else {
		var seqs imap.SeqSet
		for _, t := range targets {
			if _, ok := slices.BinarySearch(modified, t.uid); ok {
				seqs.AddNum(t.seq)
			}
		}
		set = seqs
	}
	return &imap.Error{Type: imap.StatusResponseTypeOK, Code: imap.ResponseCode("MODIFIED " + set.String()),
		Text: "Conditional STORE failed"}
}
