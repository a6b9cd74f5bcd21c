package accounts_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
	"github.com/asmtp/asmtp/bridge/carddav"
	"github.com/asmtp/asmtp/bridge/loginlimit"
)

// davEnv is a CardDAV server over a real registry, as the bridge runs it.
type davEnv struct {
	*accountstest.Env
	url string
}

func startDAV(t *testing.T, throttle loginlimit.Options) *davEnv {
	t.Helper()
	e := &davEnv{Env: accountstest.NewEnv(t)}
	srv, err := carddav.New(carddav.Options{
		Authenticator: accounts.NewAuthenticator(e.Reg, accounts.DefaultDomain, throttle),
		Book:          accounts.NewAddressBook(e.Reg),
		Domain:        accounts.DefaultDomain,
		Autoconfig:    carddav.Autoconfig{IMAPAddr: "127.0.0.1:2143", SMTPAddr: "127.0.0.1:2587", CardDAVAddr: "127.0.0.1:2808"},
		Logger:        accountstest.Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return e
}

// do sends one request with Basic credentials (none if user is "") and
// returns the status and body.
func (e *davEnv) do(t *testing.T, user, pw, method, path string, body []byte, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func testCard(name, addr string) []byte {
	return []byte("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:" + name + "\r\nFN:" + name + "\r\nEMAIL:" + addr + "\r\nEND:VCARD\r\n")
}

// contentType is the header a client sends with method's body.
func contentType(method string) []string {
	switch method {
	case "PUT":
		return []string{"Content-Type", "text/vcard"}
	case "PROPFIND", "REPORT":
		return []string{"Content-Type", "application/xml", "Depth", "1"}
	}
	return nil
}

const propfindETags = `<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>`

// TestCardDAVOtherAccountUnreachable: with alice's login, nothing of bob's
// book can be read, listed, written or deleted, by path or by address.
func TestCardDAVOtherAccountUnreachable(t *testing.T) {
	e := startDAV(t, loginlimit.Options{})
	ctx := context.Background()
	_, alicePW := e.AddAccount(t, "alice")
	bob, _ := e.AddAccount(t, "bob")
	carol := passport.Hash{1, 2, 3}
	if _, err := e.Reg.AddPendingContact(ctx, "bob", "Carol", carol); err != nil {
		t.Fatal(err)
	}
	bobsCard := "/dav/bob/books/contacts/" + carol.String() + ".vcf"
	for _, c := range []struct {
		name, method, path string
		body               []byte
	}{
		{"principal", "PROPFIND", "/dav/bob/", nil},
		{"home", "PROPFIND", "/dav/bob/books/", nil},
		{"book", "PROPFIND", "/dav/bob/books/contacts/", []byte(propfindETags)},
		{"card", "GET", bobsCard, nil},
		{"card by dot-dot", "GET", "/dav/alice/books/contacts/../../../bob/books/contacts/" + carol.String() + ".vcf", nil},
		{"put", "PUT", "/dav/bob/books/contacts/new.vcf", testCard("Mallory", bob.Address("asmtp").String())},
		{"overwrite", "PUT", bobsCard, testCard("Renamed", carol.String()+"@asmtp")},
		{"delete", "DELETE", bobsCard, nil},
		{"delete book", "DELETE", "/dav/bob/books/contacts/", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := e.do(t, "alice", alicePW, c.method, c.path, c.body, contentType(c.method)...)
			if status != http.StatusNotFound && status != http.StatusForbidden || strings.Contains(body, "Carol") ||
				strings.Contains(body, "X-ASMTP-PASSPORT") {
				t.Errorf("%s %s as alice: %d %.300s; want 404 or 403 and nothing of bob's", c.method, c.path, status, body)
			}
		})
	}
	contacts, err := e.Reg.Contacts(ctx, "bob")
	if err != nil || len(contacts) != 1 || contacts[0].Name != "Carol" {
		t.Errorf("bob's contacts after alice's attempts: %+v, %v; want Carol alone", contacts, err)
	}
	if alices, _ := e.Reg.Contacts(ctx, "alice"); len(alices) != 0 {
		t.Errorf("alice's contacts: %+v, want none", alices)
	}
}

// TestCardDAVRefusals: requests that must not reach the address book.
// Before the size check, a 10 MiB card was read whole and refused only by
// the vCard parser.
func TestCardDAVRefusals(t *testing.T) {
	// After two failures the next check is a minute away: refused unchecked.
	e := startDAV(t, loginlimit.Options{FreeFailures: 1, Penalty: time.Minute, MaxPenalty: time.Minute,
		MaxSourcePenalty: time.Minute, MaxWait: time.Second})
	_, alicePW := e.AddAccount(t, "alice")
	book := "/dav/alice/books/contacts/"
	bigCard := testCard("Big", strings.Repeat("0", 32)+"@asmtp")
	bigCard = append(bigCard[:len(bigCard)-len("END:VCARD\r\n")], []byte("NOTE:"+strings.Repeat("x", 10<<20)+"\r\nEND:VCARD\r\n")...)
	for _, c := range []struct {
		name, method, path, user, pw string
		body                         []byte
		want                         int
	}{
		{"no login", "PROPFIND", book, "", "", nil, http.StatusUnauthorized},
		{"card over the size limit", "PUT", book + "big.vcf", "alice", alicePW, bigCard, http.StatusRequestEntityTooLarge},
		{"card without an ASMTP address", "PUT", book + "x.vcf", "alice", alicePW, testCard("Eve", "eve@example.org"), http.StatusBadRequest},
		{"card with a control character in the name", "PUT", book + "x.vcf", "alice", alicePW,
			testCard("Ev\u202ee", strings.Repeat("1", 32)+"@asmtp"), http.StatusBadRequest},
		{"new address book", "MKCOL", "/dav/alice/books/other/", "alice", alicePW, nil, http.StatusForbidden},
		{"wrong password", "PROPFIND", book, "alice", "wrong", nil, http.StatusUnauthorized},
		{"second wrong password", "PROPFIND", book, "alice", "wrong", nil, http.StatusUnauthorized},
		{"right password while throttled", "PROPFIND", book, "alice", alicePW, nil, http.StatusTooManyRequests},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := e.do(t, c.user, c.pw, c.method, c.path, c.body, contentType(c.method)...)
			if status != c.want {
				t.Errorf("%s %s: %d %.200s; want %d", c.method, c.path, status, body, c.want)
			}
		})
	}
	if contacts, _ := e.Reg.Contacts(context.Background(), "alice"); len(contacts) != 0 {
		t.Errorf("contacts after refused requests: %+v", contacts)
	}
}

