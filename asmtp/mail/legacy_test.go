package mail

import (
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"testing"
	"time"
)

func TestFormatLegacy(t *testing.T) {
	long := strings.Repeat("x", 70)
	cases := []struct {
		name    string
		text    string
		subject string
		body    string // decoded body
	}{
		{"plain", "Message to bob (0011)\nhello\n", "Message to bob (0011)", "Message to bob (0011)\r\nhello\r\n"},
		{"empty", "", LegacyNoSubject, ""},
		{"blank lines first", "\n  \n\tfirst line\t\nsecond", "first line", "\r\n  \r\n\tfirst line\t\r\nsecond"},
		{"utf-8", "café ✉ naïve\n", "café ✉ naïve", "café ✉ naïve\r\n"},
		{"invalid utf-8", "a\x80b\xff\n", "a\ufffdb\ufffd", "a\ufffdb\ufffd\r\n"},
		{"long subject", long + "\n", strings.Repeat("x", legacySubjectRunes-1) + "…", long + "\r\n"},
		{"control characters", "a\x00b\x1bc\r\rd", "abc", "a\x00b\x1bc\r\n\r\nd"},
		{"long non-ascii subject", strings.Repeat("✉", 70), strings.Repeat("✉", legacySubjectRunes-1) + "…", strings.Repeat("✉", 70)},
		{"long line", strings.Repeat("ab ", 400), strings.Repeat("ab ", 20)[:legacySubjectRunes-1] + "…", strings.Repeat("ab ", 400)},
		{"header lookalike", "From: mallory@example\r\n\r\nSubject: x", "From: mallory@example", "From: mallory@example\r\n\r\nSubject: x"},
	}
	h := LegacyHeader{
		From: netmail.Address{Name: "Älice", Address: "alice@asmtp.example"},
		To:   netmail.Address{Address: "bob@asmtp.example"},
		Date: time.Date(2021, 2, 17, 15, 32, 45, 0, time.UTC),
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := Message{ID: MessageID{0xab}, Kind: KindLegacyText, Data: []byte(c.text)}
			raw, err := FormatLegacy(m, h)
			if err != nil {
				t.Fatal(err)
			}
			for i, line := range strings.Split(string(raw), "\r\n") {
				if len(line) > 998 || strings.ContainsAny(line, "\r\n") {
					t.Fatalf("line %d is %d bytes or has a bare CR/LF", i, len(line))
				}
			}
			parsed, err := netmail.ReadMessage(strings.NewReader(string(raw)))
			if err != nil {
				t.Fatal(err)
			}
			var dec mime.WordDecoder
			subject, err := dec.DecodeHeader(parsed.Header.Get("Subject"))
			if err != nil {
				t.Fatal(err)
			}
			from, err := parsed.Header.AddressList("From")
			if err != nil {
				t.Fatal(err)
			}
			date, err := parsed.Header.Date()
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"Subject":      c.subject,
				"From":         from[0].Name + " " + from[0].Address,
				"Message-ID":   parsed.Header.Get("Message-ID"),
				"Content-Type": parsed.Header.Get("Content-Type"),
				"Date":         date.UTC().String(),
			}
			got := map[string]string{
				"Subject":      subject,
				"From":         "Älice alice@asmtp.example",
				"Message-ID":   "<ab000000000000000000000000000000@legacy.asmtp.invalid>",
				"Content-Type": "text/plain; charset=utf-8",
				"Date":         h.Date.String(),
			}
			for k := range want {
				if got[k] != want[k] {
					t.Errorf("%s = %q, want %q", k, want[k], got[k])
				}
			}
			body, err := io.ReadAll(quotedprintable.NewReader(parsed.Body))
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != c.body {
				t.Fatalf("body %q, want %q", body, c.body)
			}
		})
	}
}

func TestFormatLegacyRejects(t *testing.T) {
	good := LegacyHeader{From: netmail.Address{Address: "a@x"}, To: netmail.Address{Address: "b@x"}, Date: time.Unix(1, 0)}
	cases := []struct {
		name string
		m    Message
		h    LegacyHeader
		want error
	}{
		{"mail kind", Message{Kind: KindMail}, good, ErrNotLegacy},
		{"no from", Message{Kind: KindLegacyText}, LegacyHeader{To: good.To, Date: good.Date}, nil},
		{"no to", Message{Kind: KindLegacyText}, LegacyHeader{From: good.From, Date: good.Date}, nil},
		{"no date", Message{Kind: KindLegacyText}, LegacyHeader{From: good.From, To: good.To}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := FormatLegacy(c.m, c.h)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}
