// Command load measures sustained mail throughput: S concurrent SMTP
// senders submit M mails of B bytes to one recipient, and the rate is the
// mails per second from the first 250 to the "* N EXISTS" that announces
// the last of them in the recipient's IMAP IDLE. It runs two systems one
// after the other in the same run (ASMTP's three-node loopback network and
// a reference, Postfix delivering over LMTP to Dovecot), checks that each
// delivered every mail exactly once (by Subject), and prints both rates
// and their ratio. contrib/bench/load/bench.sh sets everything up.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/asmtp/asmtp/contrib/bench/mailsystem"
)

// system is one mail system under test.
type system struct {
	mailsystem.Endpoints
}

// load is how much to send.
type load struct {
	senders, mails, size int
	timeout              time.Duration
}

// result is one system's run.
type result struct {
	first250, last250, lastExists time.Time
	retried                       int64 // 4xx answers, each retried
	delivered, distinct           int   // messages of the run in the INBOX
}

func (r result) rate(mails int) float64 {
	return float64(mails) / r.lastExists.Sub(r.first250).Seconds()
}

func main() {
	var ours, ref system
	ours.Flags("ours-", "asmtp")
	ref.Flags("ref-", "postfix+dovecot-lmtp")
	var l load
	flag.IntVar(&l.senders, "senders", 10, "concurrent SMTP sessions")
	flag.IntVar(&l.mails, "mails", 5000, "mails per system")
	flag.IntVar(&l.size, "size", 10<<10, "bytes per mail")
	flag.DurationVar(&l.timeout, "timeout", 15*time.Minute, "per system, first 250 to last EXISTS")
	probe := flag.Duration("probe-timeout", 2*time.Minute, "wait for a first mail per system (the overlay forms)")
	flag.Parse()

	ctx := context.Background()
	fmt.Printf("%d senders, %d mails of %d bytes per system, one recipient\n", l.senders, l.mails, l.size)
	results := map[*system]result{}
	for _, s := range []*system{&ours, &ref} {
		if err := s.probe(ctx, *probe); err != nil {
			fatal(fmt.Errorf("%s: probe: %w", s.Name, err))
		}
		r, err := s.run(ctx, l)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", s.Name, err))
		}
		results[s] = r
		s.print(r, l)
	}
	o, f := results[&ours].rate(l.mails), results[&ref].rate(l.mails)
	fmt.Printf("ratio %s / %s: %.2f× the mails per second\n", ours.Name, ref.Name, o/f)
	for _, r := range results {
		if r.delivered != l.mails || r.distinct != l.mails {
			os.Exit(1)
		}
	}
}

func (s *system) print(r result, l load) {
	fmt.Printf("%-22s %7.1f mails/s (first 250 → last EXISTS %v; submissions took %v, %d retried after 4xx); delivered %d, distinct %d, lost %d, duplicated %d\n",
		s.Name, r.rate(l.mails), r.lastExists.Sub(r.first250).Round(time.Millisecond), r.last250.Sub(r.first250).Round(time.Millisecond),
		r.retried, r.delivered, r.distinct, l.mails-r.distinct, r.delivered-r.distinct)
}

// probe sends one mail and waits for it, so that the run starts on a
// network whose overlay has formed.
func (s *system) probe(ctx context.Context, timeout time.Duration) error {
	w, err := s.watch()
	if err != nil {
		return err
	}
	defer w.close()
	c, err := s.dial()
	if err != nil {
		return err
	}
	defer c.Quit()
	if err := s.send(c, "probe-"+randomHex(4), 1024); err != nil {
		return err
	}
	_, err = w.await(ctx, w.base+1, timeout)
	return err
}

