package imapserver

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// wireConn is one client connection as go-imap's server sees it, sitting on
// TCP (or on our implicit TLS). go-imap v2.0.0-beta.8 lacks three things that
// wireConn adds by framing the byte streams (lines and literals) without
// parsing commands, which remains go-imap's job:
//
//   - the ID command (RFC 2971): "tag ID ..." lines are answered here, at a
//     point where go-imap has finished all earlier commands, and " ID" is
//     added to the capability lists go-imap writes;
//   - a client that pushes a non-synchronizing literal go-imap refuses gets
//     one BYE (after go-imap's NO [TOOBIG] for APPEND over APPENDLIMIT; over
//     4 KiB outside APPEND, go-imap never sees the command), instead of
//     having the literal's bytes read as commands;
//   - mailbox names go-imap cannot decode get NO, not NO [SERVERBUG]
//     (mailboxname.go);
//   - responses to a command that writes many (FETCH, STORE, updates) are
//     sent in few writes instead of one per response.
//
// After STARTTLS the streams are encrypted, so wireConn stops framing them
// and passes bytes through: ID and the literal guard are then unavailable.
type wireConn struct {
	net.Conn
	in          *bufio.Reader
	idleTimeout time.Duration
	appendLimit int64

	frame inputFramer // used only by go-imap's reading goroutine

	mu       sync.Mutex // serialises writes and guards the fields below
	out      outputScanner
	contSent bool // a continuation request was written since the last synchronizing literal
	wrote    bool // anything was written since then
	holding  bool
	held     []byte
}

const (
	maxLineBytes      = 64 << 10 // go-imap rejects commands over 50 KiB
	maxBufferedLit    = 4096     // go-imap's limit for literals outside APPEND
	flushHeldAt       = 64 << 10
	idResponse        = `* ID ("name" "asmtp-bridge" "vendor" "asmtp")` + "\r\n"
	byeLiteralTooBig  = "* BYE Literal too large, closing connection\r\n"
	capabilityCommand = "CAPABILITY"
)

func newWireConn(c net.Conn, idleTimeout time.Duration, appendLimit int64) *wireConn {
	return &wireConn{
		Conn:        c,
		in:          bufio.NewReaderSize(c, maxLineBytes),
		idleTimeout: idleTimeout,
		appendLimit: appendLimit,
	}
}

// SetReadDeadline caps go-imap's deadlines (30 min and more while
// authenticated) at the configured idle timeout.
func (w *wireConn) SetReadDeadline(t time.Time) error {
	if limit := time.Now().Add(w.idleTimeout); w.idleTimeout > 0 && (t.IsZero() || t.After(limit)) {
		t = limit
	}
	return w.Conn.SetReadDeadline(t)
}

func (w *wireConn) SetDeadline(t time.Time) error {
	if err := w.SetWriteDeadline(t); err != nil {
		return err
	}
	return w.SetReadDeadline(t)
}

// inputFramer tracks where commands and literals begin in the client stream.
type inputFramer struct {
	pending    []byte    // framed bytes not yet handed to go-imap
	literal    int64     // literal bytes still to pass through
	syncLit    int64     // size of a synchronizing literal announced in the last line
	midCommand bool      // the next line continues the current command
	command    string    // upper-case name of the current command
	afterIdle  bool      // the next line answers IDLE
	names      nameCheck // the current command's mailbox arguments (mailboxname.go)
	checkLit   bool      // the literal being announced is a mailbox name
	overlong   bool      // inside a line longer than maxLineBytes
	closing    bool      // hand go-imap EOF: it refused a literal the client is pushing
	byeSent    bool      // the BYE for closing was written
	plain      bool      // STARTTLS: pass everything through
}

// Read hands go-imap at most one line (or literal chunk) at a time, so that
// when it asks for more it has dealt with everything before.
func (w *wireConn) Read(p []byte) (int, error) {
	f := &w.frame
	for {
		if len(f.pending) > 0 {
			n := copy(p, f.pending)
			f.pending = f.pending[n:]
			return n, nil
		}
		if f.plain {
			return w.in.Read(p)
		}
		if f.closing {
			if !f.byeSent { // go-imap may read again after EOF
				f.byeSent = true
				w.writeDirect(byeLiteralTooBig)
			}
			return 0, io.EOF
		}
		if f.syncLit > 0 {
			w.mu.Lock()
			accepted, answered := w.contSent, w.wrote
			w.mu.Unlock()
			size := f.syncLit
			f.syncLit = 0
			switch {
			case accepted:
				f.literal = size
			case answered: // refused with a tagged answer: a new command follows
				f.midCommand = false
			default:
				// go-imap refused the literal but, in beta.8, keeps parsing
				// the command while the client waits for "+". End the line
				// so go-imap answers BAD instead of both sides waiting.
				f.midCommand = false
				f.pending = append(f.pending[:0], "\r\n"...)
				continue
			}
		}
		if f.literal > 0 && f.checkLit {
			f.checkLit = false
			w.readNameLiteral()
			continue
		}
		if f.literal > 0 {
			n, err := w.in.Read(p[:min(int64(len(p)), f.literal)])
			f.literal -= int64(n)
			return n, err
		}
		line, err := w.in.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			f.overlong = true
			f.pending = append(f.pending[:0], line...)
			continue
		}
		if len(line) == 0 {
			return 0, err
		}
		if err != nil { // last bytes before EOF: pass them, EOF follows
			f.pending = append(f.pending[:0], line...)
			continue
		}
		if f.overlong {
			f.overlong, f.midCommand = false, false
			f.pending = append(f.pending[:0], line...)
			continue
		}
		if w.frameLine(line) {
			f.pending = append(f.pending[:0], line...)
		}
	}
}

