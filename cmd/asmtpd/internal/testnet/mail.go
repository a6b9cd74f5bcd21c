package testnet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Account is a bridge account, as `asmtpd-cli account add` printed it.
type Account struct {
	Name     string `json:"name"`
	Address  string `json:"address"`
	IMAP     string `json:"imap"`
	SMTP     string `json:"smtp"`
	Username string `json:"username"`
	Password string `json:"password"`

	Contacts []*Account `json:"-"` // who this account can mail

	node     *Node
	passport string // exported passport file
}

// Node is the node whose bridge serves the account.
func (a *Account) Node() *Node { return a.node }

func (n *Network) addAccount(ctx context.Context, node *Node, name string) (*Account, error) {
	out, err := node.cli(ctx, "account", "add", "--config", node.config(), "--name", name)
	if err != nil {
		return nil, err
	}
	a := &Account{Name: name, node: node, passport: filepath.Join(node.Dir, name+".passport")}
	fields := map[string]*string{"address": &a.Address, "imap": &a.IMAP, "smtp": &a.SMTP, "username": &a.Username, "password": &a.Password}
	for line := range strings.SplitSeq(out, "\n") {
		k, v, _ := strings.Cut(line, ":")
		if p, ok := fields[strings.TrimSpace(k)]; ok {
			*p = strings.TrimSpace(v)
		}
	}
	for k, p := range fields {
		if *p == "" {
			return nil, fmt.Errorf("account add %s printed no %s: %q", name, k, out)
		}
	}
	if _, err := node.cli(ctx, "account", "export-passport", "--config", node.config(), "--name", name, "--output", a.passport); err != nil {
		return nil, err
	}
	return a, nil
}

// Outgoing is a mail to submit: Subject is ID, body Size bytes.
type Outgoing struct {
	ID   string
	To   *Account
	Size int
}

// Ack is the SMTP server's answer to one Outgoing.
type Ack struct {
	ID  string
	At  time.Time // when the 250 came
	Err string    // why it was not accepted; "" for 250
}

// Send submits mails in one SMTP session (reopened after a failure) with
// Python's smtplib, run in the account's node's namespace; each SMTP
// exchange gives up after timeout. After a failure the other mails are
// not tried (a hung server would make each wait timeout).
func (n *Network) Send(ctx context.Context, from *Account, mails []Outgoing, timeout time.Duration) ([]Ack, error) {
	var jobs bytes.Buffer
	for _, m := range mails {
		fmt.Fprintf(&jobs, "%s\t%s\t%d\n", m.ID, m.To.Address, m.Size)
	}
	jobFile, err := os.CreateTemp(n.cfg.Dir, "jobs-*.txt")
	if err != nil {
		return nil, err
	}
	defer os.Remove(jobFile.Name())
	if _, err := jobFile.Write(jobs.Bytes()); err != nil {
		jobFile.Close()
		return nil, err
	}
	jobFile.Close()
	out, err := n.python(ctx, from, "send", jobFile.Name(), strconv.FormatFloat(timeout.Seconds(), 'f', 1, 64))
	acks := parseAcks(out)
	if err != nil && len(acks) < len(mails) {
		return acks, fmt.Errorf("smtplib as %s: %w: %s", from.Name, err, lastLine(out))
	}
	return acks, nil
}

// parseAcks reads the "ID 250 UNIXTIME" and "ID fail REASON" lines.
func parseAcks(out []byte) []Ack {
	var acks []Ack
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		if len(f) < 3 {
			continue
		}
		switch f[1] {
		case "250":
			sec, err := strconv.ParseFloat(f[2], 64)
			if err == nil {
				acks = append(acks, Ack{ID: f[0], At: time.UnixMilli(int64(sec * 1000))})
			}
		case "fail":
			acks = append(acks, Ack{ID: f[0], Err: f[2]})
		}
	}
	return acks
}

// Received is one message in an INBOX.
type Received struct {
	Subject string
	At      time.Time // INTERNALDATE: when the bridge stored it (1 s resolution)
	// Bounced names the mails a delivery report in the INBOX is about
	// (the words of its body that start with the prefix given to Inbox).
	Bounced []string
}

