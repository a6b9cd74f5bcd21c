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
	if err := ss.writeVanished(w, known, q.ModSeq); err != nil {
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
		rw.WriteModSeq(sel.view.modSeqOf(t.uid))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// writeVanished writes VANISHED (EARLIER) for the UIDs of set expunged
// after mod-sequence since. When the store no longer remembers that far
// back (mailstore.MaxTombstones), it names every UID of set that is not in
// the mailbox now, as RFC 7162 §3.2.5.1 allows.
func (ss *session) writeVanished(w *imapserver.FetchWriter, set imap.UIDSet, since uint64) error {
	view := ss.sel.view
	gone, complete, err := ss.store().Vanished(ss.ctx, view.id, since)
	if err != nil {
		return storeError(err)
	}
	if !complete {
		return w.WriteVanished(view.missingFrom(set))
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