// frameLine updates the framing state for one complete client line and
// reports whether go-imap should see it (false when it was answered here).
func (w *wireConn) frameLine(line []byte) bool {
	f := &w.frame
	startsCommand := !f.midCommand && !f.afterIdle
	f.afterIdle = false
	if startsCommand {
		tag, name, args := splitCommand(line)
		f.command = name
		f.names = newNameCheck(name, args)
		switch name {
		case "ID":
			if !bytes.HasSuffix(bytes.TrimRight(line, "\r\n"), []byte("}")) {
				w.answerID(tag, args)
				return false
			}
		case "IDLE":
			f.afterIdle = true
		case "STARTTLS":
			f.plain = true
			w.mu.Lock()
			w.out.plain = true
			w.mu.Unlock()
			return true
		}
	}
	literalIsName := f.names.line(argsOf(line, startsCommand))
	size, nonSync, ok := literalAnnounce(line)
	if !ok {
		f.midCommand = false
		return true
	}
	f.midCommand = true
	f.checkLit = literalIsName && size <= maxBufferedLit
	limit := int64(maxBufferedLit)
	if f.command == "APPEND" {
		limit = w.appendLimit
	}
	switch {
	case nonSync && size > limit:
		f.closing = true
		// go-imap answers APPEND over its limit with NO [TOOBIG] before
		// reading the literal; other commands it would answer after our
		// BYE, with NO [SERVERBUG] for the EOF inside the literal, so it
		// never sees them.
		return f.command == "APPEND"
	case nonSync:
		f.literal = size
	default:
		f.syncLit = size
		w.mu.Lock()
		w.contSent, w.wrote = false, false
		w.mu.Unlock()
	}
	return true
}

// argsOf is the part of a client line holding arguments: after the tag and
// command name on the first line of a command, all of a continuation line;
// without CRLF. It aliases line.
func argsOf(line []byte, first bool) []byte {
	line = bytes.TrimRight(line, "\r\n")
	if !first {
		return line
	}
	for range 2 {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return nil
		}
		line = line[i+1:]
	}
	return line
}

// readNameLiteral reads a literal mailbox name whole (it is small: go-imap
// refuses larger ones outside APPEND) and hands it on, replaced if it is
// not valid modified UTF-7. A literal cut short is handed on as it is; the
// read error follows.
func (w *wireConn) readNameLiteral() {
	f := &w.frame
	buf := make([]byte, f.literal)
	n, err := io.ReadFull(w.in, buf)
	f.literal = 0
	if err == nil && !validMUTF7(string(buf)) {
		fill(buf, false)
	}
	f.pending = append(f.pending[:0], buf[:n]...)
}

func (w *wireConn) answerID(tag, args string) {
	if args == "" || tag == "" {
		w.writeDirect(tagOr(tag) + " BAD Syntax error in ID\r\n")
		return
	}
	if !strings.EqualFold(args, "NIL") && !(strings.HasPrefix(args, "(") && strings.HasSuffix(args, ")")) {
		w.writeDirect(tag + " BAD ID expects NIL or a parenthesized list\r\n")
		return
	}
	w.writeDirect(idResponse + tag + " OK ID completed\r\n")
}

func tagOr(tag string) string {
	if tag == "" {
		return "*"
	}
	return tag
}

// splitCommand splits "tag NAME args\r\n" (name upper-cased; "UID X" kept as
// "UID").
func splitCommand(line []byte) (tag, name, args string) {
	s := strings.TrimRight(string(line), "\r\n")
	tag, rest, _ := strings.Cut(s, " ")
	name, args, _ = strings.Cut(rest, " ")
	return tag, strings.ToUpper(name), strings.TrimSpace(args)
}

// literalAnnounce parses a line ending in "{N}\r\n" or "{N+}\r\n" (also after
// "~" for literal8).
func literalAnnounce(line []byte) (size int64, nonSync, ok bool) {
	s := strings.TrimSuffix(string(line), "\n")
	s = strings.TrimSuffix(s, "\r")
	if !strings.HasSuffix(s, "}") {
		return 0, false, false
	}
	open := strings.LastIndexByte(s, '{')
	if open < 0 {
		return 0, false, false
	}
	num := s[open+1 : len(s)-1]
	if strings.HasSuffix(num, "+") {
		num, nonSync = num[:len(num)-1], true
	}
	if num == "" || len(num) > 19 || strings.Trim(num, "0123456789") != "" {
		return 0, false, false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, false, false
	}
	return n, nonSync, true
}

