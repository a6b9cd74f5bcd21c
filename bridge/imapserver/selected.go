package imapserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/asmtp/asmtp/mailstore"
)

var errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Mailbox is read-only (EXAMINE)"}

var errSelectedDeleted = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent,
	Text: "Selected mailbox was deleted, select another"}

// selected is the session's selection, or NO for every command on it once
// another session deleted the mailbox (as Dovecot refuses to go on with a
// mailbox deleted under it). The store refuses the dead mailbox's id too,
// and never reuses it, so this is the polite answer, not the protection.
func (ss *session) selected() (*selection, error) {
	if ss.sel.view.isDeleted() {
		return nil, errSelectedDeleted
	}
	return ss.sel, nil
}

func uidsOf(targets []target) []imap.UID {
	uids := make([]imap.UID, len(targets))
	for i, t := range targets {
		uids[i] = t.uid
	}
	return uids
}

// Fetch answers FETCH and UID FETCH: flags from the shared view, INTERNALDATE,
// size, envelope and body structure from the store's cache, and body
// sections from the stored message. Fetching a body section without PEEK
// sets \Seen first and reports the new flags.
func (ss *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	sel, err := ss.selected()
	if err != nil {
		return err
	}
	targets, err := sel.view.resolve(sel.tracker, numSet)
	if err != nil {
		return err
	}
	if options.Vanished { // UID FETCH ... (CHANGEDSINCE m VANISHED), QRESYNC
		if err := ss.writeVanished(w, numSet.(imap.UIDSet), options.ChangedSince, nil); err != nil {
			return err
		}
	}
	if options.ChangedSince != 0 {
		targets = sel.view.keepChangedSince(targets, options.ChangedSince)
	}
	if ss.enabled(imap.CapQResync) {
		options.UID = true // in every FETCH response (RFC 7162 §3.2.4)
	}
	if len(targets) == 0 {
		return nil
	}
	var seen map[imap.UID]bool // messages this FETCH marks \Seen
	if !sel.readOnly && setsSeen(options) {
		var unseen []imap.UID
		for _, t := range targets {
			if flags, ok := sel.view.flagsOf(t.uid); ok && !hasFlag(flags, imap.FlagSeen) {
				unseen = append(unseen, t.uid)
			}
		}
		if len(unseen) > 0 {
			ctx := mailstore.WithOrigin(ss.ctx, sel.tracker)
			if err := ss.store().StoreFlags(ctx, sel.view.id, unseen, imap.StoreFlagsAdd, []string{string(imap.FlagSeen)}); err != nil {
				return storeError(err)
			}
			seen = make(map[imap.UID]bool, len(unseen))
			for _, uid := range unseen {
				seen[uid] = true
			}
		}
	}

	ss.wire.hold()
	defer ss.wire.release()
	write := func(t target, meta *mailstore.MessageMeta) error {
		return ss.writeFetch(w, t, meta, options, seen[t.uid])
	}
	needMeta := options.InternalDate || options.RFC822Size || options.Envelope || options.BodyStructure != nil
	if !needMeta {
		for _, t := range targets {
			if err := write(t, nil); err != nil {
				return err
			}
		}
		return nil
	}
	if len(targets) >= minPipelinedFetch {
		return ss.fetchPipelined(targets, options, write)
	}
	i := 0
	return storeError(ss.store().FetchItems(ss.ctx, sel.view.id, uidsOf(targets), metaItems(options), func(m mailstore.MessageMeta) error {
		for i < len(targets) && targets[i].uid != m.UID {
			i++
		}
		if i == len(targets) {
			return fmt.Errorf("store returned UID %d, not asked for", m.UID)
		}
		return write(targets[i], &m)
	}))
}

// metaItems are the cached columns a FETCH needs from the store: not the
// flags, which come from the view.
func metaItems(options *imap.FetchOptions) mailstore.MetaItems {
	return mailstore.MetaItems{Envelope: options.Envelope, Structure: options.BodyStructure != nil}
}

