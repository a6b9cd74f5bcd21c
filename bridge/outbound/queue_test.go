package outbound

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
	"github.com/asmtp/asmtp/bridge/smtpserver"
)

func TestResolveRecipient(t *testing.T) {
	e := accountstest.NewEnv(t)
	q := NewQueue("asmtp", e.Reg, e.Mail, nil)
	e.AddAccount(t, "alice")
	carol := accountstest.NewOutsider(t)
	if _, err := e.Reg.AddContact(context.Background(), "alice", "Carol", carol.Passport.Export()); err != nil {
		t.Fatal(err)
	}
	stranger := passport.Hash{1, 2, 3}
	for _, c := range []struct {
		addr   string
		want   passport.Hash
		status [3]int // zero: accepted
		says   string
	}{
		{addr: carol.Passport.ID().String() + "@asmtp", want: carol.Passport.ID()},
		{addr: strings.ToUpper(carol.Passport.ID().String()) + "@ASMTP", want: carol.Passport.ID()},
		{addr: "carol@asmtp", want: carol.Passport.ID()},
		{addr: stranger.String() + "@asmtp", want: stranger},
		{addr: "dave@asmtp", status: [3]int{5, 1, 1}, says: `No contact named "dave"`},
		{addr: "carol@example.org", status: [3]int{5, 1, 2}, says: "not an ASMTP address"},
		{addr: "carol", status: [3]int{5, 1, 3}, says: "not a mail address"},
		{addr: "@asmtp", status: [3]int{5, 1, 3}, says: "not a mail address"},
	} {
		got, err := q.resolveRecipient(context.Background(), "alice", c.addr)
		var rej *smtpserver.Rejection
		switch {
		case c.status == [3]int{} && (err != nil || got != c.want):
			t.Errorf("%s: %v, %v; want %v", c.addr, got, err, c.want)
		case c.status != [3]int{} && (!errors.As(err, &rej) || rej.Status != c.status || !strings.Contains(rej.Reason, c.says)):
			t.Errorf("%s: %v; want a %v rejection saying %q", c.addr, err, c.status, c.says)
		}
	}
}