// TestCardDAVAddRenameRemove: a card put by a client becomes a pending
// contact, served where the client put it with the client's UID (also at
// <passport-id>.vcf); a new FN renames it (and changes its ETag); a rename
// by the registry (asmtpd-cli) shows in the card; a second card with the
// same address is refused; DELETE removes the contact.
func TestCardDAVAddRenameRemove(t *testing.T) {
	e := startDAV(t, loginlimit.Options{})
	ctx := context.Background()
	_, pw := e.AddAccount(t, "alice")
	id := passport.Hash{9, 8, 7}
	addr := id.String() + "@asmtp"
	book := "/dav/alice/books/contacts/"
	canonical := book + "client-uid.vcf" // where the client put it

	if status, body := e.do(t, "alice", pw, "PUT", canonical, testCard("Dave", addr), "Content-Type", "text/vcard", "If-None-Match", "*"); status != http.StatusCreated {
		t.Fatalf("PUT new card: %d %s", status, body)
	}
	c, err := e.Reg.Contact(ctx, "alice", id)
	if err != nil || c.Name != "Dave" || !c.Pending() {
		t.Fatalf("contact after PUT: %+v, %v; want pending Dave", c, err)
	}
	for _, at := range []string{canonical, book + id.String() + ".vcf"} {
		status, card := e.do(t, "alice", pw, "GET", at, nil)
		for _, want := range []string{"VERSION:4.0", "UID:Dave\r\n", "FN:Dave", "EMAIL:" + addr, "X-ASMTP-PASSPORT:" + id.String()} {
			if status != http.StatusOK || !strings.Contains(card, want) {
				t.Fatalf("GET %s: %d\n%s\nwant %s", at, status, card, want)
			}
		}
	}
	for _, ifNoneMatch := range []string{"*", ""} {
		status, body := e.do(t, "alice", pw, "PUT", book+"another.vcf", testCard("Dave again", addr), "Content-Type", "text/vcard", "If-None-Match", ifNoneMatch)
		if status != http.StatusPreconditionFailed && status != http.StatusConflict || !strings.Contains(body, "client-uid.vcf") {
			t.Errorf("a second card for Dave's address (If-None-Match %q): %d %s; want 412 or 409 naming the card", ifNoneMatch, status, body)
		}
	}
	etag := func() string {
		_, ms := e.do(t, "alice", pw, "PROPFIND", book, []byte(propfindETags), contentType("PROPFIND")...)
		var m struct {
			Responses []struct {
				Href string `xml:"href"`
				ETag string `xml:"propstat>prop>getetag"`
			} `xml:"response"`
		}
		if err := xml.Unmarshal([]byte(ms), &m); err != nil {
			t.Fatalf("PROPFIND: %v\n%s", err, ms)
		}
		for _, r := range m.Responses {
			if r.Href == canonical {
				return r.ETag
			}
		}
		return ""
	}
	first := etag()
	if first == "" {
		t.Fatal("no ETag for the card in the book's listing")
	}
	if status, body := e.do(t, "alice", pw, "PUT", canonical, testCard("David", addr), "Content-Type", "text/vcard", "If-Match", first); status != http.StatusCreated {
		t.Fatalf("PUT rename: %d %s", status, body)
	}
	if c, err := e.Reg.Contact(ctx, "alice", id); err != nil || c.Name != "David" {
		t.Fatalf("after the client's rename: %+v, %v", c, err)
	}
	if status, _ := e.do(t, "alice", pw, "PUT", canonical, testCard("Stale", addr), "Content-Type", "text/vcard", "If-Match", first); status != http.StatusPreconditionFailed {
		t.Errorf("PUT with a stale If-Match: %d, want 412", status)
	}
	second := etag()
	if _, err := e.Reg.RenameContact(ctx, "alice", "David", "Dai"); err != nil {
		t.Fatal(err)
	}
	if third := etag(); third == second || second == first {
		t.Errorf("ETags %s, %s, %s: want each rename to change it", first, second, third)
	}
	if _, card := e.do(t, "alice", pw, "GET", canonical, nil); !strings.Contains(card, "FN:Dai") {
		t.Errorf("card after the registry's rename:\n%s", card)
	}
	if status, body := e.do(t, "alice", pw, "DELETE", canonical, nil); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	if _, err := e.Reg.Contact(ctx, "alice", id); err != accounts.ErrNoContact {
		t.Errorf("contact after DELETE: %v, want accounts.ErrNoContact", err)
	}
}

