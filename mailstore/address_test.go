package mailstore

import (
	"fmt"
	"testing"
)

// TestParseAddressList: ENVELOPE keeps groups and reads route addresses
// and addresses with comments, as Dovecot does.
func TestParseAddressList(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`a@x.example`, `[{ a x.example}]`},
		{`"Doe, Jane" <jane@example.com>, bob@example.org`, `[{Doe, Jane jane example.com} { bob example.org}]`},
		{`g: a@x.example, b@y.example;, c@z.example`, `[{ g } { a x.example} { b y.example} {  } { c z.example}]`},
		{`undisclosed-recipients:;`, `[{ undisclosed-recipients } {  }]`},
		{`Joe <@relay.example,@other.example:joe@example.com>`, `[{Joe joe example.com}]`},
		{`<user (comment)@ (comment) example.com>`, `[{ user example.com}]`},
		{`=?utf-8?q?Gr=C3=BCppe?=: =?utf-8?q?J=C3=BCrgen?= <j@example.de>;`, `[{ Grüppe } {Jürgen j example.de} {  }]`},
		{`not an address`, `[]`},
	} {
		if got := fmt.Sprint(parseAddressList(tc.in)); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}
