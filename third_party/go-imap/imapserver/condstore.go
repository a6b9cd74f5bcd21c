package imapserver

import (
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// This file holds the server side of CONDSTORE and QRESYNC (RFC 7162): the
// parsers of the command parameters the other handlers call, and the
// responses only these extensions send.

// SessionQResync is an IMAP session which supports QRESYNC.
type SessionQResync interface {
	Session

	// Resync reports, after the untagged responses of a SELECT or EXAMINE
	// with the QRESYNC parameter, what changed since the client's state:
	// the UIDs expunged since (FetchWriter.WriteVanished) and the messages
	// whose flags changed since (FETCH with UID, FLAGS and MODSEQ).
	// It is only called when the mailbox's UIDVALIDITY is the client's;
	// checking that is the session's job, as SELECT's data is its own.
	Resync(w *FetchWriter, qresync *imap.SelectQResync) error
}

// SessionCondStore is an IMAP session which supports CONDSTORE and can
// tell its selected mailbox's highest mod-sequence, which the server sends
// when a command enables CONDSTORE while a mailbox is selected.
type SessionCondStore interface {
	Session

	// Selected state
	HighestModSeq() uint64
}

// enableCondStore records that the client used a command that enables
// CONDSTORE (RFC 7162 section 3.1): from then on FETCH responses carry
// MODSEQ and SELECT reports HIGHESTMODSEQ. Enabled in the selected state,
// it reports the mailbox's HIGHESTMODSEQ at once, as section 3.1 asks.
func (c *Conn) enableCondStore() error {
	if !c.server.options.caps().Has(imap.CapCondStore) {
		return newClientBugError("CONDSTORE is not supported")
	}
	c.mutex.Lock()
	_, was := c.enabled[imap.CapCondStore]
	c.enabled[imap.CapCondStore] = struct{}{}
	c.mutex.Unlock()
	sess, ok := c.session.(SessionCondStore)
	if was || !ok || c.state != imap.ConnStateSelected {
		return nil
	}
	if modSeq := sess.HighestModSeq(); modSeq != 0 {
		return c.writeHighestModSeq(modSeq)
	}
	return nil
}

func (c *Conn) isEnabled(cap imap.Cap) bool {
	c.mutex.Lock()
	defer c.mutex.Unlock()
	return c.enabled.Has(cap)
}

// readSelectParams reads SELECT's optional parameter list:
// "(CONDSTORE)" or "(QRESYNC (uidvalidity modseq [known-uids [seq-match]]))".
func (c *Conn) readSelectParams(dec *imapwire.Decoder, options *imap.SelectOptions) error {
	return dec.ExpectList(func() error {
		var name string
		if !dec.ExpectAtom(&name) {
			return dec.Err()
		}
		switch strings.ToUpper(name) {
		case "CONDSTORE":
			options.CondStore = true
			return c.enableCondStore()
		case "QRESYNC":
			if !c.isEnabled(imap.CapQResync) {
				return newClientBugError("QRESYNC must be enabled first")
			}
			options.QResync = new(imap.SelectQResync)
			if !dec.ExpectSP() {
				return dec.Err()
			}
			return readQResyncParams(dec, options.QResync)
		default:
			return newClientBugError("Unknown SELECT parameter")
		}
	})
}

func readQResyncParams(dec *imapwire.Decoder, q *imap.SelectQResync) error {
	if !dec.ExpectSpecial('(') || !dec.ExpectNumber(&q.UIDValidity) || !dec.ExpectSP() || !dec.ExpectModSeq(&q.ModSeq) {
		return dec.Err()
	}
	if dec.SP() {
		if dec.Special('(') { // seq-match without known-uids
			return newClientBugError("QRESYNC sequence match data needs known UIDs")
		}
		if !dec.ExpectUIDSet(&q.KnownUIDs) {
			return dec.Err()
		}
		if dec.SP() {
			var seqNums imap.NumSet
			q.SeqMatch = new(imap.SelectSeqMatch)
			if !dec.ExpectSpecial('(') || !dec.ExpectNumSet(imapwire.NumKindSeq, &seqNums) || !dec.ExpectSP() ||
				!dec.ExpectUIDSet(&q.SeqMatch.UIDs) || !dec.ExpectSpecial(')') {
				return dec.Err()
			}
			q.SeqMatch.SeqNums = seqNums.(imap.SeqSet)
			if !sameSize(q.SeqMatch.SeqNums, q.SeqMatch.UIDs) {
				return newClientBugError("QRESYNC sequence match sets differ in size")
			}
		}
	}
	if !dec.ExpectSpecial(')') {
		return dec.Err()
	}
	if q.UIDValidity == 0 || q.ModSeq == 0 {
		return newClientBugError("QRESYNC needs a non-zero UIDVALIDITY and mod-sequence")
	}
	return nil
}

// sameSize reports whether the two sets of QRESYNC's sequence match data
// have as many numbers each, as RFC 7162 section 3.2.5.2 requires, without
// "*". It counts ranges, not numbers: the sets are the client's to size.
func sameSize(seqs imap.SeqSet, uids imap.UIDSet) bool {
	var nSeqs, nUIDs uint64
	for _, r := range seqs {
		if r.Start == 0 || r.Stop == 0 {
			return false
		}
		nSeqs += rangeSize(r.Start, r.Stop)
	}
	for _, r := range uids {
		if r.Start == 0 || r.Stop == 0 {
			return false
		}
		nUIDs += rangeSize(uint32(r.Start), uint32(r.Stop))
	}
	return nSeqs == nUIDs
}

func rangeSize(start, stop uint32) uint64 {
	if start > stop {
		start, stop = stop, start
	}
	return uint64(stop-start) + 1
}

// readFetchModifiers reads FETCH's optional modifier list:
// "(CHANGEDSINCE modseq [VANISHED])".
func (c *Conn) readFetchModifiers(dec *imapwire.Decoder, numKind NumKind, options *imap.FetchOptions) error {
	err := dec.ExpectList(func() error {
		var name string
		if !dec.ExpectAtom(&name) {
			return dec.Err()
		}
		switch strings.ToUpper(name) {
		case "CHANGEDSINCE":
			if !dec.ExpectSP() || !dec.ExpectModSeq(&options.ChangedSince) {
				return dec.Err()
			}
			options.ModSeq = true
			return c.enableCondStore()
		case "VANISHED":
			options.Vanished = true
			return nil
		default:
			return newClientBugError("Unknown FETCH modifier")
		}
	})
	if err != nil {
		return err
	}
	if options.Vanished && (numKind != NumKindUID || options.ChangedSince == 0 || !c.isEnabled(imap.CapQResync)) {
		return newClientBugError("VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC enabled")
	}
	return nil
}

// readStoreModifiers reads STORE's optional modifier list:
// "(UNCHANGEDSINCE modseq)", followed by SP.
func (c *Conn) readStoreModifiers(dec *imapwire.Decoder, options *imap.StoreOptions) error {
	isList, err := dec.List(func() error {
		var name string
		if !dec.ExpectAtom(&name) {
			return dec.Err()
		}
		if strings.ToUpper(name) != "UNCHANGEDSINCE" {
			return newClientBugError("Unknown STORE modifier")
		}
		var modSeq uint64
		if !dec.ExpectSP() || !dec.ExpectModSeq(&modSeq) {
			return dec.Err()
		}
		options.UnchangedSince, options.HasUnchangedSince = modSeq, true
		return c.enableCondStore()
	})
	if err != nil || !isList {
		return err
	}
	if !dec.ExpectSP() {
		return dec.Err()
	}
	return nil
}

// readSearchModSeq reads the arguments of the MODSEQ search key:
// [entry-name SP entry-type-req SP] mod-sequence-valzer.
func readSearchModSeq(dec *imapwire.Decoder) (*imap.SearchCriteriaModSeq, error) {
	var m imap.SearchCriteriaModSeq
	if !dec.ExpectSP() {
		return nil, dec.Err()
	}
	if dec.Quoted(&m.MetadataName) {
		var typ string
		if !dec.ExpectSP() || !dec.ExpectAtom(&typ) || !dec.ExpectSP() {
			return nil, dec.Err()
		}
		m.MetadataType = imap.SearchCriteriaMetadataType(strings.ToLower(typ))
		switch m.MetadataType {
		case imap.SearchCriteriaMetadataAll, imap.SearchCriteriaMetadataPrivate, imap.SearchCriteriaMetadataShared:
		default:
			return nil, newClientBugError("Unknown MODSEQ entry type")
		}
	}
	if !dec.ExpectModSeq(&m.ModSeq) {
		return nil, dec.Err()
	}
	return &m, nil
}

func (c *Conn) writeHighestModSeq(modSeq uint64) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("OK").SP()
	enc.Special('[').Atom("HIGHESTMODSEQ").SP().ModSeq(modSeq).Special(']')
	enc.SP().Text("Highest")
	return enc.CRLF()
}

