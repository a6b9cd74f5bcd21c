package carddav

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// go-webdav v0.6.0 answers the properties it does not know with an empty
// element in a 404 propstat; the bridge answers two of them itself, in
// the multistatus of a PROPFIND:
//
//   - DAV:current-user-privilege-set (WebDAV ACLs, RFC 3744). Thunderbird's
//     address book discovery reads that element wherever it is, took the
//     empty set for "no privileges" and skipped the address book ("No
//     address books found"). The account may read everything it can
//     reach, and also write its address book and cards.
//   - CS:getctag (CalendarServer's collection tag) on the address book: a
//     hash of its cards' names and ETags, which changes with any card, so
//     clients that poll it skip listing an unchanged book.

const davNS = "DAV:"

var (
	privilegeSetName = xml.Name{Space: davNS, Local: "current-user-privilege-set"}
	ctagName         = xml.Name{Space: "http://calendarserver.org/ns/", Local: "getctag"}
)

// answerFunc answers property name of the resource at href, if it can.
type answerFunc func(name xml.Name, href string) (rawElement, bool)

// multistatus, davResponse and propstat are the parts of RFC 4918's
// multistatus this rewrite needs; properties are kept as raw XML.
type multistatus struct {
	XMLName   xml.Name      `xml:"DAV: multistatus"`
	Responses []davResponse `xml:"DAV: response"`
	Rest      []rawElement  `xml:",any"`
}

type davResponse struct {
	Href      []string     `xml:"DAV: href"`
	Propstats []propstat   `xml:"DAV: propstat"`
	Rest      []rawElement `xml:",any"`
}

type propstat struct {
	Prop   prop         `xml:"DAV: prop"`
	Status string       `xml:"DAV: status"`
	Rest   []rawElement `xml:",any"`
}

type prop struct {
	Elems []rawElement `xml:",any"`
}

// rawElement is an element kept as it was, written back verbatim inside
// its own tags: go-webdav declares the namespace on every element, so the
// inner XML stands on its own.
type rawElement struct {
	XMLName xml.Name
	Inner   []byte `xml:",innerxml"`
}

// privilegeSet is the account's privileges on href: write on its address
// book and cards (under bookPath), read everywhere.
func privilegeSet(href, bookPath string) rawElement {
	privs := []string{"read"}
	if strings.HasPrefix(href, bookPath) {
		privs = append(privs, "write", "write-content", "bind", "unbind")
	}
	var b strings.Builder
	for _, p := range privs {
		fmt.Fprintf(&b, `<privilege xmlns="DAV:"><%s xmlns="DAV:"/></privilege>`, p)
	}
	return rawElement{XMLName: privilegeSetName, Inner: []byte(b.String())}
}

// answerProperties moves each property the handler could not answer but
// answer can into the response's 200 propstat, with its value.
func answerProperties(body []byte, answer answerFunc) ([]byte, error) {
	var ms multistatus
	if err := xml.Unmarshal(body, &ms); err != nil {
		return nil, fmt.Errorf("carddav: read multistatus: %w", err)
	}
	changed := false
	for i := range ms.Responses {
		changed = answerPropertiesIn(&ms.Responses[i], answer) || changed
	}
	if !changed {
		return body, nil
	}
	out, err := xml.Marshal(ms)
	if err != nil {
		return nil, fmt.Errorf("carddav: write multistatus: %w", err)
	}
	return append([]byte(xml.Header), out...), nil
}

func answerPropertiesIn(r *davResponse, answer answerFunc) bool {
	if len(r.Href) == 0 {
		return false
	}
	var answered []rawElement
	kept := r.Propstats[:0]
	for _, ps := range r.Propstats {
		if !strings.Contains(ps.Status, " 200 ") {
			elems := ps.Prop.Elems[:0]
			for _, p := range ps.Prop.Elems {
				if a, ok := answer(p.XMLName, r.Href[0]); ok {
					answered = append(answered, a)
					continue
				}
				elems = append(elems, p)
			}
			ps.Prop.Elems = elems
			if len(elems) == 0 {
				continue
			}
		}
		kept = append(kept, ps)
	}
	r.Propstats = kept
	if len(answered) == 0 {
		return false
	}
	for i := range r.Propstats {
		if strings.Contains(r.Propstats[i].Status, " 200 ") {
			r.Propstats[i].Prop.Elems = append(r.Propstats[i].Prop.Elems, answered...)
			return true
		}
	}
	r.Propstats = append(r.Propstats, propstat{Prop: prop{Elems: answered}, Status: "HTTP/1.1 200 OK"})
	return true
}

// answer is the backend's answerFunc: privileges everywhere, the CTag of
// its address book.
func (b *backend) answer(ctx context.Context) answerFunc {
	var ctag string
	return func(name xml.Name, href string) (rawElement, bool) {
		switch {
		case name == privilegeSetName:
			return privilegeSet(href, b.bookPath()), true
		case name == ctagName && cleanDir(href) == b.bookPath():
			if ctag == "" {
				var err error
				if ctag, err = b.ctag(ctx); err != nil {
					return rawElement{}, false
				}
			}
			var text strings.Builder
			xml.EscapeText(&text, []byte(ctag))
			return rawElement{XMLName: ctagName, Inner: []byte(text.String())}, true
		}
		return rawElement{}, false
	}
}

// ctag hashes the names and ETags of the book's cards.
func (b *backend) ctag(ctx context.Context) (string, error) {
	aos, err := b.ListAddressObjects(ctx, b.bookPath(), nil)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, ao := range aos {
		fmt.Fprintf(h, "%s %s\n", ao.Path, ao.ETag)
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), nil
}

// recorder keeps a response to rewrite it before it is sent.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// serveWithAnswers runs a PROPFIND through h and answers in its
// multistatus what h could not.
func serveWithAnswers(w http.ResponseWriter, r *http.Request, h http.Handler, answer answerFunc) {
	rec := &recorder{header: w.Header()}
	h.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	if rec.status == http.StatusMultiStatus {
		if out, err := answerProperties(body, answer); err == nil {
			body = out
		}
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.status)
	w.Write(body)
}
