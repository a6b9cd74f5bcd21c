package imapserver

import (
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// WriteHighestModSeq reports the selected mailbox's new highest
// mod-sequence once QRESYNC is enabled (RFC 7162 §3.2.10: after the
// changes a command's updates announced). During a command it goes into the
// tagged OK, as Dovecot writes it ("OK [HIGHESTMODSEQ n] ..."), or, when
// that OK carries another code (COPYUID, APPENDUID, MODIFIED), into an
// untagged OK just before it; during IDLE it is written at once.
func (w *UpdateWriter) WriteHighestModSeq(modSeq uint64) error {
	if w.deferModSeq {
		w.conn.highestModSeq = modSeq
		return nil
	}
	return w.conn.writeStatusResp("", highestModSeqResp(modSeq))
}

func highestModSeqResp(modSeq uint64) *imap.StatusResponse {
	return &imap.StatusResponse{
		Type: imap.StatusResponseTypeOK,
		Code: imap.ResponseCode(fmt.Sprintf("HIGHESTMODSEQ %d", modSeq)),
		Text: "Highest",
	}
}

// writeTaggedStatus writes a command's status response with a pending
// HIGHESTMODSEQ (see UpdateWriter.WriteHighestModSeq).
func (c *Conn) writeTaggedStatus(tag string, resp *imap.StatusResponse) error {
	modSeq := c.takeHighestModSeq()
	if modSeq != 0 && resp.Type == imap.StatusResponseTypeOK && resp.Code == "" {
		withCode := *resp
		withCode.Code = highestModSeqResp(modSeq).Code
		return c.writeStatusResp(tag, &withCode)
	}
	if modSeq != 0 {
		if err := c.writeStatusResp("", highestModSeqResp(modSeq)); err != nil {
			return err
		}
	}
	return c.writeStatusResp(tag, resp)
}

// writePendingHighestModSeq writes a pending HIGHESTMODSEQ as an untagged
// OK, before a tagged OK that has a code of its own.
func (c *Conn) writePendingHighestModSeq(enc *imapwire.Encoder) error {
	if modSeq := c.takeHighestModSeq(); modSeq != 0 {
		return writeStatusResp(enc, "", highestModSeqResp(modSeq))
	}
	return nil
}

func (c *Conn) takeHighestModSeq() uint64 {
	modSeq := c.highestModSeq
	c.highestModSeq = 0
	return modSeq
}