func (c *Conn) writeVanished(uids imap.UIDSet, earlier bool) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("VANISHED").SP()
	if earlier {
		enc.Atom("(EARLIER)").SP()
	}
	enc.NumSet(uids)
	return enc.CRLF()
}

// WriteVanished writes a VANISHED (EARLIER) response: messages expunged
// before this command, reported by UID FETCH (CHANGEDSINCE m VANISHED) and
// SELECT (QRESYNC ...). An empty set writes nothing.
func (w *FetchWriter) WriteVanished(uids imap.UIDSet) error {
	if len(uids) == 0 {
		return nil
	}
	return w.conn.writeVanished(uids, true)
}

// WriteModSeq writes the message's mod-sequence (MODSEQ).
func (w *FetchResponseWriter) WriteModSeq(modSeq uint64) {
	w.writeItemSep()
	w.enc.Atom("MODSEQ").SP().Special('(').ModSeq(modSeq).Special(')')
}

// WriteVanished writes a VANISHED response, which replaces EXPUNGE once the
// client has enabled QRESYNC.
func (w *UpdateWriter) WriteVanished(uids imap.UIDSet) error {
	if !w.allowExpunge {
		return fmt.Errorf("imapserver: VANISHED updates are not allowed in this context")
	}
	return w.conn.writeVanished(uids, false)
}

