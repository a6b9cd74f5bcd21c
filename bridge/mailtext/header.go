// Package mailtext is the text of the messages on the bridge's mail path.
//
// Relayed mail has its header edited as bytes: the fields that are not
// touched, and the whole body, are copied exactly as they came, so a
// message of any MIME shape arrives with the body it was sent with. Both
// CRLF and bare LF line ends are understood; added fields end in CRLF.
// OutgoingCopy is what a submission leaves in the outbox for its
// recipients (bridge/outbound), InboundCopy what an account's INBOX gets
// from a verified contact (bridge/inbound, and bridge/outbound for mail to
// oneself), and Header the header a delivery status notification quotes.
//
// The notices the bridge itself writes to an INBOX (bounces, delay
// reports, incomplete messages) are prose for people: Wrap and Duration
// write it.
package mailtext

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// headerField is one field of a message header, as written: its name and
// its bytes from the name to the end of its last (folded) line. A line that
// is neither a field nor a continuation has an empty name and is kept as it
// is.
type headerField struct {
	name string
	raw  []byte
}

// authorFields say who wrote a message. Delivery writes its own From and
// X-ASMTP-Sender and drops what the sender wrote in these: a Sender field
// kept beside the rewritten From would make clients show the verified
// contact as writing "on behalf of" whoever the sender named.
var authorFields = []string{"From", "Sender", Sender, OriginalFrom}

// is reports whether the field has the given name (any case).
func (f headerField) is(name string) bool { return strings.EqualFold(f.name, name) }

// value is the field's body after the colon, as written (folds included).
func (f headerField) value() []byte { return f.raw[len(f.name)+1:] }

// splitMessage cuts msg into its header fields and the rest: the empty line
// that ends the header and the body, untouched. A message without an empty
// line is all header.
func splitMessage(msg []byte) (fields []headerField, rest []byte) {
	for len(msg) > 0 {
		end := bytes.IndexByte(msg, '\n') + 1
		if end == 0 {
			end = len(msg)
		}
		line := msg[:end]
		switch {
		case isBlankLine(line):
			return fields, msg
		case (line[0] == ' ' || line[0] == '\t') && len(fields) > 0:
			last := &fields[len(fields)-1]
			last.raw = append(last.raw, line...)
		default:
			fields = append(fields, headerField{name: fieldName(line), raw: append([]byte(nil), line...)})
		}
		msg = msg[end:]
	}
	return fields, nil
}

// SplitHead cuts msg after the empty line that ends its header, without
// copying: the header edits (OutgoingCopy, InboundCopy) need only head,
// and the body goes on as it is. A message without an empty line is all
// head.
func SplitHead(msg []byte) (head, body []byte) {
	for i := 0; i < len(msg); {
		end := bytes.IndexByte(msg[i:], '\n') + 1
		if end == 0 {
			break
		}
		if isBlankLine(msg[i : i+end]) {
			return msg[:i+end], msg[i+end:]
		}
		i += end
	}
	return msg, nil
}

// ErrHeadTooLarge: a message whose header goes on past MaxHeadBytes.
var ErrHeadTooLarge = errors.New("message header too large")

// MaxHeadBytes bounds the header ReadHead reads: a submitted message's,
// read into memory to edit while the body goes to the outbox as it is
// read. Postfix stops treating lines as header after 100 KiB
// (header_size_limit); a header this large is refused instead, since a
// Bcc field past the point where editing stopped would go to everyone.
const MaxHeadBytes = 256 << 10

// ReadHead reads from br what SplitHead would cut as head: every line up
// to and including the first empty one, or all there is.
func ReadHead(br *bufio.Reader) ([]byte, error) {
	var head []byte
	lineStart := true
	for {
		line, err := br.ReadSlice('\n')
		if head = append(head, line...); len(head) > MaxHeadBytes {
			return nil, ErrHeadTooLarge
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull): // the line goes on
			lineStart = false
			continue
		case errors.Is(err, io.EOF):
			return head, nil
		case err != nil:
			return nil, err
		case lineStart && isBlankLine(line):
			return head, nil
		}
		lineStart = true
	}
}

func isBlankLine(line []byte) bool {
	return string(line) == "\r\n" || string(line) == "\n"
}

// fieldName is the name of the field line starts, or "" if it starts none:
// printable ASCII other than ':' up to the first colon (RFC 5322 ftext).
func fieldName(line []byte) string {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return ""
	}
	for _, c := range line[:colon] {
		if c < 33 || c > 126 {
			return ""
		}
	}
	return string(line[:colon])
}

// joinMessage writes fields and rest back into one message.
func joinMessage(fields []headerField, rest []byte) []byte {
	n := len(rest)
	for _, f := range fields {
		n += len(f.raw)
	}
	out := make([]byte, 0, n)
	for _, f := range fields {
		out = append(out, f.raw...)
		if !bytes.HasSuffix(f.raw, []byte("\n")) { // a header that ended without a line break
			out = append(out, "\r\n"...)
		}
	}
	return append(out, rest...)
}

// newField is a field "Name: value" with a CRLF line end. value must be a
// single line (callers build it from checked or encoded parts).
func newField(name, value string) headerField {
	return headerField{name: name, raw: []byte(name + ": " + value + "\r\n")}
}

// hasField reports whether a field called name is present.
func hasField(fields []headerField, name string) bool {
	for _, f := range fields {
		if f.is(name) {
			return true
		}
	}
	return false
}

// withoutFields drops the fields with any of the names.
func withoutFields(fields []headerField, names ...string) []headerField {
	out := fields[:0:0]
	for _, f := range fields {
		drop := false
		for _, n := range names {
			drop = drop || f.is(n)
		}
		if !drop {
			out = append(out, f)
		}
	}
	return out
}

// Header is the header of msg as written, up to the empty line.
func Header(msg []byte) []byte {
	fields, _ := splitMessage(msg)
	return joinMessage(fields, nil)
}
