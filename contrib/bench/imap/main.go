// Command imapbench runs one IMAP workload against the bridge's IMAP server
// (in process, over a real SQLite store and real TCP) and against a
// throwaway local Dovecot, and prints each row's ratio.
//
// Both servers get the same 10,000 messages by pipelined APPEND, then:
// SELECT of the 10,000-message INBOX, FETCH 1:* (FLAGS ENVELOPE), UID SEARCH
// TEXT, SORT (REVERSE DATE), SORT (SUBJECT), THREAD REFERENCES, SEARCH
// MODSEQ and SELECT with QRESYNC after 1% of the flags changed
// (condstore.go), IDLE push latency (APPEND on one connection to EXISTS on another)
// and logins per second (connect, LOGIN, LOGOUT). Each row reports the
// median of several warm runs; ratio = bridge time / Dovecot time, so below
// 1 means the bridge is faster.
//
// Needs Debian's dovecot-imapd. Run: contrib/bench/imap/bench.sh
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/asmtp/asmtp/bridge/auth"
	"github.com/asmtp/asmtp/bridge/imapserver"
	"github.com/asmtp/asmtp/bridge/imapserver/dovecotref"
	"github.com/asmtp/asmtp/bridge/imapserver/testmail"
	"github.com/asmtp/asmtp/mailstore"
)

func main() {
	messages := flag.Int("messages", 10000, "messages loaded into INBOX")
	runs := flag.Int("runs", 9, "measured runs per row (median reported)")
	logins := flag.Int("logins", 300, "logins measured for the logins/s row")
	flag.Parse()
	if err := run(*messages, *runs, *logins); err != nil {
		log.Fatal(err)
	}
}

type target struct {
	name, addr, user, pass string
}

type row struct {
	name         string
	bridge, dove time.Duration
	cold         [2]time.Duration // first run, bridge and Dovecot
	unit         string           // how to print: "time" or "per-second"
}

func run(messages, runs, logins int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "imapbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bridge, stop, err := startBridge(ctx, dir)
	if err != nil {
		return err
	}
	defer stop()
	dove, err := dovecotref.Start(ctx, filepath.Join(dir, "dovecot"))
	if err != nil {
		return err
	}
	defer dove.Stop()

	tb := &table{targets: []target{bridge, {"dovecot", dove.Addr, bridge.user, dovecotref.Password}}}
	measure := tb.measure

	fmt.Fprintf(os.Stderr, "loading %d messages into each server...\n", messages)
	if err := measure(fmt.Sprintf("APPEND %d (pipelined, per message)", messages), func(t target) ([]time.Duration, error) {
		d, err := load(t, messages)
		return []time.Duration{d / time.Duration(messages)}, err
	}); err != nil {
		return err
	}
	if err := measure(fmt.Sprintf("SELECT INBOX (%d messages)", messages), func(t target) ([]time.Duration, error) {
		return repeat(t, runs+1, "SELECT INBOX")
	}); err != nil {
		return err
	}
	if err := measure("FETCH 1:* (FLAGS ENVELOPE)", func(t target) ([]time.Duration, error) {
		return repeat(t, runs+1, "EXAMINE INBOX", "FETCH 1:* (FLAGS ENVELOPE)")
	}); err != nil {
		return err
	}
	if err := measure("UID SEARCH TEXT "+testmail.Needle, func(t target) ([]time.Duration, error) {
		return repeat(t, runs+1, "EXAMINE INBOX", "UID SEARCH TEXT "+testmail.Needle)
	}); err != nil {
		return err
	}
	for _, cmd := range []string{"SORT (REVERSE DATE) UTF-8 ALL", "SORT (SUBJECT) UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL"} {
		if err := measure(cmd, func(t target) ([]time.Duration, error) {
			return repeat(t, runs+1, "EXAMINE INBOX", cmd)
		}); err != nil {
			return err
		}
	}
	if err := measureCondStore(measure, messages, runs); err != nil {
		return err
	}
	if err := measure("IDLE push latency (APPEND → EXISTS)", func(t target) ([]time.Duration, error) {
		return idleLatency(t, runs+1)
	}); err != nil {
		return err
	}
	if err := measure(fmt.Sprintf("login (connect+LOGIN+LOGOUT, %d sequential)", logins), func(t target) ([]time.Duration, error) {
		d, err := loginLoop(t, logins)
		return []time.Duration{d / time.Duration(logins)}, err
	}); err != nil {
		return err
	}

	printRows(tb.rows)
	return nil
}

// table is the rows measured on both targets, bridge first.
type table struct {
	targets []target
	rows    []row
}

