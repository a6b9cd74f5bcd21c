package imapserver

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionThread is an IMAP session which supports THREAD (RFC 5256).
type SessionThread interface {
	Session

	// Thread returns the threads of the messages matching searchCriteria,
	// numbered by sequence number or UID as kind says. Algorithms the
	// server does not advertise (THREAD=...) are refused before Thread.
	Thread(kind NumKind, algorithm imap.ThreadAlgorithm, searchCriteria *imap.SearchCriteria) ([]imap.ThreadData, error)
}

func (c *Conn) handleThread(dec *imapwire.Decoder, numKind NumKind) error {
	var algorithm string
	if !dec.ExpectSP() || !dec.ExpectAtom(&algorithm) || !dec.ExpectSP() {
		return dec.Err()
	}
	algo := imap.ThreadAlgorithm(strings.ToUpper(algorithm))
	searchCriteria, err := readCharsetSearch(dec)
	if err != nil {
		return err
	}
	if err := c.checkState(imap.ConnStateSelected); err != nil {
		return err
	}
	session, ok := c.session.(SessionThread)
	if !ok || !c.server.options.caps().Has(imap.Cap("THREAD="+string(algo))) {
		return newClientBugError("Unsupported THREAD algorithm")
	}
	threads, err := session.Thread(numKind, algo, searchCriteria)
	if err != nil {
		return err
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("THREAD")
	if len(threads) > 0 {
		enc.SP()
	}
	for i := range threads {
		writeThread(enc.Encoder, &threads[i])
	}
	return enc.CRLF()
}

// writeThread writes one thread-list: its chain, then each sub-thread in
// its own parentheses with no space between them (RFC 5256's thread-nested).
func writeThread(enc *imapwire.Encoder, t *imap.ThreadData) {
	enc.Special('(')
	for i, num := range t.Chain {
		if i > 0 {
			enc.SP()
		}
		enc.Number(num)
	}
	if len(t.Chain) > 0 && len(t.SubThreads) > 0 {
		enc.SP()
	}
	for i := range t.SubThreads {
		writeThread(enc, &t.SubThreads[i])
	}
	enc.Special(')')
}
