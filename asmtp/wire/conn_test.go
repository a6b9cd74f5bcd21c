package wire

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/noise"
	"github.com/asmtp/asmtp/asmtp/passport"
)

func wireTestKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

// wireTestNet returns the two ends of a fresh connection.
type wireTestNet func(t testing.TB) (client, server net.Conn)

func wireTestPipe(t testing.TB) (net.Conn, net.Conn) { return net.Pipe() }

func wireTestTCP(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		ch <- result{c, err}
	}()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return client, r.c
}

var wireTestNets = []struct {
	name string
	dial wireTestNet
}{{"pipe", wireTestPipe}, {"tcp", wireTestTCP}}

type handshakeResult struct {
	conn *Conn
	err  error
}

// wireTestHandshake runs Dial and Accept on the two ends of a connection
// and closes the links when the test ends.
func wireTestHandshake(t testing.TB, n wireTestNet, client, server ed25519.PrivateKey, expect keys.PublicKey, check func(keys.PublicKey) error) (dial, accept handshakeResult) {
	t.Helper()
	dial, accept = wireTestHandshakeOnce(t, n, client, server, expect, check)
	for _, r := range []handshakeResult{dial, accept} {
		if r.conn != nil {
			t.Cleanup(func() { r.conn.Close() })
		}
	}
	return dial, accept
}

