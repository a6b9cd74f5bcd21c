package mailstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode legacy charsets in headers and text parts
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// MaxMIMEDepth is how deep the parse done once at insert follows nested
// multiparts and message/rfc822: a deeper entity is cached as one empty
// part, so no section path longer than MaxMIMEDepth+1 names a part.
const MaxMIMEDepth = 40

// Other limits of the parse done once at insert.
const (
	maxMIMEParts    = 5000    // parts per message
	maxSearchText   = 8 << 20 // decoded text kept for SEARCH BODY/TEXT
	maxSearchHeader = 1 << 20 // decoded header text kept for SEARCH HEADER/TEXT
)

// indexed is what a message's insert caches about it.
type indexed struct {
	envelope   *imap.Envelope
	structure  imap.BodyStructure
	sentDate   time.Time // zero when Date: is absent or unparsable
	headerText string
	bodyText   string
	references []string // References message ids, for THREAD
}

// indexMessage parses a message once: envelope, body structure (with the
// MIME defaults of RFC 2045 for parts that lack a Content-Type) and
// lower-cased decoded text for SEARCH. The message is head followed by
// body, where head is nil or its header section (ending with the blank
// line), so that a caller that rewrote the header need not join the two.
// It accepts any bytes: a message that is not MIME at all becomes one
// text/plain part.
func indexMessage(head, body []byte) indexed {
	var h textproto.Header
	var err error
	if head == nil {
		var rest []byte
		if h, rest, err = splitHeader(body); err == nil {
			body = rest
		}
	} else {
		var rest []byte
		h, rest, err = splitHeader(head)
		switch {
		case err != nil:
			body = append(head[:len(head):len(head)], body...)
		case len(rest) > 0: // head held more than the header: rare, so copied
			body = append(rest[:len(rest):len(rest)], body...)
		}
	}
	if err != nil {
		// No parsable header: treat everything as the body.
		h = textproto.Header{}
	}
	ix := indexed{envelope: envelopeOf(h)}
	ix.sentDate = ix.envelope.Date
	var text textSink
	parts := 0
	ix.structure = structureOf(h, newBodyReader(body), "", 0, &parts, &text)
	ix.headerText = headerSearchText(h)
	mh := mail.Header{Header: gomessage.Header{Header: h}}
	ix.references, _ = mh.MsgIDList("References")
	ix.bodyText = text.String()
	return ix
}

// envelopeOf builds the IMAP envelope from a header. The subject stays as
// written (encoded-words included, unfolded), as RFC 3501 and Dovecot have
// it; display names are decoded (legacy charsets included) by go-message and
// go-imap writes them back as UTF-8 encoded-words.
func envelopeOf(h textproto.Header) *imap.Envelope {
	mh := mail.Header{Header: gomessage.Header{Header: h}}
	date, _ := mh.Date()
	subject := strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(h.Get("Subject"))
	inReplyTo, _ := mh.MsgIDList("In-Reply-To")
	messageID, _ := mh.MessageID()
	return &imap.Envelope{
		Date:      date,
		Subject:   validUTF8(subject),
		From:      addressList(mh, "From"),
		Sender:    addressList(mh, "Sender"),
		ReplyTo:   addressList(mh, "Reply-To"),
		To:        addressList(mh, "To"),
		Cc:        addressList(mh, "Cc"),
		Bcc:       addressList(mh, "Bcc"),
		InReplyTo: inReplyTo,
		MessageID: messageID,
	}
}

func addressList(mh mail.Header, key string) []imap.Address {
	unfold := strings.NewReplacer("\r\n", "", "\n", "", "\r", "")
	return parseAddressList(unfold.Replace(mh.Get(key)))
}

func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// splitHeader reads the header at the start of raw and returns it with
// the bytes after it (after what was read, on an error), without copying
// the body.
func splitHeader(raw []byte) (textproto.Header, []byte, error) {
	r := bytes.NewReader(raw)
	br := bufio.NewReader(r)
	h, err := textproto.ReadHeader(br)
	return h, raw[len(raw)-r.Len()-br.Buffered():], err
}

