package imapserver

import (
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionMultiAppend is an IMAP session which supports MULTIAPPEND (RFC
// 3502) and CATENATE (RFC 4469). Every APPEND then goes through an
// AppendStager: its messages are staged one by one as they arrive and
// stored together by Commit, or not at all.
type SessionMultiAppend interface {
	Session

	// BeginAppend starts an APPEND to mailbox.
	BeginAppend(mailbox string) (AppendStager, error)
}

// AppendStager stages the messages of one APPEND command.
type AppendStager interface {
	// Stage stages a message given as a literal.
	Stage(r imap.LiteralReader, options *imap.AppendOptions) error
	// StageCatenate stages a message built from parts (CATENATE). next
	// returns the parts in order, then nil; a part's text must be read
	// before the next call.
	StageCatenate(options *imap.AppendOptions, next func() (*imap.CatenatePart, error)) error
	// Commit stores every staged message, or none.
	Commit() (*imap.AppendData, error)
	// Close discards what was staged and not committed.
	Close() error
}

func (c *Conn) handleMultiAppend(tag string, dec *imapwire.Decoder, mailbox string, session SessionMultiAppend) error {
	c.setReadTimeout(literalReadTimeout)
	defer c.setReadTimeout(cmdReadTimeout)

	// After a failure the rest of the command is read and dropped, so that
	// non-synchronizing literals are not taken for commands.
	failed := c.checkState(imap.ConnStateAuthenticated)
	var stager AppendStager
	if failed == nil {
		stager, failed = session.BeginAppend(mailbox)
	}
	if stager != nil {
		defer stager.Close()
	}
	for {
		options, err := readAppendOptions(dec)
		if err != nil {
			return err
		}
		var atom string
		switch {
		case dec.Special('~'): // literal8 (BINARY)
			err = c.readAppendLiteral(dec, stager, options, &failed)
		case !dec.Atom(&atom):
			err = c.readAppendLiteral(dec, stager, options, &failed)
		case strings.EqualFold(atom, "CATENATE"):
			err = c.readCatenate(dec, stager, options, &failed)
		case strings.EqualFold(atom, "UTF8"): // UTF8 (~{n}), RFC 6855
			if !dec.ExpectSP() || !dec.ExpectSpecial('(') || !dec.ExpectSpecial('~') {
				return dec.Err()
			}
			if err = c.readAppendLiteral(dec, stager, options, &failed); err == nil && !dec.ExpectSpecial(')') {
				err = dec.Err()
			}
		default:
			return newClientBugError("Unknown APPEND data extension")
		}
		if err != nil {
			return err
		}
		if !dec.SP() {
			break
		}
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if failed != nil {
		return failed
	}
	data, err := stager.Commit()
	if err != nil {
		return err
	}
	if err := c.poll("APPEND"); err != nil {
		return err
	}
	return c.writeAppendOK(tag, data)
}

// readAppendLiteral reads one message literal and stages it unless the
// command already failed. A synchronizing literal after a failure is
// refused with that failure.
func (c *Conn) readAppendLiteral(dec *imapwire.Decoder, stager AppendStager, options *imap.AppendOptions, failed *error) error {
	lit, nonSync, err := dec.ExpectLiteralReader()
	if err != nil {
		return err
	}
	if *failed != nil && !nonSync {
		return *failed
	}
	if *failed == nil {
		if err := c.checkAppendLiteral(lit, nonSync); err != nil {
			return err
		}
		*failed = stager.Stage(lit, options)
	}
	_, err = io.Copy(io.Discard, lit)
	return err
}

// readCatenate reads "CATENATE (part ...)" and stages the message unless
// the command already failed; the stager pulls the parts.
func (c *Conn) readCatenate(dec *imapwire.Decoder, stager AppendStager, options *imap.AppendOptions, failed *error) error {
	if !dec.ExpectSP() || !dec.ExpectSpecial('(') {
		return dec.Err()
	}
	var (
		prev     imap.LiteralReader
		parts    int
		done     bool
		parseErr error
	)
	next := func() (*imap.CatenatePart, error) {
		if prev != nil {
			if _, err := io.Copy(io.Discard, prev); err != nil {
				parseErr = err
				return nil, err
			}
			prev = nil
		}
		if done || parseErr != nil {
			return nil, parseErr
		}
		part, err := c.readCatenatePart(dec, parts, failed)
		if err != nil {
			parseErr = err
			return nil, err
		}
		if part == nil {
			done = true
			return nil, nil
		}
		parts++
		prev = part.Text
		return part, nil
	}
	if *failed == nil {
		*failed = stager.StageCatenate(options, next)
	}
	for !done && parseErr == nil { // what the stager did not read
		next()
	}
	return parseErr
}

// readCatenatePart reads the n-th part of a CATENATE list, or its closing
// parenthesis (nil).
func (c *Conn) readCatenatePart(dec *imapwire.Decoder, n int, failed *error) (*imap.CatenatePart, error) {
	if n > 0 && !dec.SP() {
		if !dec.ExpectSpecial(')') {
			return nil, dec.Err()
		}
		return nil, nil
	}
	var kind string
	if !dec.ExpectAtom(&kind) || !dec.ExpectSP() {
		return nil, dec.Err()
	}
	switch strings.ToUpper(kind) {
	case "URL":
		var url string
		if !dec.ExpectAString(&url) {
			return nil, dec.Err()
		}
		return &imap.CatenatePart{URL: url}, nil
	case "TEXT":
		lit, nonSync, err := dec.ExpectLiteralReader()
		if err != nil {
			return nil, err
		}
		if *failed != nil && !nonSync {
			return nil, *failed
		}
		if *failed == nil {
			if err := c.checkAppendLiteral(lit, nonSync); err != nil {
				return nil, err
			}
		}
		return &imap.CatenatePart{Text: lit}, nil
	}
	return nil, newClientBugError("Unknown CATENATE part")
}
