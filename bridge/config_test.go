package bridge

import (
	"strings"
	"testing"

	"github.com/asmtp/asmtp/bridge/accounts"
)

func TestWriteSettings(t *testing.T) {
	a := accounts.Account{Name: "alice"}
	base := Config{Domain: "asmtp", IMAPAddr: "127.0.0.1:1143", SMTPAddr: "127.0.0.1:1587"}
	withTLS := base
	withTLS.IMAPSAddr, withTLS.SMTPSAddr = "[::]:993", "[::]:465"
	withDAV := base
	withDAV.CardDAVAddr = "127.0.0.1:1808"
	davTLS := withTLS
	davTLS.TLS, davTLS.CardDAVAddr = true, "0.0.0.0:1808"
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"plain ports", base, "address: " + a.Address("asmtp").String() + "\nimap: 127.0.0.1:1143\nsmtp: 127.0.0.1:1587\nusername: alice\npassword: pw\n"},
		{"carddav", withDAV, "address: " + a.Address("asmtp").String() + "\nimap: 127.0.0.1:1143\nsmtp: 127.0.0.1:1587\ncarddav: http://127.0.0.1:1808/\nusername: alice\npassword: pw\n"},
		{"carddav beyond loopback is https", davTLS, "address: " + a.Address("asmtp").String() + "\nimap: 127.0.0.1:1143\nsmtp: 127.0.0.1:1587\nimaps: [::]:993\nsmtps: [::]:465\ncarddav: https://0.0.0.0:1808/\nusername: alice\npassword: pw\n"},
		{"implicit TLS", withTLS, "address: " + a.Address("asmtp").String() + "\nimap: 127.0.0.1:1143\nsmtp: 127.0.0.1:1587\nimaps: [::]:993\nsmtps: [::]:465\nusername: alice\npassword: pw\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteSettings(&b, tt.cfg, a, "pw"); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tt.want)
			}
		})
	}
}