// measure adds the row name: fn's samples on each target, the first run
// cold and the median of the others.
func (tb *table) measure(name string, fn func(t target) ([]time.Duration, error)) error {
	r := row{name: name, unit: "time"}
	for i, t := range tb.targets {
		samples, err := fn(t)
		if err != nil {
			return fmt.Errorf("%s on %s: %w", name, t.name, err)
		}
		r.cold[i] = samples[0]
		warm := samples
		if len(samples) > 1 {
			warm = samples[1:]
		}
		med := median(warm)
		if i == 0 {
			r.bridge = med
		} else {
			r.dove = med
		}
	}
	tb.rows = append(tb.rows, r)
	return nil
}

// startBridge runs the bridge's IMAP server over a new store in dir, with
// one account, until stop.
func startBridge(ctx context.Context, dir string) (t target, stop func(), err error) {
	store, err := mailstore.Open(ctx, filepath.Join(dir, "bridge.db"))
	if err != nil {
		return t, nil, err
	}
	const user, token = "bench", "bench-token-0123456789"
	if err := store.CreateAccount(ctx, user); err != nil {
		store.Close()
		return t, nil, err
	}
	srv, err := imapserver.New(imapserver.Options{
		Store:         store,
		Authenticator: auth.NewTokenAuthenticator(map[string]string{user: token}),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		store.Close()
		return t, nil, err
	}
	ln, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		store.Close()
		return t, nil, err
	}
	go srv.Serve(ln)
	return target{"bridge", ln.Addr().String(), user, token}, func() { srv.Close(); store.Close() }, nil
}

