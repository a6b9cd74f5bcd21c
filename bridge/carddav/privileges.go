package carddav

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// go-webdav v0.6.0 knows nothing of WebDAV ACLs (RFC 3744), so it answers
// a PROPFIND for DAV:current-user-privilege-set with an empty element in a
// 404 propstat. Thunderbird's address book discovery reads that element
// wherever it is, takes the empty set for "no privileges" and skips the
// address book ("No address books found"). The bridge therefore answers
// the property itself: the account may read everything it can reach, and
// also write its address book and cards.

const davNS = "DAV:"

var privilegeSetName = xml.Name{Space: davNS, Local: "current-user-privilege-set"}

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

// answerPrivileges moves each DAV:current-user-privilege-set the handler
// could not answer into the response's 200 propstat, with its value.
func answerPrivileges(body []byte, bookPath string) ([]byte, error) {
	var ms multistatus
	if err := xml.Unmarshal(body, &ms); err != nil {
		return nil, fmt.Errorf("carddav: read multistatus: %w", err)
	}
	changed := false
	for i := range ms.Responses {
		changed = answerPrivilegesIn(&ms.Responses[i], bookPath) || changed
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

func answerPrivilegesIn(r *davResponse, bookPath string) bool {
	asked := false
	kept := r.Propstats[:0]
	for _, ps := range r.Propstats {
		if !strings.Contains(ps.Status, " 200 ") {
			elems := ps.Prop.Elems[:0]
			for _, p := range ps.Prop.Elems {
				if p.XMLName == privilegeSetName {
					asked = true
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
	if !asked || len(r.Href) == 0 {
		return asked
	}
	set := privilegeSet(r.Href[0], bookPath)
	for i := range r.Propstats {
		if strings.Contains(r.Propstats[i].Status, " 200 ") {
			r.Propstats[i].Prop.Elems = append(r.Propstats[i].Prop.Elems, set)
			return true
		}
	}
	r.Propstats = append(r.Propstats, propstat{Prop: prop{Elems: []rawElement{set}}, Status: "HTTP/1.1 200 OK"})
	return true
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

// serveWithPrivileges runs a PROPFIND through h and answers the privilege
// property in its multistatus.
func serveWithPrivileges(w http.ResponseWriter, r *http.Request, h http.Handler, bookPath string) {
	rec := &recorder{header: w.Header()}
	h.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	if rec.status == http.StatusMultiStatus {
		if out, err := answerPrivileges(body, bookPath); err == nil {
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
