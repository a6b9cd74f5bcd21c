// Package wire is the ASMTP link protocol (PROTOCOL.md §5–7): the
// version byte and the Noise IK handshake over a net.Conn, the transport
// frames (u16 big-endian length ‖ ChaCha20-Poly1305 ciphertext, with a REKEY
// after every frame in each direction), and the seven message types that
// frames carry. Node-to-node and client-to-node links are the same.
//
// Any framing, decryption or handshake error is final for a Conn: the
// caller must close it (upstream kept such links open, §19 #2). Message
// decoding errors leave the frame stream intact, but a peer that sends a
// malformed message should be dropped too.
package wire

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/noise"
)

const (
	// Version is the protocol version byte that precedes each handshake
	// message. Upstream v0.1.0 knows only version 1.
	Version = 0x01
	// VersionSize is the size of the version byte.
	VersionSize = 1
	// HandshakeInitSize is the initiator's message: version ‖ IK message 1.
	HandshakeInitSize = VersionSize + noise.IKMessage1Len // 97
	// HandshakeResponseSize is the responder's message: version ‖ IK message 2.
	HandshakeResponseSize = VersionSize + noise.IKMessage2Len // 49

	// FrameHeaderSize is the u16 big-endian ciphertext length before a frame.
	FrameHeaderSize = 2
	// MinFrameLength is the smallest ciphertext: a tag and no plaintext.
	MinFrameLength = noise.TagLen // 16
	// MaxFrameLength is upstream's limit, 65535 − FrameHeaderSize.
	MaxFrameLength = 65535 - FrameHeaderSize // 65533
	// MaxFramePlaintext is the largest plaintext a frame carries.
	MaxFramePlaintext = MaxFrameLength - noise.TagLen // 65517
)

// ErrWrongRemote is wrapped by Dial's error when the responder hangs up
// without answering or answers something that does not decrypt. Either it
// is not the key Dial was given (wrong --remote-id?), or, for a hang-up, it
// refused this peer: the wire does not tell the two apart.
var ErrWrongRemote = errors.New("the responder is not the expected key")

// Conn is an established link. ReadMessage/ReadFrame may be called from one
// goroutine while WriteMessage/WriteFrame are called from another; Close
// from any.
type Conn struct {
	conn      net.Conn
	remote    keys.PublicKey
	sessionID [noise.HashLen]byte

	// Read side.
	r       *bufio.Reader
	recv    *noise.LinkCipher
	rbuf    []byte // FrameHeaderSize + MaxFrameLength
	rdl     deadline
	readErr error // set by the first error that breaks the stream

	// Write side.
	send     *noise.LinkCipher
	wbuf     []byte // FrameHeaderSize + MaxFrameLength
	wdl      deadline
	writeErr error
}

func newConn(c net.Conn, r *bufio.Reader, send, recv *noise.LinkCipher, remote keys.PublicKey, sessionID [noise.HashLen]byte) *Conn {
	return &Conn{
		conn:      c,
		remote:    remote,
		sessionID: sessionID,
		r:         r,
		recv:      recv,
		rbuf:      make([]byte, FrameHeaderSize+MaxFrameLength),
		rdl:       deadline{set: c.SetReadDeadline},
		send:      send,
		wbuf:      make([]byte, FrameHeaderSize+MaxFrameLength),
		wdl:       deadline{set: c.SetWriteDeadline},
	}
}

// Dial runs the initiator's side of the handshake on c with the responder
// whose key is remote. ctx bounds the handshake only. On error c is closed;
// if the responder hangs up without answering, or its answer does not
// decrypt, the error wraps ErrWrongRemote.
func Dial(ctx context.Context, c net.Conn, local ed25519.PrivateKey, remote keys.PublicKey) (*Conn, error) {
	conn, err := dial(ctx, c, local, remote)
	if err != nil {
		c.Close()
		return nil, err
	}
	return conn, nil
}