// WriteMessageFlagsModSeq writes a FETCH response with FLAGS and, if the
// client has enabled CONDSTORE, MODSEQ.
func (w *UpdateWriter) WriteMessageFlagsModSeq(seqNum uint32, uid imap.UID, flags []imap.Flag, modSeq uint64) error {
	fetchWriter := &FetchWriter{conn: w.conn}
	respWriter := fetchWriter.CreateMessage(seqNum)
	if uid != 0 {
		respWriter.WriteUID(uid)
	}
	respWriter.WriteFlags(flags)
	if modSeq != 0 && w.conn.isEnabled(imap.CapCondStore) {
		respWriter.WriteModSeq(modSeq)
	}
	return respWriter.Close()
}

// WriteMessageModSeq writes a FETCH response with only MODSEQ (and UID if
// not zero): the answer to STORE .SILENT once CONDSTORE is enabled, when
// the session writes it after the command's unsolicited updates.
func (w *UpdateWriter) WriteMessageModSeq(seqNum uint32, uid imap.UID, modSeq uint64) error {
	respWriter := (&FetchWriter{conn: w.conn}).CreateMessage(seqNum)
	if uid != 0 {
		respWriter.WriteUID(uid)
	}
	respWriter.WriteModSeq(modSeq)
	return respWriter.Close()
}