// Write passes go-imap's output on, adding " ID" to capability lists and
// noting continuation requests; while holding, it batches.
func (w *wireConn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	out, cont := w.out.process(p)
	w.contSent = w.contSent || cont
	w.wrote = w.wrote || len(p) > 0
	if w.holding {
		w.held = append(w.held, out...)
		if len(w.held) < flushHeldAt {
			return n, nil
		}
		return n, w.flushHeldLocked()
	}
	_, err := w.Conn.Write(out)
	return n, err
}

// writeDirect writes complete lines of our own at a command boundary.
func (w *wireConn) writeDirect(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.Conn.Write([]byte(s))
}

// SetWriteDeadline is a no-op while holding: go-imap sets and clears a
// deadline around every response, and nothing reaches the socket until
// release, which sets its own.
func (w *wireConn) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	holding := w.holding
	w.mu.Unlock()
	if holding {
		return nil
	}
	return w.Conn.SetWriteDeadline(t)
}

// hold starts batching writes; release flushes and stops.
func (w *wireConn) hold() {
	w.mu.Lock()
	w.holding = true
	w.mu.Unlock()
}

func (w *wireConn) release() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.holding = false
	if len(w.held) == 0 {
		return nil
	}
	err := w.flushHeldLocked()
	w.Conn.SetWriteDeadline(time.Time{})
	return err
}

// heldWriteTimeout bounds each flush of held output, as go-imap bounds each
// response it writes.
const heldWriteTimeout = 30 * time.Second

func (w *wireConn) flushHeldLocked() error {
	w.Conn.SetWriteDeadline(time.Now().Add(heldWriteTimeout))
	_, err := w.Conn.Write(w.held)
	w.held = w.held[:0]
	return err
}

// outputScanner follows the server stream's lines and literals.
type outputScanner struct {
	midLine bool
	literal int64
	tail    []byte // end of the current line so far, to spot "{N}\r\n" split across writes
	plain   bool
}

// process returns p with " ID" added to capability lists, and whether p
// holds a continuation request. go-imap writes each capability list in one
// flushed write, so only lines that start and end within p are rewritten.
func (o *outputScanner) process(p []byte) (out []byte, cont bool) {
	if o.plain {
		return p, false
	}
	var rw []byte // non-nil once a line was rewritten
	emit := func(b []byte) {
		if rw != nil {
			rw = append(rw, b...)
		}
	}
	for i := 0; i < len(p); {
		if o.literal > 0 {
			n := int(min(o.literal, int64(len(p)-i)))
			emit(p[i : i+n])
			o.literal -= int64(n)
			i += n
			continue
		}
		if !o.midLine && p[i] == '+' {
			cont = true
		}
		end := bytes.IndexByte(p[i:], '\n')
		if end < 0 {
			emit(p[i:])
			o.addTail(p[i:])
			o.midLine = true
			break
		}
		line := p[i : i+end+1]
		i += end + 1
		if !o.midLine {
			if withID, ok := addIDCapability(line); ok {
				if rw == nil {
					rw = append(make([]byte, 0, len(p)+3), p[:i-len(line)]...)
				}
				rw = append(rw, withID...)
				continue
			}
		}
		emit(line)
		o.addTail(line)
		o.midLine = false
		if bytes.HasSuffix(o.tail, []byte("}\r\n")) {
			if size, _, ok := literalAnnounce(o.tail); ok {
				o.literal, o.midLine = size, true
			}
		}
		o.tail = o.tail[:0]
	}
	if rw != nil {
		return rw, cont
	}
	return p, cont
}

func (o *outputScanner) addTail(b []byte) {
	o.tail = append(o.tail, b...)
	if len(o.tail) > 32 {
		o.tail = append(o.tail[:0], o.tail[len(o.tail)-32:]...)
	}
}

// addIDCapability rewrites one complete response line if it carries a
// capability list: "* CAPABILITY ..." or "<tag|*> OK [CAPABILITY ...] ...".
func addIDCapability(line []byte) ([]byte, bool) {
	if !bytes.Contains(line[:min(len(line), 80)], []byte(capabilityCommand)) {
		return nil, false // the common case, without converting the line
	}
	s := string(line)
	if rest, ok := strings.CutPrefix(s, "* "+capabilityCommand+" "); ok {
		body := strings.TrimRight(rest, "\r\n")
		return []byte("* " + capabilityCommand + " " + body + " ID" + rest[len(body):]), true
	}
	_, rest, ok := strings.Cut(s, " ")
	if !ok {
		return nil, false
	}
	after, ok := strings.CutPrefix(rest, "OK ["+capabilityCommand+" ")
	if !ok {
		return nil, false
	}
	closeAt := strings.IndexByte(after, ']')
	if closeAt < 0 {
		return nil, false
	}
	head := s[:len(s)-len(after)]
	return []byte(head + after[:closeAt] + " ID" + after[closeAt:]), true
}
