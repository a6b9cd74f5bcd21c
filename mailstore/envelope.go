package mailstore

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/emersion/go-imap/v2"
)

// The envelope is cached in a compact binary form because FETCH ENVELOPE of a
// whole mailbox decodes one per message: JSON took about half of that
// command's time. Layout, after a version byte: the date (has-date byte,
// varint unix seconds, varint zone offset), the subject, six address lists
// (From, Sender, Reply-To, To, Cc, Bcc: count, then name, mailbox and host of
// each), the In-Reply-To list (count, then IDs) and the Message-ID. Strings
// and counts are uvarint-prefixed.

const envelopeVersion = 1

var errBadEnvelope = errors.New("malformed cached envelope")

func encodeEnvelope(env *imap.Envelope) ([]byte, error) {
	b := []byte{envelopeVersion}
	if env.Date.IsZero() {
		b = append(b, 0)
	} else {
		_, offset := env.Date.Zone()
		b = append(b, 1)
		b = binary.AppendVarint(b, env.Date.Unix())
		b = binary.AppendVarint(b, int64(offset))
	}
	b = appendString(b, env.Subject)
	for _, l := range [][]imap.Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, a := range l {
			b = appendString(appendString(appendString(b, a.Name), a.Mailbox), a.Host)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(env.InReplyTo)))
	for _, id := range env.InReplyTo {
		b = appendString(b, id)
	}
	return appendString(b, env.MessageID), nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// envelopeReader decodes with bounds checks; the first error sticks. It
// reads from one string so that all decoded strings share its memory: one
// allocation instead of one per field.
type envelopeReader struct {
	b   string
	err error
}

func (r *envelopeReader) uvarint() uint64 {
	v, n := uvarintString(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *envelopeReader) varint() int64 {
	ux := r.uvarint() // zig-zag, as binary.AppendVarint writes it
	v := int64(ux >> 1)
	if ux&1 != 0 {
		v = ^v
	}
	return v
}

// uvarintString is binary.Uvarint over a string.
func uvarintString(s string) (uint64, int) {
	var x uint64
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, -1 // overflow
			}
			return x | uint64(b)<<(7*i), i + 1
		}
		x |= uint64(b&0x7f) << (7 * i)
	}
	return 0, 0
}

func (r *envelopeReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

// count reads a list length that each element needs at least min bytes for,
// so a corrupt length cannot make us allocate more than the input allows.
func (r *envelopeReader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/min) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *envelopeReader) fail() {
	if r.err == nil {
		r.err = errBadEnvelope
	}
	r.b = ""
}

func decodeEnvelope(b []byte) (*imap.Envelope, error) {
	if len(b) < 2 || b[0] != envelopeVersion {
		return nil, errBadEnvelope
	}
	r := &envelopeReader{b: string(b[2:])}
	env := &imap.Envelope{}
	if b[1] == 1 {
		sec, offset := r.varint(), r.varint()
		if offset < -18*3600 || offset > 18*3600 || sec < math.MinInt64/2 || sec > math.MaxInt64/2 {
			r.fail()
		} else {
			env.Date = time.Unix(sec, 0).In(time.FixedZone("", int(offset)))
		}
	} else if b[1] != 0 {
		r.fail()
	}
	env.Subject = r.string()
	lists := []*[]imap.Address{&env.From, &env.Sender, &env.ReplyTo, &env.To, &env.Cc, &env.Bcc}
	addrs := make([]imap.Address, 0, 8) // shared backing array for the six lists
	for _, l := range lists {
		n := r.count(3)
		start := len(addrs)
		for range n {
			addrs = append(addrs, imap.Address{Name: r.string(), Mailbox: r.string(), Host: r.string()})
		}
		if n > 0 {
			*l = addrs[start:len(addrs):len(addrs)]
		}
	}
	n := r.count(1)
	for range n {
		env.InReplyTo = append(env.InReplyTo, r.string())
	}
	env.MessageID = r.string()
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	if r.err != nil {
		return nil, r.err
	}
	return env, nil
}
