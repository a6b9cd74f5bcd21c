package imapserver

import (
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionSort is an IMAP session which supports SORT (RFC 5256).
type SessionSort interface {
	Session

	// Sort returns the numbers (sequence numbers or UIDs, as kind says) of
	// the messages matching searchCriteria, in the order criteria give.
	Sort(kind NumKind, criteria []imap.SortCriterion, searchCriteria *imap.SearchCriteria) ([]uint32, error)
}

func (c *Conn) handleSort(dec *imapwire.Decoder, numKind NumKind) error {
	var criteria []imap.SortCriterion
	if !dec.ExpectSP() {
		return dec.Err()
	}
	err := dec.ExpectList(func() error {
		var crit imap.SortCriterion
		var key string
		if !dec.ExpectAtom(&key) {
			return dec.Err()
		}
		if strings.EqualFold(key, "REVERSE") {
			crit.Reverse = true
			if !dec.ExpectSP() || !dec.ExpectAtom(&key) {
				return dec.Err()
			}
		}
		crit.Key = imap.SortKey(strings.ToUpper(key))
		switch crit.Key {
		case imap.SortKeyArrival, imap.SortKeyCc, imap.SortKeyDate, imap.SortKeyFrom, imap.SortKeySize, imap.SortKeySubject, imap.SortKeyTo:
		default:
			return newClientBugError("Unknown SORT key")
		}
		criteria = append(criteria, crit)
		return nil
	})
	if err != nil {
		return err
	}
	if len(criteria) == 0 {
		return newClientBugError("SORT needs at least one sort key")
	}
	if !dec.ExpectSP() {
		return dec.Err()
	}
	searchCriteria, err := readCharsetSearch(dec)
	if err != nil {
		return err
	}
	if err := c.checkState(imap.ConnStateSelected); err != nil {
		return err
	}
	session, ok := c.session.(SessionSort)
	if !ok {
		return newClientBugError("SORT is not supported")
	}
	nums, err := session.Sort(numKind, criteria, searchCriteria)
	if err != nil {
		return err
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("SORT")
	for _, num := range nums {
		enc.SP().Number(num)
	}
	return enc.CRLF()
}

// readCharsetSearch reads the charset and search keys that end SORT and
// THREAD (RFC 5256), up to and including the CRLF.
func readCharsetSearch(dec *imapwire.Decoder) (*imap.SearchCriteria, error) {
	var charset string
	if !dec.ExpectAString(&charset) || !dec.ExpectSP() {
		return nil, dec.Err()
	}
	switch strings.ToUpper(charset) {
	case "US-ASCII", "UTF-8":
	default:
		return nil, &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeBadCharset,
			Text: "Only US-ASCII and UTF-8 are supported charsets",
		}
	}
	var criteria imap.SearchCriteria
	for {
		if err := readSearchKey(&criteria, dec); err != nil {
			return nil, fmt.Errorf("in search-key: %w", err)
		}
		if !dec.SP() {
			break
		}
	}
	if !dec.ExpectCRLF() {
		return nil, dec.Err()
	}
	return &criteria, nil
}