// bodyReader is a body held in memory whole. A message is indexed as it
// is stored, and io.ReadAll on large single-part bodies (megabytes)
// would copy them over and over as its buffer grows.
type bodyReader struct {
	*bytes.Reader
	b []byte
}

func newBodyReader(b []byte) bodyReader { return bodyReader{Reader: bytes.NewReader(b), b: b} }

// readBody returns what is left to read of body.
func readBody(body io.Reader) []byte {
	if r, ok := body.(bodyReader); ok {
		return r.b[len(r.b)-r.Len():]
	}
	raw, _ := io.ReadAll(body)
	return raw
}

// structureOf returns the body structure of one entity and feeds its decoded
// text to text. parentType is the enclosing multipart's media type.
func structureOf(h textproto.Header, body io.Reader, parentType string, depth int, parts *int, text *textSink) imap.BodyStructure {
	*parts++
	mediaType, params := contentTypeOf(h, parentType)
	if depth > 0 {
		text.add(headerSearchText(h)) // MIME part headers count for SEARCH TEXT, as in Dovecot
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		return multipartStructureOf(h, body, mediaType, params, depth, parts, text)
	}
	return singlePartStructureOf(h, body, mediaType, params, depth, parts, text)
}

// contentTypeOf is the media type and parameters of an entity with header
// h in a parent of parentType, with the defaults RFC 2045 and RFC 2046
// give where the header has none or one that does not parse.
func contentTypeOf(h textproto.Header, parentType string) (string, map[string]string) {
	mh := gomessage.Header{Header: h}
	mediaType, params, err := mh.ContentType()
	if err != nil || !h.Has("Content-Type") || !strings.Contains(mediaType, "/") {
		if parentType == "multipart/digest" {
			mediaType, params = "message/rfc822", nil
		} else {
			mediaType, params = "text/plain", map[string]string{"charset": "us-ascii"}
		}
	}
	if strings.HasPrefix(mediaType, "text/") && params["charset"] == "" {
		if params == nil {
			params = map[string]string{}
		}
		params["charset"] = "us-ascii" // the RFC 2045 default, which Dovecot reports too
	}
	return mediaType, params
}

// multipartStructureOf is structureOf for a multipart entity: its parts,
// up to maxMIMEParts in the whole message.
func multipartStructureOf(h textproto.Header, body io.Reader, mediaType string, params map[string]string, depth int, parts *int, text *textSink) imap.BodyStructure {
	mh := gomessage.Header{Header: h}
	_, subtype, _ := strings.Cut(mediaType, "/")
	if params["boundary"] == "" || depth >= MaxMIMEDepth {
		// Unparsable: one empty part, as Dovecot reports it.
		return &imap.BodyStructureMultiPart{Subtype: subtype, Children: []imap.BodyStructure{emptyTextPart()},
			Extended: &imap.BodyStructureMultiPartExt{Params: params}}
	}
	mp := &imap.BodyStructureMultiPart{Subtype: subtype, Extended: &imap.BodyStructureMultiPartExt{
		Params:      params,
		Disposition: dispositionOf(mh),
		Language:    languageOf(mh),
		Location:    h.Get("Content-Location"),
	}}
	mr := textproto.NewMultipartReader(body, params["boundary"])
	for *parts < maxMIMEParts {
		part, err := mr.NextPart()
		if err != nil {
			break
		}
		mp.Children = append(mp.Children, structureOf(part.Header, part, mediaType, depth+1, parts, text))
	}
	if len(mp.Children) == 0 { // IMAP needs at least one part
		mp.Children = append(mp.Children, emptyTextPart())
	}
	return mp
}