// TestAutoconfig: served without a login, for the bridge's domain only,
// with the configured ports and the full address as username.
func TestAutoconfig(t *testing.T) {
	e := startDAV(t, loginlimit.Options{})
	for _, path := range []string{"/autoconfig/asmtp", "/autoconfig/ASMTP", "/mail/config-v1.1.xml?emailaddress=x%40asmtp",
		"/.well-known/autoconfig/mail/config-v1.1.xml"} {
		status, body := e.do(t, "", "", "GET", path, nil)
		for _, want := range []string{"<port>2143</port>", "<port>2587</port>", "<username>%EMAILADDRESS%</username>",
			"<socketType>plain</socketType>", "<serverURL>http://127.0.0.1:2808/</serverURL>", "<domain>asmtp</domain>"} {
			if status != http.StatusOK || !strings.Contains(body, want) {
				t.Errorf("GET %s: %d, want %s in\n%s", path, status, want, body)
			}
		}
	}
	if status, _ := e.do(t, "", "", "GET", "/autoconfig/example.org", nil); status != http.StatusNotFound {
		t.Errorf("autoconfig for another domain: %d, want 404", status)
	}
	if status, _ := e.do(t, "", "", "PUT", "/autoconfig/asmtp", []byte("x")); status != http.StatusMethodNotAllowed {
		t.Errorf("PUT autoconfig: %d, want 405", status)
	}
}

// TestCardDAVThunderbirdDiscovery follows Thunderbird's address book
// discovery (CardDAVUtils.detectAddressBooks): /.well-known/carddav for
// the principal, its addressbook-home-set, then a Depth 1 PROPFIND there,
// keeping books whose first status is 200 and whose
// current-user-privilege-set grants read or write. go-webdav alone
// answered that property with an empty set, and Thunderbird found no book.
func TestCardDAVThunderbirdDiscovery(t *testing.T) {
	e := startDAV(t, loginlimit.Options{})
	addr, pw := e.AddAccount(t, "alice")
	login := addr.Address("asmtp").String()
	propfind := func(path, depth, props string) string {
		t.Helper()
		body := `<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav"><prop>` + props + `</prop></propfind>`
		status, ms := e.do(t, login, pw, "PROPFIND", path, []byte(body), "Content-Type", "text/xml", "Depth", depth)
		if status != http.StatusMultiStatus {
			t.Fatalf("PROPFIND %s: %d %s", path, status, ms)
		}
		return ms
	}
	hrefIn := func(ms, element string) string {
		_, after, ok := strings.Cut(ms, "<"+element)
		_, after, ok2 := strings.Cut(after, "<href")
		_, after, ok3 := strings.Cut(after, ">")
		href, _, ok4 := strings.Cut(after, "</href>")
		if !ok || !ok2 || !ok3 || !ok4 {
			t.Fatalf("no %s href in %s", element, ms)
		}
		return href
	}
	principal := hrefIn(propfind("/.well-known/carddav", "0", "<current-user-principal/>"), "current-user-principal")
	home := hrefIn(propfind(principal, "0", "<card:addressbook-home-set/>"), "addressbook-home-set")
	ms := propfind(home, "1", "<resourcetype/><displayname/><current-user-privilege-set/>")
	var m struct {
		Responses []struct {
			Href      string `xml:"href"`
			Propstats []struct {
				Book   *struct{} `xml:"prop>resourcetype>addressbook"`
				Privs  []string  `xml:"prop>current-user-privilege-set>privilege>write"`
				Status string    `xml:"status"`
			} `xml:"propstat"`
		} `xml:"response"`
	}
	if err := xml.Unmarshal([]byte(ms), &m); err != nil {
		t.Fatalf("%v\n%s", err, ms)
	}
	found := false
	for _, r := range m.Responses {
		first := r.Propstats[0]
		if first.Book == nil {
			continue
		}
		if first.Status != "HTTP/1.1 200 OK" || len(first.Privs) != 1 || len(r.Propstats) != 1 {
			t.Errorf("book %s: propstats %+v, want one 200 with the write privilege\n%s", r.Href, r.Propstats, ms)
		}
		found = r.Href == "/dav/alice/books/contacts/"
	}
	if !found {
		t.Errorf("no address book found in\n%s", ms)
	}
}