func dial(ctx context.Context, c net.Conn, local ed25519.PrivateKey, remote keys.PublicKey) (*Conn, error) {
	dl := deadline{set: c.SetDeadline}
	stop, err := dl.arm(ctx)
	if err != nil {
		return nil, fmt.Errorf("handshake with %s: %w", remote, err)
	}
	conn, err := dialHandshake(ctx, c, local, remote)
	stop()
	if err != nil {
		return nil, err
	}
	if err := dl.clear(); err != nil {
		return nil, fmt.Errorf("handshake with %s: %w", remote, err)
	}
	return conn, nil
}

func dialHandshake(ctx context.Context, c net.Conn, local ed25519.PrivateKey, remote keys.PublicKey) (*Conn, error) {
	hs, err := noise.NewInitiator(nil, local, remote)
	if err != nil {
		return nil, fmt.Errorf("handshake with %s: %w", remote, err)
	}
	msg, err := hs.WriteMessage(append(make([]byte, 0, HandshakeInitSize), Version))
	if err != nil {
		return nil, fmt.Errorf("handshake with %s: %w", remote, err)
	}
	if _, err := c.Write(msg); err != nil {
		return nil, fmt.Errorf("handshake with %s: send: %w", remote, ioError(ctx, err))
	}

	r := bufio.NewReader(c)
	resp := make([]byte, HandshakeResponseSize)
	if _, err := io.ReadFull(r, resp[:VersionSize]); err != nil {
		if hungUp(err) {
			return nil, fmt.Errorf("handshake failed: %w %s (wrong --remote-id?): it closed the connection without answering, "+
				"as a node does with a handshake meant for another key (or when it refuses this peer)", ErrWrongRemote, remote)
		}
		return nil, fmt.Errorf("handshake with %s: read answer: %w", remote, ioError(ctx, err))
	}
	if resp[0] != Version {
		return nil, fmt.Errorf("handshake with %s: unsupported protocol version %d, want %d", remote, resp[0], Version)
	}
	if _, err := io.ReadFull(r, resp[VersionSize:]); err != nil {
		return nil, fmt.Errorf("handshake with %s: read answer: %w", remote, ioError(ctx, err))
	}
	if err := hs.ReadMessage(resp[VersionSize:]); err != nil {
		if errors.Is(err, noise.ErrAuthentication) {
			return nil, fmt.Errorf("handshake failed: %w %s (wrong --remote-id?): its answer does not decrypt: %v", ErrWrongRemote, remote, err)
		}
		return nil, fmt.Errorf("handshake with %s: %w", remote, err)
	}
	send, recv, sid, err := hs.Split()
	if err != nil {
		return nil, fmt.Errorf("handshake with %s: %w", remote, err)
	}
	return newConn(c, r, send, recv, remote, sid), nil
}

// Accept runs the responder's side of the handshake on c. After the
// initiator's message reveals its key, check decides: a non-nil error
// closes c without an answer, as upstream does, and is wrapped in Accept's
// error. A nil check accepts everyone. ctx bounds the handshake only. On
// error c is closed.
func Accept(ctx context.Context, c net.Conn, local ed25519.PrivateKey, check func(remote keys.PublicKey) error) (*Conn, error) {
	conn, err := accept(ctx, c, local, check)
	if err != nil {
		c.Close()
		return nil, err
	}
	return conn, nil
}

func accept(ctx context.Context, c net.Conn, local ed25519.PrivateKey, check func(remote keys.PublicKey) error) (*Conn, error) {
	dl := deadline{set: c.SetDeadline}
	stop, err := dl.arm(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept handshake: %w", err)
	}
	conn, err := acceptHandshake(ctx, c, local, check)
	stop()
	if err != nil {
		return nil, err
	}
	if err := dl.clear(); err != nil {
		return nil, fmt.Errorf("accept handshake from %s: %w", conn.remote, err)
	}
	return conn, nil
}

