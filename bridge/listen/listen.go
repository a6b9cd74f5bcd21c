// Package listen opens the sockets mail clients connect to, under the
// bridge's rule: plain text only on loopback, where passwords and mail never
// cross a network. Its Group runs the IMAP and SMTP servers' listeners with
// that rule, a connection limit, implicit TLS and one Close.
package listen

import (
	"fmt"
	"net"
)

// IsLoopback reports whether addr's host is a loopback IP or "localhost".
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Open listens on TCP addr, refusing a non-loopback address unless the
// server has TLS.
func Open(addr string, tls bool) (net.Listener, error) {
	if !tls && !IsLoopback(addr) {
		return nil, fmt.Errorf("refusing to listen on %s without TLS: passwords and mail would cross the network in clear text; "+
			"listen on 127.0.0.1 or configure TLS", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}