// TestCardDAVPendingContactsBounded: every pending contact is a passport
// the bridge looks for on the network each RefreshInterval, so a client
// cannot add them without bound. Before the bound, all 101 cards were
// taken.
func TestCardDAVPendingContactsBounded(t *testing.T) {
	e := startDAV(t, loginlimit.Options{})
	_, pw := e.AddAccount(t, "alice")
	put := func(i int) (int, string) {
		id := passport.Hash{byte(i >> 8), byte(i), 0xee}
		return e.do(t, "alice", pw, "PUT", "/dav/alice/books/contacts/"+id.String()+".vcf",
			testCard(fmt.Sprintf("Pending %d", i), id.String()+"@asmtp"), contentType("PUT")...)
	}
	for i := range accounts.MaxPendingContacts {
		if status, body := put(i); status != http.StatusCreated {
			t.Fatalf("card %d: %d %s", i, status, body)
		}
	}
	status, body := put(accounts.MaxPendingContacts)
	if status != http.StatusInsufficientStorage || !strings.Contains(body, "pending") {
		t.Errorf("card %d: %d %s; want 507 saying too many contacts are pending", accounts.MaxPendingContacts, status, body)
	}
	if contacts, _ := e.Reg.Contacts(context.Background(), "alice"); len(contacts) != accounts.MaxPendingContacts {
		t.Errorf("%d contacts, want %d", len(contacts), accounts.MaxPendingContacts)
	}
}

// TestCardDAVCTag: the book's CS:getctag, which go-webdav does not know,
// is answered, stays while nothing changes, and changes when a contact is
// added or renamed through the registry (as asmtpd-cli does).
func TestCardDAVCTag(t *testing.T) {
	e := startDAV(t, loginlimit.Options{})
	ctx := context.Background()
	_, pw := e.AddAccount(t, "alice")
	ctag := func() string {
		t.Helper()
		body := `<propfind xmlns="DAV:" xmlns:cs="http://calendarserver.org/ns/"><prop><cs:getctag/><getetag/></prop></propfind>`
		status, ms := e.do(t, "alice", pw, "PROPFIND", "/dav/alice/books/contacts/", []byte(body), "Content-Type", "text/xml", "Depth", "0")
		var m struct {
			Propstats []struct {
				CTag   string `xml:"prop>getctag"`
				Status string `xml:"status"`
			} `xml:"response>propstat"`
		}
		if err := xml.Unmarshal([]byte(ms), &m); status != http.StatusMultiStatus || err != nil {
			t.Fatalf("PROPFIND: %d %v\n%s", status, err, ms)
		}
		for _, ps := range m.Propstats {
			if ps.CTag != "" && ps.Status == "HTTP/1.1 200 OK" {
				return ps.CTag
			}
		}
		t.Fatalf("no getctag in a 200 propstat:\n%s", ms)
		return ""
	}
	empty := ctag()
	if again := ctag(); again != empty {
		t.Errorf("CTag moved without a change: %s, %s", empty, again)
	}
	if _, err := e.Reg.AddPendingContact(ctx, "alice", "Dave", passport.Hash{4}); err != nil {
		t.Fatal(err)
	}
	added := ctag()
	if _, err := e.Reg.RenameContact(ctx, "alice", "Dave", "David"); err != nil {
		t.Fatal(err)
	}
	if renamed := ctag(); added == empty || renamed == added {
		t.Errorf("CTags %s (empty), %s (added), %s (renamed): want each change to move it", empty, added, renamed)
	}
}
