package imapserver

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/asmtp/asmtp/mailstore"
)

// List answers LIST and LSUB, with the LIST-EXTENDED selection and return
// options, SPECIAL-USE attributes always (as Dovecot does) and children
// attributes. Subscriptions are names: one whose mailbox was deleted is
// listed \NonExistent (RFC 5258) by LIST (SUBSCRIBED) and plainly by LSUB.
func (ss *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 { // LIST "" "": just the hierarchy delimiter
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: mailstore.Delim})
	}
	mbs, err := ss.store().Mailboxes(ss.ctx, ss.account)
	if err != nil {
		return storeError(err)
	}
	slices.SortFunc(mbs, func(a, b mailstore.Mailbox) int { return compareNames(a.Name, b.Name) })
	matches := func(name string) bool {
		return slices.ContainsFunc(patterns, func(p string) bool { return imapserver.MatchList(name, mailstore.Delim, ref, p) })
	}
	if options.SelectSubscribed {
		subs, err := ss.store().Subscriptions(ss.ctx, ss.account)
		if err != nil {
			return storeError(err)
		}
		return ss.listSubscribed(w, mbs, subs, matches, options)
	}
	return ss.listMailboxes(w, mbs, matches, options)
}

// compareNames orders INBOX first, then by name.
func compareNames(a, b string) int {
	return strings.Compare(strings.Replace(a, mailstore.Inbox, "\x00", 1), strings.Replace(b, mailstore.Inbox, "\x00", 1))
}

// listMailboxes answers LIST without the SUBSCRIBED selection option.
func (ss *session) listMailboxes(w *imapserver.ListWriter, mbs []mailstore.Mailbox, matches func(string) bool, options *imap.ListOptions) error {
	// Like Dovecot, children attributes come with plain LIST, or when asked
	// for (RETURN (CHILDREN)); an extended LIST otherwise omits them.
	extended := options.SelectSpecialUse || options.ReturnSubscribed || options.ReturnStatus != nil || options.ReturnSpecialUse
	withChildren := !extended || options.ReturnChildren
	hasChildren := parentsOf(mbs)
	for i := range mbs {
		mb := &mbs[i]
		if !matches(mb.Name) || options.SelectSpecialUse && mb.SpecialUse == "" {
			continue
		}
		data := imap.ListData{Mailbox: mb.Name, Delim: mailstore.Delim}
		if withChildren {
			data.Attrs = append(data.Attrs, childrenAttr(hasChildren[mb.Name]))
		}
		if mb.Subscribed && options.ReturnSubscribed {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if err := ss.writeListData(w, &data, mb, options, !extended || options.SelectSpecialUse || options.ReturnSpecialUse); err != nil {
			return err
		}
	}
	return nil
}

// writeListData adds a mailbox's special use (if asked for: Dovecot gives
// it with plain LIST and LSUB, and to an extended LIST only with the
// SPECIAL-USE options) and status, and writes it.
func (ss *session) writeListData(w *imapserver.ListWriter, data *imap.ListData, mb *mailstore.Mailbox, options *imap.ListOptions, specialUse bool) error {
	if specialUse && mb != nil && mb.SpecialUse != "" {
		data.Attrs = append(data.Attrs, imap.MailboxAttr(mb.SpecialUse))
	}
	if mb != nil && options.ReturnStatus != nil {
		var err error
		if data.Status, err = ss.Status(mb.Name, options.ReturnStatus); err != nil {
			return err
		}
	}
	return w.WriteList(data)
}

func childrenAttr(has bool) imap.MailboxAttr {
	if has {
		return imap.MailboxAttrHasChildren
	}
	return imap.MailboxAttrHasNoChildren
}

// parentsOf is the set of names that have a mailbox below them.
func parentsOf(mbs []mailstore.Mailbox) map[string]bool {
	parents := make(map[string]bool)
	for _, mb := range mbs {
		for i := range len(mb.Name) {
			if mb.Name[i] == mailstore.Delim {
				parents[mb.Name[:i]] = true
			}
		}
	}
	return parents
}

// subscribedEntry is one line of LSUB or LIST (SUBSCRIBED).
type subscribedEntry struct {
	name       string
	subscribed bool // else listed for a subscribed descendant the patterns do not match
	childInfo  bool // has a subscribed descendant
}

// subscribedEntries are the subscribed names the patterns match and, for
// LSUB and RECURSIVEMATCH, the parents the patterns match of subscribed
// names they do not (RFC 3501 §6.3.9's "%" case, RFC 5258's CHILDINFO).
// As in Dovecot, any entry with a subscribed name below it has CHILDINFO.
func subscribedEntries(subs []string, matches func(string) bool, withParents bool) []subscribedEntry {
	byName := make(map[string]*subscribedEntry)
	get := func(name string) *subscribedEntry {
		if byName[name] == nil {
			byName[name] = &subscribedEntry{name: name}
		}
		return byName[name]
	}
	hasSubscribed := make(map[string]bool) // names with a subscribed name below
	for _, s := range subs {
		matched := matches(s)
		if matched {
			get(s).subscribed = true
		}
		for i := range len(s) {
			if s[i] != mailstore.Delim {
				continue
			}
			hasSubscribed[s[:i]] = true
			if withParents && !matched && matches(s[:i]) {
				get(s[:i])
			}
		}
	}
	for name, e := range byName {
		e.childInfo = hasSubscribed[name]
	}
	var out []subscribedEntry
	for _, e := range byName {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b subscribedEntry) int { return compareNames(a.name, b.name) })
	return out
}

// listSubscribed answers LSUB and LIST (SUBSCRIBED ...).
func (ss *session) listSubscribed(w *imapserver.ListWriter, mbs []mailstore.Mailbox, subs []string, matches func(string) bool, options *imap.ListOptions) error {
	existing := make(map[string]*mailstore.Mailbox, len(mbs))
	for i := range mbs {
		existing[mbs[i].Name] = &mbs[i]
	}
	hasChildren := parentsOf(mbs)
	for _, e := range subscribedEntries(subs, matches, w.LSub() || options.SelectRecursiveMatch) {
		mb := existing[e.name]
		data := imap.ListData{Mailbox: e.name, Delim: mailstore.Delim}
		switch {
		case w.LSub():
			if !e.subscribed {
				data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
			}
		default:
			if e.subscribed {
				data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
			}
			if mb == nil {
				data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
			}
			if options.ReturnChildren {
				data.Attrs = append(data.Attrs, childrenAttr(hasChildren[e.name]))
			}
			if e.childInfo && options.SelectRecursiveMatch {
				data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
			}
		}
		if err := ss.writeListData(w, &data, mb, options, w.LSub() || options.ReturnSpecialUse); err != nil {
			return err
		}
	}
	return nil
}
