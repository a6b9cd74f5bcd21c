package carddav

import (
	"encoding/xml"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// AutoconfigPaths are where the autoconfig file is served. Thunderbird
// fetches mailnews.auto_config_url with the address's domain appended
// (set it to http://127.0.0.1:1808/autoconfig/, and a new
// <id>@asmtp account gets /autoconfig/asmtp): no root, no DNS, and it
// survives upgrades. The other two are where Thunderbird looks on a
// mail domain's own web server.
var AutoconfigPaths = []string{
	"/autoconfig/",
	"/mail/config-v1.1.xml",
	"/.well-known/autoconfig/mail/config-v1.1.xml",
}

// Autoconfig is what the bridge tells mail clients about its servers.
// Empty implicit-TLS addresses are off.
type Autoconfig struct {
	IMAPAddr, SMTPAddr   string
	IMAPSAddr, SMTPSAddr string
	// STARTTLS is on for IMAP and SMTP (bridge TLS).
	STARTTLS bool
	// CardDAVAddr is this server's address.
	CardDAVAddr string
}

// The Thunderbird autoconfig format, version 1.1 (the subset used).
type clientConfig struct {
	XMLName     xml.Name      `xml:"clientConfig"`
	Version     string        `xml:"version,attr"`
	Provider    emailProvider `xml:"emailProvider"`
	AddressBook *addressBook  `xml:"addressBook,omitempty"`
}

type emailProvider struct {
	ID          string         `xml:"id,attr"`
	Domain      string         `xml:"domain"`
	DisplayName string         `xml:"displayName"`
	ShortName   string         `xml:"displayShortName"`
	Incoming    []serverConfig `xml:"incomingServer"`
	Outgoing    []serverConfig `xml:"outgoingServer"`
}

type serverConfig struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Authentication string `xml:"authentication"`
	Username       string `xml:"username"`
}

type addressBook struct {
	Type           string `xml:"type,attr"`
	Username       string `xml:"username"`
	Authentication string `xml:"authentication"`
	ServerURL      string `xml:"serverURL"`
}

// usernameRule: the full address logs in (so does the account name the
// bridge printed, but autoconfig only knows the address).
const usernameRule = "%EMAILADDRESS%"

// serveAutoconfig answers GET for the bridge's domain: the servers' real
// ports, the username rule and the address book.
func (s *Server) serveAutoconfig(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Only GET", http.StatusMethodNotAllowed)
		return
	}
	if dir, domain := path.Split(r.URL.Path); dir == "/autoconfig/" && !strings.EqualFold(domain, s.opts.Domain) {
		http.Error(w, "No configuration for "+domain+": this bridge serves "+s.opts.Domain, http.StatusNotFound)
		return
	}
	requestHost, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		requestHost = r.Host
	}
	out, err := xml.MarshalIndent(s.clientConfig(requestHost), "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Write([]byte(xml.Header))
	w.Write(out)
	w.Write([]byte("\n"))
}

func (s *Server) clientConfig(requestHost string) clientConfig {
	a := s.opts.Autoconfig
	plain := "plain"
	if a.STARTTLS {
		plain = "STARTTLS"
	}
	server := func(typ, addr, socket string) []serverConfig {
		if addr == "" {
			return nil
		}
		host, port := hostPort(addr, requestHost)
		return []serverConfig{{Type: typ, Hostname: host, Port: port, SocketType: socket,
			Authentication: "password-cleartext", Username: usernameRule}}
	}
	c := clientConfig{
		Version: "1.1",
		Provider: emailProvider{
			ID: s.opts.Domain, Domain: s.opts.Domain,
			DisplayName: "ASMTP bridge on this computer", ShortName: "ASMTP",
			// The implicit-TLS ports first: Thunderbird takes the first
			// server of each kind it can use.
			Incoming: append(server("imap", a.IMAPSAddr, "SSL"), server("imap", a.IMAPAddr, plain)...),
			Outgoing: append(server("smtp", a.SMTPSAddr, "SSL"), server("smtp", a.SMTPAddr, plain)...),
		},
	}
	if a.CardDAVAddr != "" {
		host, port := hostPort(a.CardDAVAddr, requestHost)
		c.AddressBook = &addressBook{Type: "carddav", Username: usernameRule, Authentication: "http-basic",
			ServerURL: URL(net.JoinHostPort(host, strconv.Itoa(port)), s.opts.TLSConfig != nil)}
	}
	return c
}

// hostPort splits a listen address; a wildcard host (0.0.0.0, ::) is
// replaced by the host the client reached this server at.
func hostPort(addr, requestHost string) (string, int) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	port, _ := strconv.Atoi(p)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = requestHost
	}
	return host, port
}