// singlePartStructureOf is structureOf for an entity that is not
// multipart; a message/rfc822 one has the structure of the message it
// holds, and a text one adds to the text SEARCH reads.
func singlePartStructureOf(h textproto.Header, body io.Reader, mediaType string, params map[string]string, depth int, parts *int, text *textSink) imap.BodyStructure {
	mh := gomessage.Header{Header: h}
	typ, subtype, _ := strings.Cut(mediaType, "/")
	raw := readBody(body)
	lines := int64(bytes.Count(raw, []byte("\n")))
	sp := &imap.BodyStructureSinglePart{
		Type:        typ,
		Subtype:     subtype,
		Params:      params,
		ID:          h.Get("Content-Id"),
		Description: h.Get("Content-Description"),
		Encoding:    strings.ToLower(h.Get("Content-Transfer-Encoding")),
		Size:        uint32(min(len(raw), 1<<32-1)),
		Extended: &imap.BodyStructureSinglePartExt{
			Disposition: dispositionOf(mh),
			Language:    languageOf(mh),
			Location:    h.Get("Content-Location"),
		},
	}
	if sp.Encoding == "" {
		sp.Encoding = "7bit"
	}
	switch {
	case (mediaType == "message/rfc822" || mediaType == "message/global") && depth < MaxMIMEDepth:
		ch, cbody, err := splitHeader(raw)
		if err != nil {
			ch = textproto.Header{}
		}
		sp.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      envelopeOf(ch),
			BodyStructure: structureOf(ch, newBodyReader(cbody), "", depth+1, parts, text),
			NumLines:      lines,
		}
	case typ == "text":
		sp.Text = &imap.BodyStructureText{NumLines: lines}
		text.addEntity(h, raw)
	}
	return sp
}

func emptyTextPart() *imap.BodyStructureSinglePart {
	return &imap.BodyStructureSinglePart{
		Type: "text", Subtype: "plain", Params: map[string]string{"charset": "us-ascii"},
		Encoding: "7bit", Text: &imap.BodyStructureText{}, Extended: &imap.BodyStructureSinglePartExt{},
	}
}

func dispositionOf(mh gomessage.Header) *imap.BodyStructureDisposition {
	disp, params, _ := mh.ContentDisposition()
	if disp == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: disp, Params: params}
}

func languageOf(mh gomessage.Header) []string {
	v := mh.Get("Content-Language")
	if v == "" {
		return nil
	}
	l := strings.Split(v, ",")
	for i := range l {
		l[i] = strings.TrimSpace(l[i])
	}
	return l
}