func setsSeen(options *imap.FetchOptions) bool {
	for _, bs := range options.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range options.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

func hasFlag(flags []imap.Flag, flag imap.Flag) bool {
	for _, f := range flags {
		if f == flag {
			return true
		}
	}
	return false
}

func (ss *session) writeFetch(w *imapserver.FetchWriter, t target, meta *mailstore.MessageMeta, options *imap.FetchOptions, seenNow bool) error {
	flags, ok := ss.sel.view.flagsOf(t.uid)
	if !ok {
		return nil // expunged meanwhile
	}
	var sections *fetchedSections
	if len(options.BodySection) > 0 || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0 {
		var err error
		sections, err = ss.fetchSections(t.uid, options)
		if errors.Is(err, mailstore.ErrNoMessage) {
			return nil // expunged meanwhile
		}
		if err != nil {
			return storeError(err)
		}
		defer sections.Close()
	}
	rw := w.CreateMessage(t.seq)
	if options.UID {
		rw.WriteUID(t.uid)
	}
	if options.Flags || seenNow {
		rw.WriteFlags(ss.sel.tracker.withRecent(t.uid, flags))
	}
	if options.ModSeq || seenNow && ss.enabled(imap.CapCondStore) {
		modSeq := ss.sel.view.modSeqOf(t.uid)
		ss.sel.tracker.noteFetchedModSeq(modSeq)
		rw.WriteModSeq(modSeq)
	}
	if meta != nil {
		if options.InternalDate {
			rw.WriteInternalDate(meta.InternalDate)
		}
		if options.RFC822Size {
			rw.WriteRFC822Size(meta.Size)
		}
		if options.Envelope {
			env, err := meta.Envelope()
			if err != nil {
				return err
			}
			rw.WriteEnvelope(env)
		}
		if options.BodyStructure != nil {
			bs, err := meta.BodyStructure()
			if err != nil {
				return err
			}
			rw.WriteBodyStructure(bs)
		}
	}
	for i, bs := range options.BodySection {
		r, size := sections.section(i)
		if err := writeLiteral(rw.WriteBodySection(bs, size), r); err != nil {
			return err
		}
	}
	for i, bs := range options.BinarySection {
		r, size := sections.section(len(options.BodySection) + i)
		if err := writeLiteral(rw.WriteBinarySection(bs, size), r); err != nil {
			return err
		}
	}
	for i, bss := range options.BinarySectionSize {
		rw.WriteBinarySectionSize(bss, sections.binarySizes[i])
	}
	return rw.Close()
}

func writeLiteral(wc io.WriteCloser, r io.Reader) error {
	_, err := io.Copy(wc, r)
	return errors.Join(err, wc.Close())
}

// fetchedSections are the body sections one FETCH asks of one message, cut
// from it while the store's memory budget is held (WithRaw) and then kept
// in an unlinked temporary file when large, so that writing them to the
// client, which may read slowly, holds neither memory nor budget.
type fetchedSections struct {
	file        *os.File // nil when the sections are small enough for mem
	mem         []byte
	spans       [][2]int64 // offset and length of each section: body, then binary
	binarySizes []uint32
}

// maxFetchInMemory is the most section bytes a FETCH of one message keeps
// in memory while writing them.
const maxFetchInMemory = 1 << 20

func (ss *session) fetchSections(uid imap.UID, options *imap.FetchOptions) (*fetchedSections, error) {
	fs := &fetchedSections{}
	err := ss.store().WithRaw(ss.ctx, ss.sel.view.id, uid, func(raw []byte) error {
		var parts [][]byte
		for _, bs := range options.BodySection {
			parts = append(parts, bodySection(raw, bs))
		}
		for _, bs := range options.BinarySection {
			var data []byte
			if !beyondDepthCap(bs.Part) {
				data = imapserver.ExtractBinarySection(bytes.NewReader(raw), bs)
			}
			parts = append(parts, data)
		}
		for _, bss := range options.BinarySectionSize {
			var size uint32
			if !beyondDepthCap(bss.Part) {
				size = imapserver.ExtractBinarySectionSize(bytes.NewReader(raw), bss)
			}
			fs.binarySizes = append(fs.binarySizes, size)
		}
		return fs.keep(parts, ss.s.opts.SpoolDir)
	})
	if err != nil {
		fs.Close()
		return nil, err
	}
	return fs, nil
}

// keep copies parts out of the message, to memory or to a file in dir.
func (fs *fetchedSections) keep(parts [][]byte, dir string) error {
	var total int64
	for _, p := range parts {
		fs.spans = append(fs.spans, [2]int64{total, int64(len(p))})
		total += int64(len(p))
	}
	if total <= maxFetchInMemory {
		fs.mem = make([]byte, 0, total)
		for _, p := range parts {
			fs.mem = append(fs.mem, p...)
		}
		return nil
	}
	f, err := os.CreateTemp(dir, "imap-fetch-*.tmp")
	if err != nil {
		return fmt.Errorf("spool FETCH answer: %w", err)
	}
	os.Remove(f.Name()) // gone with the last descriptor, also after a crash
	fs.file = f
	for _, p := range parts {
		if _, err := f.Write(p); err != nil {
			return fmt.Errorf("spool FETCH answer: %w", err)
		}
	}
	return nil
}

// section returns the i-th section and its length.
func (fs *fetchedSections) section(i int) (io.Reader, int64) {
	off, n := fs.spans[i][0], fs.spans[i][1]
	if fs.file != nil {
		return io.NewSectionReader(fs.file, off, n), n
	}
	return bytes.NewReader(fs.mem[off : off+n]), n
}

func (fs *fetchedSections) Close() {
	if fs.file != nil {
		fs.file.Close()
	}
}

// bodySection extracts BODY[section]<partial>. The whole message, its
// header and its text are cut from the stored bytes directly, so BODY[]
// is byte-exact and as long as RFC822.SIZE says; deeper sections go through
// go-imap's MIME walker, except paths deeper than the store's MIME depth
// cap: they name no part of the cached structure (BODYSTRUCTURE shows the
// entity at the cap as one empty part), so they are empty, as a missing
// part is. The walker costs the square of the depth: 2.4-6 s per FETCH of
// a 5,000-level path on a 5,000-level message.
func bodySection(raw []byte, bs *imap.FetchItemBodySection) []byte {
	if beyondDepthCap(bs.Part) {
		return nil
	}
	if len(bs.Part) == 0 && len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0 {
		split := headerEnd(raw)
		switch bs.Specifier {
		case imap.PartSpecifierNone:
			return partial(raw, bs.Partial)
		case imap.PartSpecifierHeader:
			return partial(raw[:split], bs.Partial)
		case imap.PartSpecifierText:
			return partial(raw[split:], bs.Partial)
		}
	}
	return imapserver.ExtractBodySection(bytes.NewReader(raw), bs)
}

// beyondDepthCap reports whether a section path is deeper than any part of
// the cached structure; see bodySection.
func beyondDepthCap(part []int) bool { return len(part) > mailstore.MaxMIMEDepth+1 }

// headerEnd is the offset just past the blank line ending the header, or
// len(raw) if there is none.
func headerEnd(raw []byte) int {
	crlf := bytes.Index(raw, []byte("\r\n\r\n"))
	lf := bytes.Index(raw, []byte("\n\n"))
	switch {
	case crlf >= 0 && (lf < 0 || crlf < lf):
		return crlf + 4
	case lf >= 0:
		return lf + 2
	}
	return len(raw)
}

func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return b
	}
	if p.Offset >= int64(len(b)) {
		return nil
	}
	end := min(int64(len(b)), p.Offset+p.Size)
	return b[p.Offset:end]
}

