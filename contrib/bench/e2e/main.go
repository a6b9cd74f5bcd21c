// Command e2e measures end-to-end mail latency: from the final 250 after an
// SMTP DATA to the "* N EXISTS" that an IMAP IDLE on the recipient's INBOX
// receives. It measures two systems side by side in the same run (ASMTP's
// three-node loopback network and a reference such as Postfix → Dovecot),
// interleaving them size by size, and prints p50/p99 per system and size
// and the ratio ours/reference. Sends are sequential over one SMTP
// connection per system. contrib/bench/e2e/bench.sh sets everything up.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/asmtp/asmtp/contrib/bench/mailsystem"
)

// system is one mail system under test.
type system struct {
	mailsystem.Endpoints

	smtpConn *smtpConn
	imapC    *imapclient.Client
	idle     *imapclient.IdleCommand

	// watchDir, if set, is the recipient's Maildir new/ directory: measure
	// also records when a file is moved or created there (inotify), that
	// is delivery without the IMAP server's notification path.
	watchDir string
	dirCount uint32
	dirAt    time.Time
	dirNote  chan struct{}

	mu     sync.Mutex
	count  uint32    // latest EXISTS
	seenAt time.Time // when it arrived
	notify chan struct{}
}

// sizeCount is how many mails of one size to measure.
type sizeCount struct{ size, n int }

// row is one size's latencies: per system, and the reference's delivery
// into its Maildir (index 2, with -ref-maildir-new).
type row struct {
	size, n          int
	p50, p99, mean   [3]time.Duration
	minimum, maximum [3]time.Duration
}

func main() {
	var ours, ref system
	ours.Flags("ours-", "asmtp")
	ref.Flags("ref-", "postfix+dovecot")
	flag.StringVar(&ref.watchDir, "ref-maildir-new", "", "reference recipient's Maildir new/ directory, to also time delivery into it")
	onlyProbe := flag.Bool("probe-only", false, "only connect and run the warm-up mails")
	sizesFlag := flag.String("sizes", "10240:200,1048576:200", "comma-separated size:count")
	timeout := flag.Duration("timeout", 60*time.Second, "per-mail wait for EXISTS")
	warmup := flag.Int("warmup", 3, "unmeasured mails per system first")
	probeTimeout := flag.Duration("probe-timeout", 120*time.Second, "wait for the first (warm-up) mail, while the overlay forms")
	flag.Parse()
	sizes, err := parseSizes(*sizesFlag)
	if err != nil {
		fatal(err)
	}
	systems := []*system{&ours, &ref}
	for _, s := range systems {
		if err := s.connect(); err != nil {
			fatal(fmt.Errorf("%s: %w", s.Name, err))
		}
		defer s.close()
		if err := s.warmUp(*warmup, *probeTimeout, *timeout); err != nil {
			fatal(fmt.Errorf("%s warmup: %w", s.Name, err))
		}
	}
	if *onlyProbe {
		fmt.Println("probe: both systems delivered")
		return
	}
	var rows []row
	for _, sc := range sizes {
		r, err := measureSize(systems, sc, *timeout)
		if err != nil {
			fatal(err)
		}
		rows = append(rows, r)
		fmt.Fprintf(os.Stderr, "done: %s × %d\n", human(sc.size), sc.n)
	}
	printRows(rows, systems)
}

// parseSizes reads -sizes: comma-separated size:count.
func parseSizes(list string) ([]sizeCount, error) {
	var sizes []sizeCount
	for _, f := range strings.Split(list, ",") {
		a, b, ok := strings.Cut(f, ":")
		size, err1 := strconv.Atoi(a)
		n, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || n <= 0 {
			return nil, fmt.Errorf("bad -sizes entry %q", f)
		}
		sizes = append(sizes, sizeCount{size, n})
	}
	return sizes, nil
}

// warmUp sends n unmeasured mails; the first may wait for the overlay to
// form, up to probeTimeout.
func (s *system) warmUp(n int, probeTimeout, timeout time.Duration) error {
	for i := range n {
		t := timeout
		if i == 0 {
			t = probeTimeout
		}
		if _, err := s.measure(10240, t); err != nil {
			return err
		}
	}
	return nil
}