// Inbox lists the account's INBOX with imaplib, run in its node's
// namespace. Delivery reports are read for words starting with prefix.
func (n *Network) Inbox(ctx context.Context, a *Account, prefix string) ([]Received, error) {
	out, err := n.python(ctx, a, "inbox", prefix)
	if err != nil {
		return nil, fmt.Errorf("imaplib as %s: %w: %s", a.Name, err, lastLine(out))
	}
	var raw []struct {
		Subject string   `json:"s"`
		At      float64  `json:"t"`
		Refs    []string `json:"r"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("imaplib as %s: %w: %.300s", a.Name, err, out)
	}
	msgs := make([]Received, len(raw))
	for i, r := range raw {
		msgs[i] = Received{Subject: r.Subject, At: time.Unix(int64(r.At), 0), Bounced: r.Refs}
	}
	return msgs, nil
}

// python runs the mail client script as account a, in a's node's
// namespace.
func (n *Network) python(ctx context.Context, a *Account, args ...string) ([]byte, error) {
	acct, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	cmd := n.fabric.command(ctx, a.node.Index, n.python3, append([]string{n.tool, args[0], string(acct)}, args[1:]...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.Bytes()...), err
	}
	return out, nil
}

func lastLine(b []byte) string {
	s := strings.Split(strings.TrimSpace(string(b)), "\n")
	return s[len(s)-1]
}

// mailClient is the Python client: smtplib to submit, imaplib to read.
const mailClient = `
import sys, json, smtplib, imaplib, time, re, os

def hp(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)

def mail(a, to, sid, size):
    line = ("%s " % sid) * 8 + "\r\n"
    body = (line * (size // len(line) + 1))[:size]
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@testnet>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n%s\r\n" % (a["address"], to, sid, sid, body)).encode()

def send(a, jobs, timeout):
    s = None
    failed = None
    for line in open(jobs):
        sid, to, size = line.rstrip("\n").split("\t")
        if failed:
            # A server that failed once (down, or hung) is not waited for again.
            print(sid, "fail", "not tried after:", failed, flush=True)
            continue
        try:
            if s is None:
                s = smtplib.SMTP(*hp(a["smtp"]), timeout=timeout)
                s.login(a["username"], a["password"])
            s.sendmail(a["address"], [to], mail(a, to, sid, int(size)))
            print(sid, "250", "%.3f" % time.time(), flush=True)
        except Exception as e:
            failed = repr(e).replace("\n", " ")
            print(sid, "fail", failed, flush=True)
            try:
                s.close()
            except Exception:
                pass
            s = None
    if s is not None:
        try:
            s.quit()
        except Exception:
            pass

DSN = "Undelivered Mail Returned to Sender"

def inbox(a, prefix):
    m = imaplib.IMAP4(*hp(a["imap"]), timeout=30)
    m.login(a["username"], a["password"])
    typ, data = m.select("INBOX", readonly=True)
    assert typ == "OK", data
    out = []
    if int(data[0]) > 0:
        typ, d = m.fetch("1:*", "(INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", d
        for part in d:
            if not isinstance(part, tuple):
                continue
            h = part[1].decode("utf-8", "replace").strip()
            subj = h.split(":", 1)[1].strip() if ":" in h else ""
            t = time.mktime(imaplib.Internaldate2tuple(part[0]))
            seq = part[0].split()[0].decode()
            refs = []
            if subj == DSN:
                typ, b = m.fetch(seq, "(BODY.PEEK[TEXT])")
                text = b[0][1].decode("utf-8", "replace")
                refs = sorted(set(re.findall(re.escape(prefix) + r"[0-9A-Za-z-]+", text)))
            out.append({"s": subj, "t": t, "r": refs})
    m.logout()
    print(json.dumps(out))

a = json.loads(sys.argv[2])
if sys.argv[1] == "send":
    send(a, sys.argv[3], float(sys.argv[4]))
elif sys.argv[1] == "inbox":
    inbox(a, sys.argv[3])
`