// Search answers SEARCH and UID SEARCH. Sequence-number criteria are turned
// into UID sets against this session's view; the store evaluates the rest.
func (ss *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	sel, err := ss.selected()
	if err != nil {
		return nil, err
	}
	var data imap.SearchData
	withModSeq := usesModSeq(criteria)
	if err := ss.seqToUIDCriteria(criteria); err != nil {
		return nil, err
	}
	var uids []imap.UID
	if inViewOnly(criteria) {
		uids = sel.view.search(criteria)
	} else if uids, err = ss.store().Search(ss.ctx, sel.view.id, criteria); err != nil {
		return nil, storeError(err)
	}
	var (
		seqSet         imap.SeqSet
		uidSet         imap.UIDSet
		minUID, maxUID imap.UID
	)
	for _, uid := range uids {
		num := uint32(uid)
		if kind == imapserver.NumKindSeq {
			targets, _ := sel.view.resolve(sel.tracker, imap.UIDSetNum(uid))
			if len(targets) == 0 {
				continue
			}
			num = targets[0].seq
			seqSet.AddNum(num)
		} else {
			uidSet.AddNum(uid)
		}
		if data.Min == 0 || num < data.Min {
			data.Min, minUID = num, uid
		}
		if num > data.Max {
			data.Max, maxUID = num, uid
		}
		data.Count++
	}
	if withModSeq {
		data.ModSeq = sel.view.highestModSeqOf(modSeqReturned(uids, minUID, maxUID, options))
	}
	if kind == imapserver.NumKindSeq {
		data.All = seqSet
	} else {
		data.All = uidSet
	}
	return &data, nil
}

