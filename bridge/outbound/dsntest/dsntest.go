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

// part is one part of a report: its Content-Type and its text.
type part struct{ contentType, text string }

// parts reads raw as a multipart/report of report-type delivery-status;
// what names the report in failures ("bounce", "report").
func parts(t testing.TB, raw []byte, what string) []part {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("%s Content-Type %q", what, m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var ps []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return ps
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(p)
		ps = append(ps, part{p.Header.Get("Content-Type"), string(data)})
	}
}

// statusOf is the text of the message/delivery-status part, "" if none.
func statusOf(ps []part) string {
	for _, p := range ps {
		if p.contentType == "message/delivery-status" {
			return p.text
		}
	}
	return ""
}

// checkStatus checks that the delivery-status part says each of want.
func checkStatus(t testing.TB, report string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(report, w) {
			t.Errorf("delivery-status lacks %q:\n%s", w, report)
		}
	}
}

// CheckBounce checks that raw is an RFC 3464 report on the failed
// delivery to rcpt, with the given status.
func CheckBounce(t testing.TB, raw []byte, rcpt, status string) {
	t.Helper()
	ps := parts(t, raw, "bounce")
	var types []string
	var text string
	for _, p := range ps {
		types = append(types, p.contentType)
		if strings.HasPrefix(p.contentType, "text/plain") {
			text = p.text
		}
	}
	if len(types) != 3 || types[2] != "text/rfc822-headers" {
		t.Errorf("bounce parts %v, want text, delivery-status, headers", types)
	}
	checkStatus(t, statusOf(ps), "Final-Recipient: rfc822; "+rcpt, "Action: failed", "Status: "+status, "Reporting-MTA: dns; asmtp")
	if !strings.Contains(text, rcpt) {
		t.Errorf("bounce text does not name the recipient:\n%s", text)
	}
}

// CheckReport checks that raw is an RFC 3464 report with the given action
// and status for rcpt, and returns its delivery-status part.
func CheckReport(t testing.TB, raw []byte, rcpt, action, status string) string {
	t.Helper()
	report := statusOf(parts(t, raw, "report"))
	checkStatus(t, report, "Final-Recipient: rfc822; "+rcpt, "Action: "+action, "Status: "+status)
	return report
}
