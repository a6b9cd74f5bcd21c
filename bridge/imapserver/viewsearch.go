package imapserver

import (
	"strings"

	"github.com/emersion/go-imap/v2"
)

// SEARCH criteria that name only UIDs and flags (and NOT and OR of such)
// are answered from the view, which holds both, without a query: after
// the session's sequence numbers, \Recent and MODSEQ are turned into UID
// sets, this covers the searches CONDSTORE clients make ("MODSEQ m",
// "MODSEQ m NOT SEEN"). Anything else goes to the store.

// inViewOnly reports whether the view can answer criteria alone.
func inViewOnly(c *imap.SearchCriteria) bool {
	if len(c.SeqNum) > 0 || !c.Since.IsZero() || !c.Before.IsZero() || !c.SentSince.IsZero() || !c.SentBefore.IsZero() ||
		len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0 || c.Larger != 0 || c.Smaller != 0 || c.ModSeq != nil {
		return false
	}
	for i := range c.Not {
		if !inViewOnly(&c.Not[i]) {
			return false
		}
	}
	for i := range c.Or {
		if !inViewOnly(&c.Or[i][0]) || !inViewOnly(&c.Or[i][1]) {
			return false
		}
	}
	return true
}

// search returns, ascending, the UIDs of the messages that match criteria
// for which inViewOnly holds.
func (v *mailboxView) search(c *imap.SearchCriteria) []imap.UID {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []imap.UID
	for i, uid := range v.uids {
		if matchInView(c, uid, v.flags[i]) {
			out = append(out, uid)
		}
	}
	return out
}

func matchInView(c *imap.SearchCriteria, uid imap.UID, flags []imap.Flag) bool {
	for _, set := range c.UID {
		if !set.Contains(uid) {
			return false
		}
	}
	for _, f := range c.Flag {
		if !hasFlagFold(flags, f) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if hasFlagFold(flags, f) {
			return false
		}
	}
	for i := range c.Not {
		if matchInView(&c.Not[i], uid, flags) {
			return false
		}
	}
	for i := range c.Or {
		if !matchInView(&c.Or[i][0], uid, flags) && !matchInView(&c.Or[i][1], uid, flags) {
			return false
		}
	}
	return true
}

// hasFlagFold compares as IMAP does: flags and keywords ignore case.
func hasFlagFold(flags []imap.Flag, flag imap.Flag) bool {
	for _, f := range flags {
		if strings.EqualFold(string(f), string(flag)) {
			return true
		}
	}
	return false
}