// headerSearchText renders decoded header fields as lower-case "name: value"
// lines, the form search.go matches HEADER and TEXT against.
func headerSearchText(h textproto.Header) string {
	var b strings.Builder
	mh := gomessage.Header{Header: h}
	fields := mh.Fields()
	for fields.Next() && b.Len() < maxSearchHeader {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		b.WriteString(strings.ToLower(fields.Key()))
		b.WriteString(": ")
		b.WriteString(searchFold(strings.ReplaceAll(strings.ReplaceAll(v, "\r", " "), "\n", " ")))
		if isAddressField(fields.Key()) {
			b.WriteString(searchFold(parsedAddresses(fields.Value())))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// isAddressField is true of the fields SEARCH FROM, TO, CC and BCC (and HEADER on
// them) also match by parsed address, so that "user@domain" finds
// "<user (comment)@ (comment) domain>" as in Dovecot.
func isAddressField(key string) bool {
	switch strings.ToLower(key) {
	case "from", "to", "cc", "bcc", "sender", "reply-to":
		return true
	}
	return false
}

// parsedAddresses renders an address field's addresses as " name
// <mailbox@host>" each, to follow the field's text on its search line.
func parsedAddresses(value string) string {
	var b strings.Builder
	for _, a := range parseAddressList(strings.NewReplacer("\r", "", "\n", "").Replace(value)) {
		if a.Host != "" {
			fmt.Fprintf(&b, " %s <%s@%s>", a.Name, a.Mailbox, a.Host)
		}
	}
	return b.String()
}

// searchFold is the case folding applied to both stored text and queries.
func searchFold(s string) string { return strings.ToLower(validUTF8(s)) }

// textSink collects decoded, case-folded text up to maxSearchText bytes.
type textSink struct{ b strings.Builder }

func (t *textSink) add(s string) {
	room := maxSearchText - t.b.Len()
	if room <= 0 {
		return
	}
	if len(s) > room {
		s = s[:room]
		for len(s) > 0 && !utf8.ValidString(s) { // do not cut a character in half
			s = s[:len(s)-1]
		}
	}
	t.b.WriteString(s)
	t.b.WriteByte('\n')
}

// addEntity decodes a text part's transfer encoding and charset; when either
// is unknown it keeps the raw bytes, which still match ASCII queries.
func (t *textSink) addEntity(h textproto.Header, raw []byte) {
	if t.b.Len() >= maxSearchText {
		return
	}
	if identityDecoding(h) {
		t.addFolded(raw[:min(len(raw), maxSearchText)])
		return
	}
	t.addDecoded(h, raw)
}

// addDecoded adds a part's text through go-message's transfer and charset
// decoding: the general path, which addEntity skips when decoding would
// change nothing.
func (t *textSink) addDecoded(h textproto.Header, raw []byte) {
	e, err := gomessage.New(gomessage.Header{Header: h}, bytes.NewReader(raw))
	if err != nil && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err) {
		t.add(searchFold(string(raw)))
		return
	}
	decoded, err := io.ReadAll(io.LimitReader(e.Body, maxSearchText))
	if err != nil {
		decoded = raw
	}
	t.add(searchFold(string(decoded)))
}

func (t *textSink) String() string { return t.b.String() }

// identityDecoding reports whether decoding a text part as go-message does
// (transfer encoding, then charset to UTF-8) would return its bytes
// unchanged.
func identityDecoding(h textproto.Header) bool {
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "", "7bit", "8bit", "binary":
	default:
		return false
	}
	mh := gomessage.Header{Header: h}
	mediaType, params, _ := mh.ContentType()
	if !strings.HasPrefix(mediaType, "text/") {
		return true
	}
	cs, ok := params["charset"]
	cs = strings.ToLower(cs)
	return !ok || cs == "utf-8" || cs == "us-ascii"
}

// addFolded is add(searchFold(string(b))) without the three copies of b
// that makes, when b is ASCII: the common case of large text parts.
func (t *textSink) addFolded(b []byte) {
	if !isASCII(b) {
		t.add(searchFold(string(b)))
		return
	}
	room := maxSearchText - t.b.Len()
	if room <= 0 {
		return
	}
	b = b[:min(len(b), room)]
	t.b.Grow(len(b) + 1)
	var buf [4096]byte
	for len(b) > 0 {
		n := copy(buf[:], b)
		lowerASCII(buf[:n])
		t.b.Write(buf[:n])
		b = b[n:]
	}
	t.b.WriteByte('\n')
}

const hiBits = 0x8080808080808080

func isASCII(b []byte) bool {
	for ; len(b) >= 8; b = b[8:] {
		if binary.LittleEndian.Uint64(b)&hiBits != 0 {
			return false
		}
	}
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lowerASCII lower-cases ASCII b in place, eight bytes at a time: with
// every byte below 0x80, adding 0x80-'A' sets a byte's top bit when it is
// at least 'A', adding 0x80-'Z'-1 when it is above 'Z', and no carry
// crosses bytes.
func lowerASCII(b []byte) {
	for ; len(b) >= 8; b = b[8:] {
		x := binary.LittleEndian.Uint64(b)
		upper := (x + 0x3f3f3f3f3f3f3f3f) &^ (x + 0x2525252525252525) & hiBits
		binary.LittleEndian.PutUint64(b, x|upper>>2)
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}
