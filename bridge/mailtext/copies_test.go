package mailtext

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/accounts"
)

// generatedID matches a Message-ID the bridge made.
var generatedID = regexp.MustCompile(`<[0-9a-f]{32}@asmtp>`)

func TestInboundCopy(t *testing.T) {
	carol := accounts.Contact{Name: "Carol", Passport: passport.Hash{0xca}}
	id := carol.Passport.String()
	want := func(rest string) string {
		return "X-ASMTP-Sender: " + id + "\r\nFrom: \"Carol\" <" + id + "@asmtp>\r\n" + rest
	}
	for _, c := range []struct{ name, in, want string }{
		{"plain",
			"From: Carol <carol@example.org>\r\nSubject: hi\r\n\r\nbody\r\n",
			want("X-ASMTP-Original-From: Carol <carol@example.org>\r\nSubject: hi\r\n\r\nbody\r\n")},
		{"forged sender fields removed, folded From kept whole",
			"X-ASMTP-Sender: 00000000000000000000000000000000\r\nFrom: The Bank\r\n <ceo@bank.example>\r\nx-asmtp-original-from: lies\r\nTo: x\r\n\r\nbody",
			want("X-ASMTP-Original-From: The Bank\r\n <ceo@bank.example>\r\nTo: x\r\n\r\nbody")},
		{"a sender-written Sender is removed: no \"on behalf of\" line in the client",
			"From: alice@x\r\nSender: Bob <" + id + "@asmtp>\r\nsender:\r\n folded@y\r\nSubject: s\r\n\r\nbody",
			want("X-ASMTP-Original-From: alice@x\r\nSubject: s\r\n\r\nbody")},
		{"two From fields",
			"From: a@x\r\nFrom: b@y\r\n\r\n",
			want("X-ASMTP-Original-From: a@x\r\nX-ASMTP-Original-From: b@y\r\n\r\n")},
		{"no From",
			"Subject: s\r\n\r\nbody\r\n",
			want("Subject: s\r\n\r\nbody\r\n")},
		{"From that is just the verified address is not repeated",
			"From: <" + strings.ToUpper(id) + "@ASMTP>\r\nSubject: s\r\n\r\nbody",
			want("Subject: s\r\n\r\nbody")},
		{"the sender's own display name is kept",
			"From: Carol C. <" + id + "@asmtp>\r\n\r\n",
			want("X-ASMTP-Original-From: Carol C. <" + id + "@asmtp>\r\n\r\n")},
		{"bare LF line ends kept",
			"From: c@x\nSubject: s\n\nbody\nmore\n",
			want("X-ASMTP-Original-From: c@x\nSubject: s\n\nbody\nmore\n")},
		{"no header at all: all body",
			"just text\r\n",
			want("\r\njust text\r\n")},
		{"header only, no line end",
			"Subject: s",
			want("Subject: s\r\n\r\n")},
		{"empty body line that looks like a header stays in the body",
			"Subject: s\r\n\r\nFrom: not a header\r\n",
			want("Subject: s\r\n\r\nFrom: not a header\r\n")},
	} {
		if got := string(InboundCopy([]byte(c.in), carol, "asmtp")); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
	// A petname that needs encoding is encoded.
	carol.Name = "Čarol ✓"
	if got := string(InboundCopy([]byte("\r\n"), carol, "asmtp")); !strings.Contains(got, "From: =?utf-8?q?") {
		t.Errorf("non-ASCII petname not encoded: %q", got)
	}
}

func TestOutgoingCopy(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const dated = "Date: Fri, 02 Jan 2026 03:04:05 +0000\r\nMessage-ID: <x@y>\r\n"
	for _, c := range []struct{ name, in, want string }{
		{"Bcc removed, To and Cc kept",
			dated + "To: a@asmtp\r\nCc: b@asmtp\r\nBcc: c@asmtp\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n",
			dated + "To: a@asmtp\r\nCc: b@asmtp\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n"},
		{"folded Bcc and Resent-Bcc removed whole, any case",
			dated + "bcc: c@asmtp,\r\n d@asmtp\r\nRESENT-BCC: e@asmtp\r\nSubject: s\r\n\r\nb",
			dated + "Subject: s\r\n\r\nb"},
		{"Date and Message-ID added when missing",
			"Subject: s\r\n\r\nbody",
			"Date: Fri, 02 Jan 2026 03:04:05 +0000\r\nMessage-ID: <ID@asmtp>\r\nSubject: s\r\n\r\nbody"},
		{"bare LF kept",
			dated + "Bcc: c@asmtp\nSubject: s\n\nbody\n",
			dated + "Subject: s\n\nbody\n"},
	} {
		got := generatedID.ReplaceAllString(string(OutgoingCopy([]byte(c.in), now, "asmtp")), "<ID@asmtp>")
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}

	// Near the size limit nothing is added that would push it over.
	big := make([]byte, mail.MaxMessageSize-10)
	copy(big, "Subject: s\r\n\r\n")
	if got := OutgoingCopy(big, now, "asmtp"); len(got) != len(big) {
		t.Errorf("a message at the limit grew to %d bytes", len(got))
	}
}
