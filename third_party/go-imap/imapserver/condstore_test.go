package imapserver_test

import (
	"bufio"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// condStoreSession is an in-memory session that records the CONDSTORE and
// QRESYNC options the server parsed and reports mod-sequence 7.
type condStoreSession struct {
	imapserver.Session
	got any // the options of the last command
}

func (s *condStoreSession) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.got = *options
	data, err := s.Session.Select(name, options)
	if data != nil {
		data.HighestModSeq = 7
	}
	return data, err
}

func (s *condStoreSession) HighestModSeq() uint64 { return 7 }

func (s *condStoreSession) Resync(w *imapserver.FetchWriter, q *imap.SelectQResync) error {
	s.got = *q
	return w.WriteVanished(imap.UIDSetNum(2, 3))
}

func (s *condStoreSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	s.got = *options
	rw := w.CreateMessage(1)
	rw.WriteModSeq(5)
	return rw.Close()
}

func (s *condStoreSession) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	s.got = *options
	return &imap.Error{Type: imap.StatusResponseTypeOK, Code: "MODIFIED 1", Text: "Conditional STORE failed"}
}

func (s *condStoreSession) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	s.got = *criteria.ModSeq
	return &imap.SearchData{All: imap.SeqSetNum(1), ModSeq: 6}, nil
}

func (s *condStoreSession) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	s.got = *options
	return &imap.StatusData{Mailbox: name, HighestModSeq: 7}, nil
}

// TestCondStoreQResync sends each command of CONDSTORE and QRESYNC over TCP
// and checks what the session was given and what the client read.
func TestCondStoreQResync(t *testing.T) {
	session := startCondStoreServer(t)
	c := dialCondStore(t, session.addr)
	c.expect(t, "LOGIN user pass", "OK")
	c.expect(t, `SELECT INBOX (QRESYNC (1 2))`, "BAD") // not enabled yet
	for _, tc := range []struct {
		cmd      string
		got      any
		untagged string // a line among the untagged ones
		status   string
	}{
		{"SELECT INBOX (CONDSTORE)", imap.SelectOptions{CondStore: true}, "* OK [HIGHESTMODSEQ 7] Highest", "OK [READ-WRITE]"},
		{"ENABLE QRESYNC", nil, "* ENABLED QRESYNC", "OK"},
		{"SELECT INBOX (QRESYNC (5 9 1:4 (1:2 3,4)))", imap.SelectQResync{UIDValidity: 5, ModSeq: 9, KnownUIDs: imap.UIDSet{{Start: 1, Stop: 4}},
			SeqMatch: &imap.SelectSeqMatch{SeqNums: imap.SeqSet{{Start: 1, Stop: 2}}, UIDs: imap.UIDSetNum(3, 4)}}, "* VANISHED (EARLIER) 2:3", "OK [READ-WRITE]"},
		{"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 3 VANISHED)", imap.FetchOptions{Flags: true, UID: true, ModSeq: true, ChangedSince: 3, Vanished: true},
			"* 1 FETCH (MODSEQ (5))", "OK"},
		{"FETCH 1 (MODSEQ)", imap.FetchOptions{ModSeq: true}, "* 1 FETCH (MODSEQ (5))", "OK"},
		{`STORE 1 (UNCHANGEDSINCE 4) +FLAGS (\Seen)`, imap.StoreOptions{UnchangedSince: 4, HasUnchangedSince: true}, "", "OK [MODIFIED 1]"},
		{`STORE 1 (UNCHANGEDSINCE 0) +FLAGS (\Seen)`, imap.StoreOptions{HasUnchangedSince: true}, "", "OK"},
		{`STORE 1 +FLAGS (\Seen)`, imap.StoreOptions{}, "", "OK"},
		{`SEARCH MODSEQ "/flags/\\Seen" all 6`, imap.SearchCriteriaModSeq{ModSeq: 6, MetadataName: `/flags/\Seen`,
			MetadataType: imap.SearchCriteriaMetadataAll}, "* SEARCH 1 (MODSEQ 6)", "OK"},
		{"STATUS INBOX (HIGHESTMODSEQ)", imap.StatusOptions{HighestModSeq: true}, "* STATUS INBOX (HIGHESTMODSEQ 7)", "OK"},
		{"SELECT INBOX (QRESYNC (5 9 1:4 (1:3 3,4)))", nil, "", "BAD"}, // sequence match sets of different sizes
		{"SELECT INBOX (QRESYNC (5 9 1:4 (1:* 3:4)))", nil, "", "BAD"},
		{"SELECT INBOX", nil, "", "OK"},
		{"FETCH 1 (FLAGS) (VANISHED)", nil, "", "BAD"}, // VANISHED needs UID FETCH and CHANGEDSINCE
		{"FETCH 1 (FLAGS) (CHANGEDSINCE)", nil, "", "BAD"},
	} {
		session.got = nil
		untagged := c.expect(t, tc.cmd, tc.status)
		if tc.got != nil && !reflect.DeepEqual(session.got, tc.got) {
			t.Errorf("%s: session got %+v, want %+v", tc.cmd, session.got, tc.got)
		}
		if tc.untagged != "" && !strings.Contains(strings.Join(untagged, "\n"), tc.untagged) {
			t.Errorf("%s: untagged %q, want %q among them", tc.cmd, untagged, tc.untagged)
		}
	}
}

type condStoreServer struct {
	*condStoreSession
	addr string
}

func startCondStoreServer(t *testing.T) condStoreServer {
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("user", "pass")
	user.Create("INBOX", nil)
	mem.AddUser(user)
	session := &condStoreSession{Session: mem.NewSession()}
	server := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return session, nil, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapCondStore: {}, imap.CapQResync: {}},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go server.Serve(ln)
	t.Cleanup(func() { server.Close() })
	return condStoreServer{session, ln.Addr().String()}
}

type condStoreClient struct {
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func dialCondStore(t *testing.T, addr string) *condStoreClient {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &condStoreClient{conn: conn, r: bufio.NewReader(conn)}
	if _, err := c.r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	return c
}

// expect sends cmd and checks that the tagged status starts with status;
// it returns the untagged lines.
func (c *condStoreClient) expect(t *testing.T, cmd string, status string) []string {
	t.Helper()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	fmt.Fprintf(c.conn, "%s %s\r\n", tag, cmd)
	var untagged []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if !strings.HasPrefix(rest, status) {
				t.Errorf("%s: %q, want %q", cmd, rest, status)
			}
			return untagged
		}
		untagged = append(untagged, line)
	}
}
