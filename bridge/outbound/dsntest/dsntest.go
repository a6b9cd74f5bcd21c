// Package dsntest checks delivery status notifications (RFC 3464
// multipart/report messages) in tests: the bounces and delay reports
// bridge/outbound puts in a sender's INBOX.
package dsntest

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"strings"
	"testing"
)

// CheckBounce checks that raw is an RFC 3464 report on the failed
// delivery to rcpt, with the given status.
func CheckBounce(t testing.TB, raw []byte, rcpt, status string) {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("bounce Content-Type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	var text, report string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(p)
		types = append(types, p.Header.Get("Content-Type"))
		switch {
		case strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain"):
			text = string(data)
		case p.Header.Get("Content-Type") == "message/delivery-status":
			report = string(data)
		}
	}
	if len(types) != 3 || types[2] != "text/rfc822-headers" {
		t.Errorf("bounce parts %v, want text, delivery-status, headers", types)
	}
	for _, want := range []string{"Final-Recipient: rfc822; " + rcpt, "Action: failed", "Status: " + status, "Reporting-MTA: dns; asmtp"} {
		if !strings.Contains(report, want) {
			t.Errorf("delivery-status lacks %q:\n%s", want, report)
		}
	}
	if !strings.Contains(text, rcpt) {
		t.Errorf("bounce text does not name the recipient:\n%s", text)
	}
}

// CheckReport checks that raw is an RFC 3464 report with the given action
// and status on the delivery to rcpt, and returns its delivery-status part.
func CheckReport(t testing.TB, raw []byte, rcpt, action, status string) string {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("report Content-Type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var report string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if data, _ := io.ReadAll(p); p.Header.Get("Content-Type") == "message/delivery-status" {
			report = string(data)
		}
	}
	for _, want := range []string{"Final-Recipient: rfc822; " + rcpt, "Action: " + action, "Status: " + status} {
		if !strings.Contains(report, want) {
			t.Errorf("delivery-status lacks %q:\n%s", want, report)
		}
	}
	return report
}