func acceptHandshake(ctx context.Context, c net.Conn, local ed25519.PrivateKey, check func(remote keys.PublicKey) error) (*Conn, error) {
	r := bufio.NewReader(c)
	msg := make([]byte, HandshakeInitSize)
	if _, err := io.ReadFull(r, msg[:VersionSize]); err != nil {
		return nil, fmt.Errorf("accept handshake: %w", ioError(ctx, err))
	}
	if msg[0] != Version {
		return nil, fmt.Errorf("accept handshake: unsupported protocol version %d, want %d", msg[0], Version)
	}
	if _, err := io.ReadFull(r, msg[VersionSize:]); err != nil {
		return nil, fmt.Errorf("accept handshake: %w", ioError(ctx, err))
	}
	hs, err := noise.NewResponder(nil, local)
	if err != nil {
		return nil, fmt.Errorf("accept handshake: %w", err)
	}
	if err := hs.ReadMessage(msg[VersionSize:]); err != nil {
		if errors.Is(err, noise.ErrAuthentication) {
			return nil, fmt.Errorf("accept handshake: the initiator expected another key for this node: %w", err)
		}
		return nil, fmt.Errorf("accept handshake: %w", err)
	}
	remote := hs.Remote()
	if check != nil {
		if err := check(remote); err != nil {
			return nil, fmt.Errorf("accept handshake: refused %s: %w", remote, err)
		}
	}
	resp, err := hs.WriteMessage(append(make([]byte, 0, HandshakeResponseSize), Version))
	if err != nil {
		return nil, fmt.Errorf("accept handshake from %s: %w", remote, err)
	}
	if _, err := c.Write(resp); err != nil {
		return nil, fmt.Errorf("accept handshake from %s: send: %w", remote, ioError(ctx, err))
	}
	send, recv, sid, err := hs.Split()
	if err != nil {
		return nil, fmt.Errorf("accept handshake from %s: %w", remote, err)
	}
	return newConn(c, r, send, recv, remote, sid), nil
}

// hungUp reports whether err means the peer closed the connection.
func hungUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET)
}

// Remote is the peer's Ed25519 key.
func (c *Conn) Remote() keys.PublicKey { return c.remote }

// SessionID is the final handshake hash, the same on both ends.
func (c *Conn) SessionID() [64]byte { return c.sessionID }

// LocalAddr and RemoteAddr are those of the underlying connection.
func (c *Conn) LocalAddr() net.Addr  { return c.conn.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// Close closes the underlying connection, which also ends any blocked read
// or write.
func (c *Conn) Close() error { return c.conn.Close() }

// ReadMessage reads and decodes the next message; see ReadFrame for errors.
// A message that does not decode is an error too (the stream stays intact;
// the caller should still drop the peer).
func (c *Conn) ReadMessage(ctx context.Context) (Message, error) {
	p, err := c.ReadFrame(ctx)
	if err != nil {
		return nil, err
	}
	m, err := Decode(p)
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	return m, nil
}

// ReadFrame reads, authenticates and decrypts the next frame and returns
// its plaintext, which is valid until the next ReadFrame or ReadMessage.
//
// If ctx ends before the first byte of a frame arrives, the error wraps
// ctx.Err() (context.DeadlineExceeded for a deadline) and the Conn stays
// usable. A clean end of stream between frames wraps io.EOF. Any other
// error (a length outside [16, 65533], a bad tag, a replayed, reordered or
// truncated frame, an I/O error or timeout mid-frame) is final: every later
// read returns it, and the caller must close the Conn.
func (c *Conn) ReadFrame(ctx context.Context) ([]byte, error) {
	if c.readErr != nil {
		return nil, c.readErr
	}
	stop, err := c.rdl.arm(ctx)
	if err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	p, between, err := c.readFrame()
	stop()
	if err != nil {
		err = fmt.Errorf("read frame: %w", ioError(ctx, err))
		if !between {
			c.readErr = err
		}
		return nil, err
	}
	return p, nil
}

// readFrame reads one frame into rbuf and opens it in place. between
// reports an error before the first byte of the frame.
func (c *Conn) readFrame() (p []byte, between bool, err error) {
	header := c.rbuf[:FrameHeaderSize]
	if n, err := io.ReadFull(c.r, header); err != nil {
		return nil, n == 0, err
	}
	n := int(binary.BigEndian.Uint16(header))
	if n < MinFrameLength {
		return nil, false, fmt.Errorf("frame is too short: %d bytes, minimum %d", n, MinFrameLength)
	}
	if n > MaxFrameLength {
		return nil, false, fmt.Errorf("frame is too long: %d bytes, maximum %d", n, MaxFrameLength)
	}
	ct := c.rbuf[FrameHeaderSize : FrameHeaderSize+n]
	if _, err := io.ReadFull(c.r, ct); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, false, fmt.Errorf("truncated %d-byte frame: %w", n, err)
	}
	p, err = c.recv.Open(ct[:0], ct)
	if err != nil {
		return nil, false, err
	}
	return p, false, nil
}