func wireTestHandshakeOnce(t testing.TB, n wireTestNet, client, server ed25519.PrivateKey, expect keys.PublicKey, check func(keys.PublicKey) error) (dial, accept handshakeResult) {
	t.Helper()
	cc, sc := n(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := make(chan handshakeResult, 1)
	go func() {
		c, err := Accept(ctx, sc, server, check)
		ch <- handshakeResult{c, err}
	}()
	c, err := Dial(ctx, cc, client, expect)
	return handshakeResult{c, err}, <-ch
}

func wireTestLink(t testing.TB, n wireTestNet) (client, server *Conn) {
	t.Helper()
	d, a := wireTestHandshake(t, n, wireTestKey(1), wireTestKey(2), keys.Public(wireTestKey(2)), nil)
	if d.err != nil || a.err != nil {
		t.Fatalf("dial: %v; accept: %v", d.err, a.err)
	}
	return d.conn, a.conn
}

func TestLinkRoundTrip(t *testing.T) {
	for _, n := range wireTestNets {
		t.Run(n.name, func(t *testing.T) {
			client, server := wireTestLink(t, n.dial)
			if client.Remote() != keys.Public(wireTestKey(2)) || server.Remote() != keys.Public(wireTestKey(1)) {
				t.Fatalf("remotes %s / %s", client.Remote(), server.Remote())
			}
			if client.SessionID() != server.SessionID() || client.SessionID() == [64]byte{} {
				t.Fatal("session ids differ or are zero")
			}
			msgs := []Message{Topic{Topic: wireTestTopic(1), Content: make([]byte, MaxTopicContent)}}
			for _, c := range wireTestMessages(t) {
				msgs = append(msgs, c.m)
			}
			// Both ends write and read at the same time, many rounds, so
			// the per-frame rekey is exercised in both directions.
			const rounds = 20
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for _, c := range []*Conn{client, server} {
				wg.Add(2)
				go func() {
					defer wg.Done()
					for range rounds {
						for _, m := range msgs {
							if err := c.WriteMessage(ctx, m); err != nil {
								errs <- err
								return
							}
						}
					}
				}()
				go func() {
					defer wg.Done()
					for i := range rounds * len(msgs) {
						m, err := c.ReadMessage(ctx)
						if err != nil {
							errs <- err
							return
						}
						if want := msgs[i%len(msgs)]; !reflect.DeepEqual(m, want) {
							errs <- errors.New("message " + m.Type().String() + " differs")
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		})
	}
}

func TestDialWrongRemote(t *testing.T) {
	for _, n := range wireTestNets {
		t.Run(n.name, func(t *testing.T) {
			expected := keys.Public(wireTestKey(3)) // the server is key 2
			d, a := wireTestHandshake(t, n.dial, wireTestKey(1), wireTestKey(2), expected, nil)
			if !errors.Is(d.err, ErrWrongRemote) {
				t.Fatalf("dial: %v, want ErrWrongRemote", d.err)
			}
			for _, s := range []string{"handshake failed", "not the expected key", expected.String(), "wrong --remote-id?"} {
				if !strings.Contains(d.err.Error(), s) {
					t.Errorf("dial error %q does not say %q", d.err, s)
				}
			}
			if !errors.Is(a.err, noise.ErrAuthentication) {
				t.Fatalf("accept: %v, want ErrAuthentication", a.err)
			}
			t.Log(d.err)
		})
	}
}

func TestAcceptCheck(t *testing.T) {
	errBusy := errors.New("already connected")
	for _, n := range wireTestNets {
		t.Run(n.name, func(t *testing.T) {
			var seen keys.PublicKey
			check := func(k keys.PublicKey) error { seen = k; return errBusy }
			d, a := wireTestHandshake(t, n.dial, wireTestKey(1), wireTestKey(2), keys.Public(wireTestKey(2)), check)
			if !errors.Is(a.err, errBusy) {
				t.Fatalf("accept: %v, want the check's error", a.err)
			}
			if seen != keys.Public(wireTestKey(1)) {
				t.Fatalf("check saw %s, want the initiator's key", seen)
			}
			if d.err == nil || !strings.Contains(d.err.Error(), "without answering") {
				t.Fatalf("dial: %v, want a no-answer error", d.err)
			}
		})
	}
}

func TestHandshakeVersion(t *testing.T) {
	t.Run("initiator sends version 2", func(t *testing.T) {
		cc, sc := net.Pipe()
		defer cc.Close()
		go func() {
			msg := make([]byte, HandshakeInitSize)
			msg[0] = 2
			cc.Write(msg)
		}()
		_, err := Accept(context.Background(), sc, wireTestKey(2), nil)
		if err == nil || !strings.Contains(err.Error(), "unsupported protocol version 2") {
			t.Fatalf("accept: %v", err)
		}
		// Accept closed the connection without answering.
		if _, err := cc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("client read after refusal: %v, want EOF", err)
		}
	})
	t.Run("responder answers version 2", func(t *testing.T) {
		cc, sc := net.Pipe()
		defer sc.Close()
		go func() {
			io.ReadFull(sc, make([]byte, HandshakeInitSize))
			msg := make([]byte, HandshakeResponseSize)
			msg[0] = 2
			sc.Write(msg)
		}()
		_, err := Dial(context.Background(), cc, wireTestKey(1), keys.Public(wireTestKey(2)))
		if err == nil || !strings.Contains(err.Error(), "unsupported protocol version 2") {
			t.Fatalf("dial: %v", err)
		}
	})
	t.Run("responder answers what does not decrypt", func(t *testing.T) {
		cc, sc := net.Pipe()
		defer sc.Close()
		go func() {
			io.ReadFull(sc, make([]byte, HandshakeInitSize))
			msg := make([]byte, HandshakeResponseSize)
			msg[0] = Version
			e := keys.Public(wireTestKey(9)) // a valid point, then a wrong tag
			copy(msg[VersionSize:], e[:])
			sc.Write(msg)
		}()
		_, err := Dial(context.Background(), cc, wireTestKey(1), keys.Public(wireTestKey(2)))
		if !errors.Is(err, ErrWrongRemote) || !strings.Contains(err.Error(), "does not decrypt") {
			t.Fatalf("dial: %v, want ErrWrongRemote", err)
		}
	})
}

func TestHandshakeContext(t *testing.T) {
	t.Run("accept times out", func(t *testing.T) {
		cc, sc := net.Pipe()
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := Accept(ctx, sc, wireTestKey(2), nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("accept: %v, want DeadlineExceeded", err)
		}
	})
	t.Run("dial cancelled", func(t *testing.T) {
		cc, sc := net.Pipe()
		defer sc.Close()
		go io.ReadFull(sc, make([]byte, HandshakeInitSize)) // read, never answer
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := Dial(ctx, cc, wireTestKey(1), keys.Public(wireTestKey(2))); !errors.Is(err, context.Canceled) {
			t.Fatalf("dial: %v, want Canceled", err)
		}
	})
	t.Run("deadline cleared after handshake", func(t *testing.T) {
		cc, sc := net.Pipe()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		ch := make(chan handshakeResult, 1)
		go func() {
			c, err := Accept(ctx, sc, wireTestKey(2), nil)
			ch <- handshakeResult{c, err}
		}()
		client, err := Dial(ctx, cc, wireTestKey(1), keys.Public(wireTestKey(2)))
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		a := <-ch
		if a.err != nil {
			t.Fatal(a.err)
		}
		defer a.conn.Close()
		time.Sleep(300 * time.Millisecond) // past the handshake deadline
		go client.WriteMessage(context.Background(), GetPassport{})
		if _, err := a.conn.ReadMessage(context.Background()); err != nil {
			t.Fatalf("read after the handshake deadline: %v", err)
		}
	})
}

// A read that times out between frames leaves the link usable: a client
// waits "until 2 s pass with nothing" this way.
func TestReadIdleTimeout(t *testing.T) {
	for _, n := range wireTestNets {
		t.Run(n.name, func(t *testing.T) {
			client, server := wireTestLink(t, n.dial)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			if _, err := server.ReadMessage(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("idle read: %v, want DeadlineExceeded", err)
			}
			ctx2, cancel2 := context.WithCancel(context.Background())
			time.AfterFunc(30*time.Millisecond, cancel2)
			if _, err := server.ReadMessage(ctx2); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled read: %v, want Canceled", err)
			}
			go client.WriteMessage(context.Background(), GetPassport{ID: passport.Hash{1}})
			m, err := server.ReadMessage(context.Background())
			if err != nil {
				t.Fatalf("read after timeouts: %v", err)
			}
			if m != (GetPassport{ID: passport.Hash{1}}) {
				t.Fatalf("read %#v", m)
			}
		})
	}
}

// A write whose context has ended sends nothing and leaves the link usable.
func TestWriteEndedContext(t *testing.T) {
	client, server := wireTestLink(t, wireTestPipe)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := client.WriteMessage(ctx, GetPassport{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("write: %v, want Canceled", err)
	}
	go client.WriteMessage(context.Background(), GetPassport{ID: passport.Hash{2}})
	if m, err := server.ReadMessage(context.Background()); err != nil || m != (GetPassport{ID: passport.Hash{2}}) {
		t.Fatalf("read %#v, %v", m, err)
	}
}

// bufConn is a net.Conn that reads from r and records writes.
type bufConn struct {
	r io.Reader
	w bytes.Buffer
}

func (c *bufConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *bufConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *bufConn) Close() error                     { return nil }
func (c *bufConn) LocalAddr() net.Addr              { return nil }
func (c *bufConn) RemoteAddr() net.Addr             { return nil }
func (c *bufConn) SetDeadline(time.Time) error      { return nil }
func (c *bufConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bufConn) SetWriteDeadline(time.Time) error { return nil }

// vectorKey is the key of the §18.2 frame vectors: bytes 0x00…0x1f.
func vectorKey() (k [32]byte) {
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

// vectorConn is a Conn keyed with vectorKey in both directions, reading in.
func vectorConn(in []byte) (*Conn, *bufConn) {
	bc := &bufConn{r: bytes.NewReader(in)}
	c := newConn(bc, bufio.NewReader(bc), noise.NewLinkCipher(vectorKey()), noise.NewLinkCipher(vectorKey()), keys.PublicKey{}, [64]byte{})
	return c, bc
}

// §18.2 first and second frame vectors.
const (
	firstFrame  = "0021" + "1cb853139ea2f3b764e9c5cb148f93c9072195cb20c1ab89d42a6d7baba8d7584f"
	secondFrame = "0021" + "3c752da347cb1211484eeceb686202089dc6393cb1a929090d4d3cba73368aefa6"
)

func TestFrameVectors(t *testing.T) {
	m := GetPassport{ID: passport.Hash(wireTestHex(t, "00112233445566778899aabbccddeeff"))}
	c, bc := vectorConn(nil)
	for range 2 {
		if err := c.WriteMessage(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := hex.EncodeToString(bc.w.Bytes()), firstFrame+secondFrame; got != want {
		t.Fatalf("frames\n got %s\nwant %s", got, want)
	}
	r, _ := vectorConn(wireTestHex(t, firstFrame+secondFrame))
	for i := range 2 {
		got, err := r.ReadMessage(context.Background())
		if err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
		if got != m {
			t.Fatalf("frame %d: %#v", i+1, got)
		}
	}
	if _, err := r.ReadMessage(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
}

// wireTestFrames records n frames written by a vector-keyed Conn.
func wireTestFrames(t testing.TB, n int) [][]byte {
	t.Helper()
	c, bc := vectorConn(nil)
	var frames [][]byte
	for i := range n {
		bc.w.Reset()
		if err := c.WriteFrame(context.Background(), bytes.Repeat([]byte{byte(i)}, 20+i)); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, bytes.Clone(bc.w.Bytes()))
	}
	return frames
}

func TestFrameRejects(t *testing.T) {
	f := wireTestFrames(t, 3)
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 0x01; return b }
	join := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, c := range []struct {
		name   string
		stream []byte
		good   int // frames read before the bad one
		want   string
	}{
		{"replayed", join(f[0], f[0]), 1, "authentication failed"},
		{"swapped", join(f[1], f[0]), 0, "authentication failed"},
		{"one skipped", join(f[0], f[2]), 1, "authentication failed"},
		{"ciphertext tampered", join(f[0], flip(f[1], 5)), 1, "authentication failed"},
		{"tag tampered", join(f[0], flip(f[1], len(f[1])-1)), 1, "authentication failed"},
		{"length tampered", join(f[0], flip(f[1], 1), f[2]), 1, "authentication failed"},
		{"truncated body", join(f[0], f[1][:len(f[1])-1]), 1, "truncated"},
		{"truncated header", join(f[0], f[1][:1]), 1, "unexpected EOF"},
		{"too short", join(f[0], []byte{0x00, 0x0f}, make([]byte, 15)), 1, "too short"},
		{"zero length", join(f[0], []byte{0x00, 0x00}), 1, "too short"},
		{"too long", join(f[0], []byte{0xff, 0xfe}, make([]byte, 65534)), 1, "too long"},
		{"maximum u16", join(f[0], []byte{0xff, 0xff}), 1, "too long"},
		{"after three good frames", join(f[0], f[1], f[2], f[2]), 3, "authentication failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, _ := vectorConn(c.stream)
			for i := range c.good {
				if _, err := r.ReadFrame(context.Background()); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			_, err := r.ReadFrame(context.Background())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("bad frame: %v, want an error containing %q", err, c.want)
			}
			if _, err2 := r.ReadFrame(context.Background()); err2 != err {
				t.Fatalf("read after the error: %v, want the same error", err2)
			}
		})
	}
}

func TestFrameLimits(t *testing.T) {
	c, bc := vectorConn(nil)
	if err := c.WriteFrame(context.Background(), make([]byte, MaxFramePlaintext+1)); err == nil {
		t.Fatal("wrote an over-long frame")
	}
	for _, n := range []int{0, 1, MaxFramePlaintext} {
		bc.w.Reset()
		if err := c.WriteFrame(context.Background(), make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		if got := bc.w.Len(); got != FrameHeaderSize+n+noise.TagLen {
			t.Fatalf("%d-byte plaintext made a %d-byte frame", n, got)
		}
	}
	// The writer stays in step with a reader across these frames.
	c2, bc2 := vectorConn(nil)
	var stream []byte
	for _, n := range []int{0, 1, MaxFramePlaintext} {
		bc2.w.Reset()
		if err := c2.WriteFrame(context.Background(), bytes.Repeat([]byte{7}, n)); err != nil {
			t.Fatal(err)
		}
		stream = append(stream, bc2.w.Bytes()...)
	}
	r, _ := vectorConn(stream)
	for _, n := range []int{0, 1, MaxFramePlaintext} {
		p, err := r.ReadFrame(context.Background())
		if err != nil || len(p) != n {
			t.Fatalf("read %d bytes, %v; want %d", len(p), err, n)
		}
	}
}

// A message that does not decode is an error, but frames stay in step.
func TestReadMessageUndecodable(t *testing.T) {
	w, bc := vectorConn(nil)
	ctx := context.Background()
	if err := w.WriteFrame(ctx, []byte{9, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMessage(ctx, GetPassport{}); err != nil {
		t.Fatal(err)
	}
	r, _ := vectorConn(bc.w.Bytes())
	if _, err := r.ReadMessage(ctx); err == nil || !strings.Contains(err.Error(), "minimum 17") {
		t.Fatalf("first: %v", err)
	}
	if m, err := r.ReadMessage(ctx); err != nil || m != (GetPassport{}) {
		t.Fatalf("second: %#v, %v", m, err)
	}
}