// measureSize measures sc.n mails of sc.size on every system, interleaved
// mail by mail so that both see the same machine state.
func measureSize(systems []*system, sc sizeCount, timeout time.Duration) (row, error) {
	lat := [3][]time.Duration{}
	for i := range sc.n {
		for k, s := range systems {
			d, dd, err := s.measure2(sc.size, timeout)
			if err != nil {
				return row{}, fmt.Errorf("%s, %d bytes, mail %d: %w", s.Name, sc.size, i+1, err)
			}
			lat[k] = append(lat[k], d)
			if k == 1 && s.watchDir != "" {
				lat[2] = append(lat[2], dd)
			}
		}
	}
	r := row{size: sc.size, n: sc.n}
	for k := range lat {
		if len(lat[k]) == 0 {
			continue
		}
		sort.Slice(lat[k], func(i, j int) bool { return lat[k][i] < lat[k][j] })
		r.p50[k] = pct(lat[k], 50)
		r.p99[k] = pct(lat[k], 99)
		var sum time.Duration
		for _, d := range lat[k] {
			sum += d
		}
		r.mean[k] = sum / time.Duration(len(lat[k]))
		r.minimum[k], r.maximum[k] = lat[k][0], lat[k][len(lat[k])-1]
	}
	return r, nil
}

// printRows prints the table, the ratios and the goals.
func printRows(rows []row, systems []*system) {
	watched := systems[1].watchDir != ""
	fmt.Printf("SMTP DATA 250 → IMAP IDLE EXISTS (sequential sends, latencies in ms)\n")
	fmt.Printf("%-8s %5s  %-16s %8s %8s %8s %8s %8s\n", "size", "mails", "system", "p50", "p99", "mean", "min", "max")
	for _, r := range rows {
		for k, s := range systems {
			printLatencies(r, k, s.Name, "")
		}
		printRatio(r, 1, "ratio ours/ref")
		if watched {
			printLatencies(r, 2, "postfix→maildir", "   (250 → file in Maildir new/, no IMAP)")
			printRatio(r, 2, "ratio ours/mdir")
		}
	}
	fmt.Println("goals (10 KiB): p50 ≤ 100 ms; p50 within 2× of the reference")
	for _, r := range rows {
		if r.size == 10240 {
			fmt.Printf("  p50 ≤ 100 ms: %v (%.2f ms); within 2×: %v (%.2fx)\n",
				r.p50[0] <= 100*time.Millisecond, ms(r.p50[0]),
				ratio(r.p50[0], r.p50[1]) <= 2, ratio(r.p50[0], r.p50[1]))
		}
	}
}

func printLatencies(r row, k int, name, note string) {
	fmt.Printf("%-8s %5d  %-16s %8.2f %8.2f %8.2f %8.2f %8.2f%s\n", human(r.size), r.n, name,
		ms(r.p50[k]), ms(r.p99[k]), ms(r.mean[k]), ms(r.minimum[k]), ms(r.maximum[k]), note)
}

// printRatio prints ours (index 0) over index k, at p50 and p99.
func printRatio(r row, k int, name string) {
	fmt.Printf("%-8s %5d  %-16s %7.2fx %7.2fx\n", human(r.size), r.n, name,
		ratio(r.p50[0], r.p50[k]), ratio(r.p99[0], r.p99[k]))
}

