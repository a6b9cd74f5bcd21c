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

func (c *Conn) handleSort(tag string, dec *imapwire.Decoder, numKind NumKind) error {
	var (
		criteria []imap.SortCriterion
		options  *imap.SearchOptions // ESORT (RFC 5267)
		atom     string
	)
	if !dec.ExpectSP() {
		return dec.Err()
	}
	if dec.Atom(&atom) {
		options = new(imap.SearchOptions)
		if !strings.EqualFold(atom, "RETURN") {
			return newClientBugError("Expected RETURN or sort criteria")
		}
		if err := readSearchReturnOpts(dec, options); err != nil {
			return err
		}
		if options.ReturnSave {
			return newClientBugError("SORT RETURN (SAVE) is not supported")
		}
		if !dec.ExpectSP() {
			return dec.Err()
		}
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
	if options != nil {
		return c.writeESort(tag, numKind, nums, options)
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

// writeESort answers SORT RETURN (RFC 5267): MIN and MAX are the first
// and last messages in sort order, ALL all of them in that order (ranges
// only for ascending runs); no option asks for ALL.
func (c *Conn) writeESort(tag string, numKind NumKind, nums []uint32, options *imap.SearchOptions) error {
	if !options.ReturnMin && !options.ReturnMax && !options.ReturnAll && !options.ReturnCount {
		options.ReturnAll = true
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("ESEARCH").SP().Special('(').Atom("TAG").SP().String(tag).Special(')')
	if numKind == NumKindUID {
		enc.SP().Atom("UID")
	}
	if len(nums) > 0 && options.ReturnMin {
		enc.SP().Atom("MIN").SP().Number(nums[0])
	}
	if len(nums) > 0 && options.ReturnMax {
		enc.SP().Atom("MAX").SP().Number(nums[len(nums)-1])
	}
	if len(nums) > 0 && options.ReturnAll {
		enc.SP().Atom("ALL").SP()
		for i := 0; i < len(nums); {
			j := i
			for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
				j++
			}
			if i > 0 {
				enc.Special(',')
			}
			enc.Number(nums[i])
			if j > i {
				enc.Special(':').Number(nums[j])
			}
			i = j + 1
		}
	}
	if options.ReturnCount {
		enc.SP().Atom("COUNT").SP().Number(uint32(len(nums)))
	}
	return enc.CRLF()
}