// printRows prints the table of rows with their ratios.
func printRows(rows []row) {
	fmt.Printf("\n%-52s %14s %14s %8s\n", "row (median of warm runs)", "bridge", "dovecot", "ratio")
	for _, r := range rows {
		ratio := float64(r.bridge) / float64(r.dove)
		fmt.Printf("%-52s %14s %14s %7.2fx", r.name, fmtDur(r.bridge), fmtDur(r.dove), ratio)
		if strings.HasPrefix(r.name, "login") {
			fmt.Printf("   (%.0f vs %.0f logins/s)", float64(time.Second)/float64(r.bridge), float64(time.Second)/float64(r.dove))
		}
		if r.cold[0] != r.bridge && !strings.HasPrefix(r.name, "login") && !strings.HasPrefix(r.name, "APPEND") {
			fmt.Printf("   (first run: %s vs %s)", fmtDur(r.cold[0]), fmtDur(r.cold[1]))
		}
		fmt.Println()
	}
	fmt.Println("\nratio = bridge / dovecot time; below 1.00 the bridge is faster. Goal: at most 1.5 on every row, IDLE below 1.")
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// load APPENDs the corpus with LITERAL+, 64 commands in flight.
func load(t target, n int) (time.Duration, error) {
	c, err := dial(t)
	if err != nil {
		return 0, err
	}
	defer c.close()
	if err := c.login(t); err != nil {
		return 0, err
	}
	start := time.Now()
	const window = 64
	sent, done := 0, 0
	for done < n {
		for sent < n && sent-done < window {
			raw := testmail.Message(sent)
			fmt.Fprintf(c.w, "a%d APPEND INBOX %s {%d+}\r\n%s\r\n", sent, appendFlags(sent), len(raw), raw)
			sent++
		}
		if err := c.w.Flush(); err != nil {
			return 0, err
		}
		for done < sent {
			if _, status, err := c.readUntil(fmt.Sprintf("a%d", done)); err != nil || !strings.Contains(status, "OK") {
				return 0, fmt.Errorf("APPEND %d: %s %v", done, status, err)
			}
			done++
		}
	}
	return time.Since(start), nil
}

func appendFlags(i int) string {
	switch {
	case i%7 == 0:
		return `(\Seen \Flagged)`
	case i%3 == 0:
		return `(\Seen)`
	}
	return "()"
}

// repeat times the last command over runs runs on one logged-in connection;
// the commands before it run untimed before each run.
func repeat(t target, runs int, cmds ...string) ([]time.Duration, error) {
	c, err := dial(t)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.login(t); err != nil {
		return nil, err
	}
	var out []time.Duration
	for range runs {
		for _, cmd := range cmds[:len(cmds)-1] {
			if _, st, err := c.cmd(cmd); err != nil || !strings.Contains(st, "OK") {
				return nil, fmt.Errorf("%s: %s %v", cmd, st, err)
			}
		}
		start := time.Now()
		n, st, err := c.cmd(cmds[len(cmds)-1])
		if err != nil || !strings.Contains(st, "OK") {
			return nil, fmt.Errorf("%s: %s %v", cmds[len(cmds)-1], st, err)
		}
		out = append(out, time.Since(start))
		_ = n
	}
	return out, nil
}

// idleLatency APPENDs on one connection while another IDLEs, timing from
// sending the APPEND to reading EXISTS.
func idleLatency(t target, runs int) ([]time.Duration, error) {
	watcher, err := dial(t)
	if err != nil {
		return nil, err
	}
	defer watcher.close()
	if err := watcher.login(t); err != nil {
		return nil, err
	}
	if _, st, err := watcher.cmd("SELECT INBOX"); err != nil || !strings.Contains(st, "OK") {
		return nil, fmt.Errorf("SELECT: %s %v", st, err)
	}
	appender, err := dial(t)
	if err != nil {
		return nil, err
	}
	defer appender.close()
	if err := appender.login(t); err != nil {
		return nil, err
	}
	var out []time.Duration
	for i := range runs {
		fmt.Fprintf(watcher.w, "i%d IDLE\r\n", i)
		watcher.w.Flush()
		if line, err := watcher.readLine(); err != nil || !strings.HasPrefix(line, "+") {
			return nil, fmt.Errorf("IDLE: %q %v", line, err)
		}
		raw := fmt.Sprintf("Subject: idle %d\r\n\r\nidle probe\r\n", i)
		start := time.Now()
		fmt.Fprintf(appender.w, "p%d APPEND INBOX {%d+}\r\n%s\r\n", i, len(raw), raw)
		appender.w.Flush()
		for {
			watcher.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := watcher.readLine()
			if err != nil {
				return nil, fmt.Errorf("waiting for EXISTS: %w", err)
			}
			if strings.HasSuffix(strings.TrimSpace(line), "EXISTS") {
				break
			}
		}
		out = append(out, time.Since(start))
		if _, st, err := appender.readUntil(fmt.Sprintf("p%d", i)); err != nil || !strings.Contains(st, "OK") {
			return nil, fmt.Errorf("APPEND: %s %v", st, err)
		}
		fmt.Fprint(watcher.w, "DONE\r\n")
		watcher.w.Flush()
		if _, _, err := watcher.readUntil(fmt.Sprintf("i%d", i)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func loginLoop(t target, n int) (time.Duration, error) {
	start := time.Now()
	for range n {
		c, err := dial(t)
		if err != nil {
			return 0, err
		}
		if err := c.login(t); err != nil {
			return 0, err
		}
		c.cmd("LOGOUT")
		c.close()
	}
	return time.Since(start), nil
}

// client is a minimal IMAP client that reads literals correctly.
type client struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	n    int
}

func dial(t target) (*client, error) {
	conn, err := net.DialTimeout("tcp", t.addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &client{conn: conn, r: bufio.NewReaderSize(conn, 1<<16), w: bufio.NewWriterSize(conn, 1<<16)}
	if line, err := c.readLine(); err != nil || !strings.HasPrefix(line, "* OK") {
		conn.Close()
		return nil, fmt.Errorf("greeting %q: %v", line, err)
	}
	return c, nil
}

func (c *client) close() { c.conn.Close() }

func (c *client) login(t target) error {
	if _, st, err := c.cmd("LOGIN " + t.user + " " + t.pass); err != nil || !strings.Contains(st, "OK") {
		return fmt.Errorf("login: %s %v", st, err)
	}
	return nil
}

func (c *client) cmd(cmd string) (int, string, error) {
	c.n++
	tag := "c" + strconv.Itoa(c.n)
	fmt.Fprintf(c.w, "%s %s\r\n", tag, cmd)
	if err := c.w.Flush(); err != nil {
		return 0, "", err
	}
	return c.readUntil(tag)
}

func (c *client) readLine() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	return c.r.ReadString('\n')
}

// readUntil reads responses up to the tagged one, skipping literals, and
// returns the number of untagged responses.
func (c *client) readUntil(tag string) (int, string, error) {
	n := 0
	for {
		line, err := c.readLine()
		if err != nil {
			return n, "", err
		}
		for {
			trimmed := strings.TrimRight(line, "\r\n")
			open := strings.LastIndexByte(trimmed, '{')
			if !strings.HasSuffix(trimmed, "}") || open < 0 {
				break
			}
			size, err := strconv.Atoi(strings.TrimSuffix(trimmed[open+1:len(trimmed)-1], "+"))
			if err != nil {
				break
			}
			if _, err := io.CopyN(io.Discard, c.r, int64(size)); err != nil {
				return n, "", err
			}
			if line, err = c.readLine(); err != nil {
				return n, "", err
			}
		}
		if strings.HasPrefix(line, tag+" ") {
			return n, strings.TrimSpace(line), nil
		}
		if strings.HasPrefix(line, "* BYE") && !strings.HasPrefix(tag, "c") {
			return n, "", errors.New(strings.TrimSpace(line))
		}
		n++
	}
}