func (s *system) connect() error {
	s.notify = make(chan struct{}, 1)
	c, err := imapclient.DialInsecure(s.IMAP, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(data *imapclient.UnilateralDataMailbox) {
				if data.NumMessages == nil {
					return
				}
				now := time.Now()
				s.mu.Lock()
				s.count, s.seenAt = *data.NumMessages, now
				s.mu.Unlock()
				select {
				case s.notify <- struct{}{}:
				default:
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("imap dial: %w", err)
	}
	s.imapC = c
	if err := c.Login(s.IMAPUser, s.IMAPPass).Wait(); err != nil {
		return fmt.Errorf("imap login: %w", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		return fmt.Errorf("imap select: %w", err)
	}
	s.mu.Lock()
	s.count = sel.NumMessages
	s.mu.Unlock()
	if s.watchDir != "" {
		if err := s.watch(); err != nil {
			return err
		}
	}
	if s.idle, err = c.Idle(); err != nil {
		return fmt.Errorf("imap idle: %w", err)
	}
	s.smtpConn, err = dialSMTP(s.SMTP, s.SMTPUser, s.SMTPPass)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	return nil
}

func (s *system) close() {
	if s.smtpConn != nil {
		s.smtpConn.quit()
	}
	if s.idle != nil {
		s.idle.Close()
		s.idle.Wait()
	}
	if s.imapC != nil {
		s.imapC.Logout().Wait()
		s.imapC.Close()
	}
}

// measure sends one mail of about size bytes and returns the time from the
// 250 after DATA to the EXISTS announcing it.
func (s *system) measure(size int, timeout time.Duration) (time.Duration, error) {
	d, _, err := s.measure2(size, timeout)
	return d, err
}

// measure2 also returns the time to the file in watchDir (0 without it).
func (s *system) measure2(size int, timeout time.Duration) (time.Duration, time.Duration, error) {
	s.mu.Lock()
	want, wantDir := s.count+1, s.dirCount+1
	s.mu.Unlock()
	msg := message(s.From, s.To, size)
	t0, err := s.smtpConn.send(s.From, s.To, msg)
	if err != nil {
		return 0, 0, err
	}
	since := func(at time.Time) time.Duration {
		if at.Before(t0) { // the event overtook the 250
			return 0
		}
		return at.Sub(t0)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		count, at, dirCount, dirAt := s.count, s.seenAt, s.dirCount, s.dirAt
		s.mu.Unlock()
		if count >= want && (s.watchDir == "" || dirCount >= wantDir) {
			var dd time.Duration
			if s.watchDir != "" {
				dd = since(dirAt)
			}
			return since(at), dd, nil
		}
		select {
		case <-s.notify:
		case <-s.dirNote:
		case <-deadline.C:
			return 0, 0, fmt.Errorf("no EXISTS %d (or no new file) within %v", want, timeout)
		}
	}
}

// watch counts files arriving in s.watchDir with inotify.
func (s *system) watch() error {
	s.dirNote = make(chan struct{}, 1)
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, s.watchDir, syscall.IN_MOVED_TO|syscall.IN_CREATE); err != nil {
		return fmt.Errorf("inotify %s: %w", s.watchDir, err)
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := syscall.Read(fd, buf)
			if err != nil || n <= 0 {
				return
			}
			now := time.Now()
			events := uint32(0)
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				events++
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
			s.mu.Lock()
			s.dirCount += events
			s.dirAt = now
			s.mu.Unlock()
			select {
			case s.dirNote <- struct{}{}:
			default:
			}
		}
	}()
	return nil
}

var seq int

// message builds an RFC 5322 message of about size bytes with CRLF lines.
func message(from, to string, size int) []byte {
	seq++
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: e2e bench %d\r\nDate: %s\r\nMessage-ID: <e2e-%d-%d@bench.invalid>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
		from, to, seq, time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), seq)
	raw := make([]byte, 57)
	for b.Len() < size {
		rand.Read(raw)
		b.WriteString(base64.StdEncoding.EncodeToString(raw)) // 76 chars, never a leading "."
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

type smtpConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func dialSMTP(addr, user, pass string) (*smtpConn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	s := &smtpConn{c: c, r: bufio.NewReader(c), w: bufio.NewWriterSize(c, 64<<10)}
	if _, err := s.expect(220); err != nil {
		c.Close()
		return nil, err
	}
	if err := s.cmd(250, "EHLO bench.localhost"); err != nil {
		c.Close()
		return nil, err
	}
	if user != "" {
		tok := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		if err := s.cmd(235, "AUTH PLAIN "+tok); err != nil {
			c.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *smtpConn) cmd(code int, line string) error {
	s.w.WriteString(line + "\r\n")
	if err := s.w.Flush(); err != nil {
		return err
	}
	if _, err := s.expect(code); err != nil {
		return fmt.Errorf("%s: %w", strings.Fields(line)[0], err)
	}
	return nil
}

// expect reads one (possibly multi-line) reply and checks its code.
func (s *smtpConn) expect(code int) (string, error) {
	s.c.SetReadDeadline(time.Now().Add(120 * time.Second))
	var all strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return all.String(), err
		}
		all.WriteString(line)
		if len(line) < 4 {
			return all.String(), fmt.Errorf("short reply %q", line)
		}
		if line[3] == '-' {
			continue
		}
		got, _ := strconv.Atoi(line[:3])
		if got != code {
			return all.String(), fmt.Errorf("want %d, got %q", code, strings.TrimSpace(all.String()))
		}
		return all.String(), nil
	}
}

// send runs one transaction and returns when the final 250 was read.
func (s *smtpConn) send(from, to string, msg []byte) (time.Time, error) {
	if err := s.cmd(250, "MAIL FROM:<"+from+">"); err != nil {
		return time.Time{}, err
	}
	if err := s.cmd(250, "RCPT TO:<"+to+">"); err != nil {
		return time.Time{}, err
	}
	if err := s.cmd(354, "DATA"); err != nil {
		return time.Time{}, err
	}
	s.w.Write(msg)
	s.w.WriteString(".\r\n")
	if err := s.w.Flush(); err != nil {
		return time.Time{}, err
	}
	if _, err := s.expect(250); err != nil {
		return time.Time{}, fmt.Errorf("end of DATA: %w", err)
	}
	return time.Now(), nil
}

func (s *smtpConn) quit() {
	s.w.WriteString("QUIT\r\n")
	s.w.Flush()
	s.c.Close()
}

func pct(sorted []time.Duration, p int) time.Duration {
	// nearest-rank percentile
	i := (p*len(sorted)+99)/100 - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func human(n int) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return strconv.Itoa(n) + "B"
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "e2e:", err)
	os.Exit(1)
}