// WriteMessage encodes m and sends it in one frame. An error from Encode
// leaves the Conn usable; any other error is final, as for WriteFrame.
func (c *Conn) WriteMessage(ctx context.Context, m Message) error {
	if c.writeErr != nil {
		return c.writeErr
	}
	p, err := AppendMessage(c.wbuf[FrameHeaderSize:FrameHeaderSize], m)
	if err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	return c.writeFrame(ctx, p) // p is wbuf[FrameHeaderSize:…]: sealed in place
}

// WriteFrame encrypts p (at most MaxFramePlaintext bytes) and sends it in
// one frame. If ctx has already ended, nothing is sent and the Conn stays
// usable; any other error is final: every later write returns it, and the
// caller must close the Conn.
func (c *Conn) WriteFrame(ctx context.Context, p []byte) error {
	if c.writeErr != nil {
		return c.writeErr
	}
	if len(p) > MaxFramePlaintext {
		return fmt.Errorf("write frame: %d bytes, maximum %d", len(p), MaxFramePlaintext)
	}
	return c.writeFrame(ctx, p)
}

// writeFrame seals p into wbuf after the header and writes the frame. p is
// either wbuf[FrameHeaderSize:] itself (sealed in place) or does not overlap
// wbuf.
func (c *Conn) writeFrame(ctx context.Context, p []byte) error {
	stop, err := c.wdl.arm(ctx)
	if err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	defer stop()
	ct, err := c.send.Seal(c.wbuf[FrameHeaderSize:FrameHeaderSize], p)
	if err != nil {
		c.writeErr = fmt.Errorf("write frame: %w", err)
		return c.writeErr
	}
	binary.BigEndian.PutUint16(c.wbuf, uint16(len(ct)))
	if _, err := c.conn.Write(c.wbuf[:FrameHeaderSize+len(ct)]); err != nil {
		c.writeErr = fmt.Errorf("write frame: %w", ioError(ctx, err))
		return c.writeErr
	}
	return nil
}

// deadline applies a context's deadline and cancellation to one direction
// of a net.Conn (or both, for the handshake).
type deadline struct {
	set   func(time.Time) error
	armed bool // a deadline is set on the connection
}

// arm sets the connection deadline to ctx's (clearing an earlier one) and
// makes ctx's cancellation interrupt blocked I/O. The returned stop must be
// called when the I/O is over. arm fails if ctx has already ended.
func (d *deadline) arm(ctx context.Context) (stop func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, has := ctx.Deadline()
	if has || d.armed {
		if err := d.set(t); err != nil { // the zero t clears
			return nil, err
		}
		d.armed = has
	}
	if ctx.Done() == nil {
		return func() {}, nil
	}
	fired := make(chan struct{})
	cancel := context.AfterFunc(ctx, func() {
		d.set(time.Unix(1, 0)) // in the past: blocked I/O returns now
		close(fired)
	})
	return func() {
		if !cancel() {
			<-fired
			d.armed = true
		}
	}, nil
}

// clear removes any deadline arm set.
func (d *deadline) clear() error {
	if !d.armed {
		return nil
	}
	d.armed = false
	return d.set(time.Time{})
}

// ioError reports an I/O error caused by ctx as ctx's error.
func ioError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w (%v)", ctxErr, err)
	}
	if _, has := ctx.Deadline(); has && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}
