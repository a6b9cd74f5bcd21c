package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/asmtp/wire"
	"github.com/asmtp/asmtp/internal/wait"
)

// ★ Hostile peers: random bytes, truncated frames, bad lengths, frames that
// do not authenticate, valid frames with malformed messages, requests a
// peer may not make and a flood of QueryTopicMessages. Each time the node
// stays up, disconnects the offender (quarantining it when it has an
// identity), and the other links keep delivering.
func TestHostilePeers(t *testing.T) {
	nodes := startNetwork(t, 3, nil)
	ctx := context.Background()
	target, a, b := nodes[0], nodes[1], nodes[2]
	tp := topic.Topic{0xee, 1}
	sessions := map[*testNode]*Session{}
	for _, n := range nodes {
		sessions[n] = n.session(t)
		if err := sessions[n].Register(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, 15*time.Second, "rings", func() bool { return ringsConverged(nodes, nodes, tp) == nil })

	frame := func(length uint16, body []byte) []byte {
		return append([]byte{byte(length >> 8), byte(length)}, body...)
	}
	cases := []struct {
		name string
		// handshake: the attack runs after a valid handshake.
		handshake bool
		// quarantined: the offender must be refused afterwards. A frame
		// cut short by a hang-up is only disconnected: that is also what
		// a node killed mid-write looks like.
		quarantined bool
		attack      func(raw net.Conn, wc *wire.Conn) error
	}{
		{"random bytes instead of a handshake", false, false, func(raw net.Conn, _ *wire.Conn) error {
			junk := make([]byte, 4096)
			rand.Read(junk)
			_, err := raw.Write(junk)
			return err
		}},
		{"truncated frame", true, false, func(raw net.Conn, _ *wire.Conn) error {
			if _, err := raw.Write(frame(100, make([]byte, 10))); err != nil {
				return err
			}
			return raw.(*net.TCPConn).CloseWrite()
		}},
		{"oversized length", true, true, func(raw net.Conn, _ *wire.Conn) error {
			_, err := raw.Write(frame(0xffff, make([]byte, 64)))
			return err
		}},
		{"length below a tag", true, true, func(raw net.Conn, _ *wire.Conn) error {
			_, err := raw.Write(frame(5, make([]byte, 5)))
			return err
		}},
		{"frame that does not authenticate", true, true, func(raw net.Conn, _ *wire.Conn) error {
			junk := make([]byte, 64)
			rand.Read(junk)
			_, err := raw.Write(frame(64, junk))
			return err
		}},
		{"short RegisterTopic", true, true, func(_ net.Conn, wc *wire.Conn) error {
			return wc.WriteFrame(ctx, []byte{byte(wire.TypeRegisterTopic), 1, 2, 3})
		}},
		{"invalid message type", true, true, func(_ net.Conn, wc *wire.Conn) error {
			return wc.WriteFrame(ctx, append([]byte{9}, make([]byte, 40)...))
		}},
		{"Gossip with a bad signature", true, true, func(_ net.Conn, wc *wire.Conn) error {
			b, err := wire.Encode(wire.Gossip{Gossip: target.Gossip()})
			if err != nil {
				return err
			}
			b[len(b)-1] ^= 1 // last byte of the signature
			return wc.WriteFrame(ctx, b)
		}},
		// Closed at once, not quarantined: most likely a device someone
		// forgot to add to users, which must be able to retry once added.
		{"RegisterTopic from a non-user", true, false, func(_ net.Conn, wc *wire.Conn) error {
			return wc.WriteMessage(ctx, wire.RegisterTopic{Topic: tp})
		}},
		{"QueryTopicMessages flood", true, true, func(_ net.Conn, wc *wire.Conn) error {
			for i := range 1000 {
				if err := wc.WriteMessage(ctx, wire.QueryTopicMessages{Topic: tp}); err != nil {
					if i <= DefaultQueryBurst {
						return fmt.Errorf("cut off after %d queries, within the allowed burst", i)
					}
					return nil // disconnected mid-flood: what we want
				}
			}
			return nil
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := target.Stats().Quarantined
			key := newKey(t)
			raw, wc := hostileConn(t, target, key, c.handshake)
			if err := c.attack(raw, wc); err != nil && !disconnected(err) {
				t.Fatalf("attack: %v", err)
			}
			expectClosed(t, raw)
			if c.quarantined {
				if got := target.Stats().Quarantined; got != before+1 {
					t.Fatalf("quarantined %d peers, want %d", got-before, 1)
				}
				if err := dialAs(target, key); err == nil {
					t.Fatal("a quarantined peer could connect again")
				}
			}
			// The node is up and the honest links still deliver.
			msg := fmt.Appendf(nil, "after attack %d", i)
			if err := sessions[a].Publish(ctx, tp, msg); err != nil {
				t.Fatal(err)
			}
			for _, n := range []*testNode{target, b} {
				if d := receive(t, sessions[n], 1, 5*time.Second); string(d[0].Content) != string(msg) {
					t.Fatalf("got %q, want %q", d[0].Content, msg)
				}
			}
		})
	}
}

// hostileConn connects to n with key, running the handshake if asked.
func hostileConn(t *testing.T, n *testNode, key []byte, handshake bool) (net.Conn, *wire.Conn) {
	t.Helper()
	raw, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	if !handshake {
		return raw, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wc, err := wire.Dial(ctx, raw, key, n.ID())
	if err != nil {
		t.Fatal(err)
	}
	return raw, wc
}

// dialAs tries a handshake with n as key.
func dialAs(n *testNode, key []byte) error {
	raw, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		return err
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = wire.Dial(ctx, raw, key, n.ID())
	return err
}

// expectClosed fails unless the node closes raw within 5 s.
func expectClosed(t *testing.T, raw net.Conn) {
	t.Helper()
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, raw)
	if err != nil && !disconnected(err) {
		t.Fatalf("the node did not disconnect the offender: %v", err)
	}
}

// disconnected reports whether err means the other end hung up.
func disconnected(err error) bool {
	var op *net.OpError
	return errors.Is(err, io.EOF) || errors.As(err, &op) && !op.Timeout()
}