// modSeqReturned are the messages whose highest mod-sequence a SEARCH
// with MODSEQ reports: all it found, except that an ESEARCH returning only
// MIN and/or MAX reports those messages' (RFC 7162 §3.1.10), as Dovecot.
func modSeqReturned(found []imap.UID, minUID, maxUID imap.UID, options *imap.SearchOptions) []imap.UID {
	if options == nil || options.ReturnAll || options.ReturnCount || options.ReturnSave {
		return found
	}
	var out []imap.UID
	if options.ReturnMin && minUID != 0 {
		out = append(out, minUID)
	}
	if options.ReturnMax && maxUID != 0 {
		out = append(out, maxUID)
	}
	return out
}

func (ss *session) seqToUIDCriteria(c *imap.SearchCriteria) error {
	for _, seqs := range c.SeqNum {
		if imap.IsSearchRes(seqs) {
			return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "SEARCHRES is not supported"}
		}
		targets, err := ss.sel.view.resolve(ss.sel.tracker, seqs)
		if err != nil {
			return err
		}
		var set imap.UIDSet
		for _, t := range targets {
			set.AddNum(t.uid)
		}
		if len(set) == 0 {
			set = imap.UIDSet{} // matches nothing
		}
		c.UID = append(c.UID, set)
	}
	c.SeqNum = nil
	for i, set := range c.UID {
		c.UID[i] = ss.sel.view.staticUIDs(set)
	}
	ss.recentToUIDCriteria(c)
	ss.modSeqToUIDCriteria(c)
	for i := range c.Not {
		if err := ss.seqToUIDCriteria(&c.Not[i]); err != nil {
			return err
		}
	}
	for i := range c.Or {
		for j := range c.Or[i] {
			if err := ss.seqToUIDCriteria(&c.Or[i][j]); err != nil {
				return err
			}
		}
	}
	return nil
}

// recentToUIDCriteria turns RECENT, NEW and OLD (\Recent in the flag
// criteria) into this session's set of \Recent messages: the store keeps
// no \Recent.
func (ss *session) recentToUIDCriteria(c *imap.SearchCriteria) {
	isRecent := func(f imap.Flag) bool { return strings.EqualFold(string(f), string(flagRecent)) }
	if slices.ContainsFunc(c.Flag, isRecent) {
		c.Flag = slices.DeleteFunc(c.Flag, isRecent)
		c.UID = append(c.UID, ss.sel.tracker.recentSet())
	}
	if slices.ContainsFunc(c.NotFlag, isRecent) {
		c.NotFlag = slices.DeleteFunc(c.NotFlag, isRecent)
		c.Not = append(c.Not, imap.SearchCriteria{UID: []imap.UIDSet{ss.sel.tracker.recentSet()}})
	}
}

// Store changes flags; other sessions get FETCH FLAGS through the view, this
// one gets them here for the messages that changed, unless .SILENT (or
// after the poll, when the change announced a new keyword).
func (ss *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	sel, err := ss.selected()
	if err != nil {
		return err
	}
	if sel.readOnly {
		return errReadOnly
	}
	targets, err := sel.view.resolve(sel.tracker, numSet)
	if err != nil || len(targets) == 0 {
		return err
	}
	_, byUID := numSet.(imap.UIDSet)
	if options.HasUnchangedSince && options.UnchangedSince == 0 {
		// Every message has changed since 0: nothing is stored
		// (RFC 7162 §3.1.3). The store reads 0 as no condition.
		return modifiedError(targets, uidsOf(targets), byUID)
	}
	before := make([][]imap.Flag, len(targets))
	for i, t := range targets {
		before[i], _ = sel.view.flagsOf(t.uid)
	}
	ctx := mailstore.WithOrigin(ss.ctx, sel.tracker)
	modified, err := ss.store().StoreFlagsUnchangedSince(ctx, sel.view.id, uidsOf(targets), flags.Op, flagStrings(flags.Flags),
		options.UnchangedSince)
	if err != nil {
		return storeError(err)
	}
	if err := ss.writeStored(w, targets, before, flags.Silent, byUID); err != nil {
		return err
	}
	if len(modified) > 0 {
		return modifiedError(targets, modified, byUID)
	}
	return nil
}

