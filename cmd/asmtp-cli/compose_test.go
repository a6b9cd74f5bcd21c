package main

import (
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/passport"
)

func TestComposeMail(t *testing.T) {
	env := envelope{
		from: pseudoAddress(passport.Hash{0xaa}),
		to:   pseudoAddress(passport.Hash{0xbb}),
		id:   mail.MessageID{0xcc},
		date: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	from := "From: <aa000000000000000000000000000000@asmtp>\r\n"
	to := "To: <bb000000000000000000000000000000@asmtp>\r\n"
	tests := []struct {
		name    string
		text    string
		want    []string // substrings of the composed message
		notWant []string
		subject string // as read back
		body    string // text part as read back
	}{
		{
			name:    "plain text",
			text:    "Hi Alice\nsecond line\n",
			want:    []string{from, to, "Date: Sun, 01 Mar 2026 12:00:00 +0000\r\n", "Message-ID: <cc000000000000000000000000000000@asmtp>\r\n", "Subject: Hi Alice\r\n", "Content-Type: text/plain; charset=utf-8\r\n"},
			subject: "Hi Alice",
			body:    "Hi Alice\nsecond line\n",
		},
		{
			name:    "a note that starts like a header",
			text:    "Note: buy milk\n\nthanks",
			want:    []string{"Subject: Note: buy milk\r\n"},
			subject: "Note: buy milk",
			body:    "Note: buy milk\n\nthanks\n",
		},
		{
			name:    "non-ASCII first line",
			text:    "Grüße\nbody",
			want:    []string{"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"},
			subject: "Grüße",
			body:    "Grüße\nbody\n",
		},
		{
			name:    "a whole message keeps its header but not its From",
			text:    "From: Mallory <m@example.com>\nTo: <bb000000000000000000000000000000@asmtp>\nSubject: Report\nContent-Type: text/plain; charset=utf-8\n\nAll good.\n",
			want:    []string{from, "Subject: Report\r\n", "\r\n\r\nAll good.\r\n"},
			notWant: []string{"m@example.com", "quoted-printable"},
			subject: "Report",
			body:    "All good.\n",
		},
		{
			name:    "a folded header field stays whole",
			text:    "Subject: a long\n subject\n\nbody\n",
			want:    []string{"Subject: a long\r\n subject\r\n", "MIME-Version: 1.0\r\n"},
			subject: "a long subject",
			body:    "body\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := string(composeMail([]byte(tc.text), env))
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("has %q:\n%s", w, got)
				}
			}
			if n := strings.Count(got, "\nTo: ") + strings.Count(got[:3], "To:"); n != 1 {
				t.Errorf("%d To fields:\n%s", n, got)
			}
			if strings.Contains(strings.ReplaceAll(got, "\r\n", ""), "\n") {
				t.Errorf("bare LF in:\n%q", got)
			}
			p := parseMessage(message{kind: mail.KindMail, data: []byte(got)})
			if p.subject != tc.subject || p.text != tc.body {
				t.Errorf("read back subject %q text %q, want %q %q", p.subject, p.text, tc.subject, tc.body)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name string
		m    message
		want string
	}{
		{"subject", message{kind: mail.KindMail, data: []byte("Subject: Hello\r\n\r\nbody\r\n")}, "Hello"},
		{"first line without a subject", message{kind: mail.KindMail, data: []byte("From: <a@asmtp>\r\n\r\n\r\n  first\r\nsecond\r\n")}, "first"},
		{"legacy text", message{kind: mail.KindLegacyText, data: []byte("\n\tupstream\x07 text\nmore")}, "upstream text"},
		{"empty", message{kind: mail.KindLegacyText, data: nil}, noSubject},
		{"long", message{kind: mail.KindLegacyText, data: []byte(strings.Repeat("é", 100))}, strings.Repeat("é", summaryRunes-1) + "…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := summary(tc.m); got != tc.want {
				t.Errorf("summary = %q, want %q", got, tc.want)
			}
		})
	}
}