// run submits the load and waits for the last EXISTS, then counts the
// run's messages in the INBOX.
func (s *system) run(ctx context.Context, l load) (result, error) {
	var r result
	w, err := s.watch()
	if err != nil {
		return r, err
	}
	defer w.close()
	token := "load-" + randomHex(4)
	var first, last, retried atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, l.senders)
	for k := range l.senders {
		wg.Go(func() {
			errs[k] = s.sender(k, l, token, &first, &last, &retried)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	r.first250, r.last250, r.retried = time.Unix(0, first.Load()), time.Unix(0, last.Load()), retried.Load()
	if r.lastExists, err = w.await(ctx, w.base+uint32(l.mails), l.timeout-time.Since(r.first250)); err != nil {
		return r, err
	}
	r.delivered, r.distinct, err = w.tally(token)
	return r, err
}

// sender submits its share of the mails over one SMTP session; a 4xx is
// retried on the same session after a short pause.
func (s *system) sender(k int, l load, token string, first, last, retried *atomic.Int64) error {
	c, err := s.dial()
	if err != nil {
		return err
	}
	defer c.Quit()
	for i := k; i < l.mails; i += l.senders {
		subject := fmt.Sprintf("%s-%05d", token, i)
		for {
			err := s.send(c, subject, l.size)
			var se *smtp.SMTPError
			if errors.As(err, &se) && se.Temporary() {
				retried.Add(1)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if err != nil {
				return fmt.Errorf("sender %d, mail %d: %w", k, i, err)
			}
			break
		}
		now := time.Now().UnixNano()
		keep(first, now, func(old int64) bool { return old == 0 || now < old })
		keep(last, now, func(old int64) bool { return now > old })
	}
	return nil
}

// keep stores v in a while better(the current value).
func keep(a *atomic.Int64, v int64, better func(old int64) bool) {
	for old := a.Load(); better(old) && !a.CompareAndSwap(old, v); old = a.Load() {
	}
}

func (s *system) dial() (*smtp.Client, error) {
	c, err := smtp.Dial(s.SMTP)
	if err != nil {
		return nil, fmt.Errorf("smtp dial: %w", err)
	}
	if err := c.Hello("load.localhost"); err != nil {
		c.Close()
		return nil, err
	}
	if s.SMTPUser != "" {
		if err := c.Auth(sasl.NewPlainClient("", s.SMTPUser, s.SMTPPass)); err != nil {
			c.Close()
			return nil, fmt.Errorf("smtp auth: %w", err)
		}
	}
	return c, nil
}

func (s *system) send(c *smtp.Client, subject string, size int) error {
	return c.SendMail(s.From, []string{s.To}, bytes.NewReader(message(s.From, s.To, subject, size)))
}

// message is a plain-text mail of about size bytes.
func message(from, to, subject string, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@load.localhost>\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n",
		from, to, subject, subject, time.Now().Format(time.RFC1123Z))
	line := strings.Repeat(subject+" ", 70/(len(subject)+1)) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

// watcher follows the recipient's INBOX with IDLE.
type watcher struct {
	c      *imapclient.Client
	idle   *imapclient.IdleCommand
	base   uint32 // messages when the watch began
	mu     sync.Mutex
	count  uint32
	seenAt time.Time
	notify chan struct{}
}

func (s *system) watch() (*watcher, error) {
	w := &watcher{notify: make(chan struct{}, 1)}
	c, err := imapclient.DialInsecure(s.IMAP, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{Mailbox: w.mailbox},
	})
	if err != nil {
		return nil, fmt.Errorf("imap dial: %w", err)
	}
	w.c = c
	if err := c.Login(s.IMAPUser, s.IMAPPass).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap login: %w", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("imap select: %w", err)
	}
	w.base, w.count = sel.NumMessages, sel.NumMessages
	if w.idle, err = c.Idle(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap idle: %w", err)
	}
	return w, nil
}

func (w *watcher) mailbox(data *imapclient.UnilateralDataMailbox) {
	if data.NumMessages == nil {
		return
	}
	now := time.Now()
	w.mu.Lock()
	w.count, w.seenAt = *data.NumMessages, now
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// await returns when EXISTS reached want.
func (w *watcher) await(ctx context.Context, want uint32, timeout time.Duration) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		count, at := w.count, w.seenAt
		w.mu.Unlock()
		if count >= want {
			return at, nil
		}
		select {
		case <-w.notify:
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("EXISTS %d, want %d, after %v", count, want, timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// tally ends IDLE and counts the INBOX's messages whose Subject starts
// with token: all of them and the distinct Subjects.
func (w *watcher) tally(token string) (all, distinct int, err error) {
	if err := w.idle.Close(); err != nil {
		return 0, 0, err
	}
	if err := w.idle.Wait(); err != nil {
		return 0, 0, err
	}
	w.idle = nil
	criteria := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: token}}}
	found, err := w.c.UIDSearch(criteria, nil).Wait()
	if err != nil {
		return 0, 0, fmt.Errorf("search: %w", err)
	}
	uids := found.AllUIDs()
	if len(uids) == 0 {
		return 0, 0, nil
	}
	msgs, err := w.c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		return 0, 0, fmt.Errorf("fetch: %w", err)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		if m.Envelope != nil && strings.HasPrefix(m.Envelope.Subject, token) {
			all++
			seen[m.Envelope.Subject] = true
		}
	}
	return all, len(seen), nil
}

func (w *watcher) close() {
	if w.idle != nil {
		w.idle.Close()
		w.idle.Wait()
	}
	w.c.Logout().Wait()
	w.c.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "load:", err)
	os.Exit(1)
}