// writeStored answers STORE with the new flags of the messages it changed,
// unless .SILENT, and with their mod-sequences once CONDSTORE is enabled
// (then also after .SILENT, RFC 7162 §3.1.3, as Dovecot does).
func (ss *session) writeStored(w *imapserver.FetchWriter, targets []target, before [][]imap.Flag, silent, byUID bool) error {
	withModSeq := ss.enabled(imap.CapCondStore)
	if silent && !withModSeq {
		return nil
	}
	byUID = byUID || ss.enabled(imap.CapQResync)
	sel := ss.sel
	var changed []trackerFetch
	for i, t := range targets {
		cur, ok := sel.view.flagsOf(t.uid)
		if ok && !slices.Equal(cur, before[i]) { // like Dovecot, report only changes
			changed = append(changed, trackerFetch{seqNum: t.seq, uid: t.uid, flags: sel.tracker.withRecent(t.uid, cur),
				modSeq: sel.view.modSeqOf(t.uid)})
		}
	}
	if sel.tracker.queueAfterFlags(queuedStored(changed, byUID, silent)) {
		return nil // written by the poll after the command, behind * FLAGS
	}
	ss.wire.hold()
	defer ss.wire.release()
	for _, f := range changed {
		rw := w.CreateMessage(f.seqNum)
		if byUID {
			rw.WriteUID(f.uid)
		}
		if !silent {
			rw.WriteFlags(f.flags)
		}
		if withModSeq {
			sel.tracker.noteFetchedModSeq(f.modSeq)
			rw.WriteModSeq(f.modSeq)
		}
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (ss *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	if _, err := ss.selected(); err != nil {
		return nil, err
	}
	targets, err := ss.sel.view.resolve(ss.sel.tracker, numSet)
	if err != nil {
		return nil, err
	}
	c, err := ss.store().Copy(ss.originCtx(), ss.sel.view.id, uidsOf(targets), dest)
	if err != nil {
		return nil, destError(err)
	}
	return copyData(c), nil
}

// Move moves in one store transaction; the EXPUNGEs reach this session, like
// the others, through the view and go-imap's poll after the command.
func (ss *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	if _, err := ss.selected(); err != nil {
		return err
	}
	if ss.sel.readOnly {
		return errReadOnly
	}
	targets, err := ss.sel.view.resolve(ss.sel.tracker, numSet)
	if err != nil {
		return err
	}
	c, err := ss.store().Move(ss.originCtx(), ss.sel.view.id, uidsOf(targets), dest)
	if err != nil {
		return destError(err)
	}
	if data := copyData(c); data != nil {
		return w.WriteCopyData(data)
	}
	return nil
}

// queuedStored are STORE's own FETCH responses as the poll writes them:
// with UID only when the command was UID STORE (or QRESYNC is enabled),
// and for .SILENT only the MODSEQ.
func queuedStored(changed []trackerFetch, byUID, silent bool) []trackerFetch {
	out := slices.Clone(changed)
	for i := range out {
		if !byUID {
			out[i].uid = 0
		}
		out[i].modSeqOnly = silent
	}
	return out
}

func destError(err error) error {
	if errors.Is(err, mailstore.ErrNoMailbox) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	return storeError(err)
}

func copyData(c mailstore.Copied) *imap.CopyData {
	if len(c.SourceUIDs) == 0 {
		return nil
	}
	var src, dst imap.UIDSet
	for i := range c.SourceUIDs {
		src.AddNum(c.SourceUIDs[i])
		dst.AddNum(c.DestUIDs[i])
	}
	return &imap.CopyData{UIDValidity: c.UIDValidity, SourceUIDs: src, DestUIDs: dst}
}

// Expunge removes \Deleted messages (only those in uids for UID EXPUNGE).
// go-imap also calls it for CLOSE, which cannot fail; in a read-only
// selection it therefore does nothing rather than refuse.
func (ss *session) Expunge(_ *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	if _, err := ss.selected(); err != nil {
		return err
	}
	if ss.sel.readOnly {
		return nil
	}
	var only []imap.UID // nil: all
	if uids != nil {
		targets, err := ss.sel.view.resolve(ss.sel.tracker, *uids)
		if err != nil {
			return err
		}
		only = uidsOf(targets) // non-nil even when empty
	}
	_, err := ss.store().Expunge(ss.ctx, ss.sel.view.id, only)
	return storeError(err)
}
