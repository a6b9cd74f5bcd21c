package wire

import (
	"bufio"
	"bytes"
	"context"
	"crypto/cipher"
	"testing"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/noise"
	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkLinkThroughput64K sends maximal frames (65517 bytes of
// plaintext, a 65535-byte frame on the wire) through a real link, over
// net.Pipe and over loopback TCP: seal and rekey on one goroutine, open and
// rekey on another. Compare with BenchmarkRawSeal64K (one direction's
// ceiling when the two ends run on two cores) and BenchmarkRawSealOpen64K
// (the ceiling when they share one).
func BenchmarkLinkThroughput64K(b *testing.B) {
	for _, n := range wireTestNets {
		b.Run(n.name, func(b *testing.B) { benchmarkLink(b, n.dial) })
	}
}

func benchmarkLink(b *testing.B, n wireTestNet) {
	client, server := wireTestLink(b, n)
	p := make([]byte, MaxFramePlaintext)
	ctx := context.Background()
	b.SetBytes(MaxFramePlaintext)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	errc := make(chan error, 1)
	go func() {
		for range b.N {
			if err := client.WriteFrame(ctx, p); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for range b.N {
		if _, err := server.ReadFrame(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	reportCPU(b, cpu, MaxFramePlaintext)
}

// discardConn is a net.Conn whose writes go nowhere.
type discardConn struct{ bufConn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkFrameSeal64K is the sending half alone: seal, rekey and header
// for a maximal frame, written to a connection that discards it. Compare
// with BenchmarkRawSeal64K for the framing overhead.
func BenchmarkFrameSeal64K(b *testing.B) {
	dc := &discardConn{}
	c := newConn(dc, nil, noise.NewLinkCipher(vectorKey()), nil, keys.PublicKey{}, [64]byte{})
	p := make([]byte, MaxFramePlaintext)
	ctx := context.Background()
	b.SetBytes(MaxFramePlaintext)
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if err := c.WriteFrame(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu, MaxFramePlaintext)
}

// BenchmarkFrameOpen64K is the receiving half alone: read, open and rekey
// maximal frames from memory. Frames are sealed in batches with the timer
// stopped (each rekey changes the key, so they cannot be reused). Compare
// with BenchmarkRawSeal64K: Open costs what Seal does.
func BenchmarkFrameOpen64K(b *testing.B) {
	const batch = 128
	sender, sent := vectorConn(nil)
	in := &bufConn{}
	receiver := newConn(in, bufio.NewReaderSize(in, 4096), nil, noise.NewLinkCipher(vectorKey()), keys.PublicKey{}, [64]byte{})
	p := make([]byte, MaxFramePlaintext)
	ctx := context.Background()
	b.SetBytes(MaxFramePlaintext)
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		n := min(batch, b.N-done)
		sent.w.Reset()
		for range n {
			if err := sender.WriteFrame(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
		in.r = bytes.NewReader(sent.w.Bytes())
		b.StartTimer()
		for range n {
			if _, err := receiver.ReadFrame(ctx); err != nil {
				b.Fatal(err)
			}
		}
		done += n
	}
}

func benchAEAD(b *testing.B) cipher.AEAD {
	k := vectorKey()
	aead, err := chacha20poly1305.New(k[:])
	if err != nil {
		b.Fatal(err)
	}
	return aead
}

// BenchmarkRawSeal64K is chacha20poly1305.Seal of the same plaintext size,
// in place: the ceiling for one direction of a link.
func BenchmarkRawSeal64K(b *testing.B) {
	aead := benchAEAD(b)
	buf := make([]byte, MaxFramePlaintext, MaxFramePlaintext+chacha20poly1305.Overhead)
	nonce := make([]byte, chacha20poly1305.NonceSize)
	b.SetBytes(MaxFramePlaintext)
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		aead.Seal(buf[:0], nonce, buf, nil)
	}
	reportCPU(b, cpu, MaxFramePlaintext)
}

// BenchmarkRawSealOpen64K is Seal then Open of the same size on one
// goroutine: the ceiling for a link whose ends share one core.
func BenchmarkRawSealOpen64K(b *testing.B) {
	aead := benchAEAD(b)
	buf := make([]byte, MaxFramePlaintext, MaxFramePlaintext+chacha20poly1305.Overhead)
	nonce := make([]byte, chacha20poly1305.NonceSize)
	b.SetBytes(MaxFramePlaintext)
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		ct := aead.Seal(buf[:0], nonce, buf, nil)
		if _, err := aead.Open(ct[:0], nonce, ct, nil); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu, MaxFramePlaintext)
}

// BenchmarkHandshake is a full Dial/Accept over net.Pipe.
func BenchmarkHandshake(b *testing.B) {
	ck, sk := wireTestKey(1), wireTestKey(2)
	cpu := cpuTime()
	for b.Loop() {
		d, a := wireTestHandshakeOnce(b, wireTestPipe, ck, sk, keys.Public(sk), nil)
		if d.err != nil || a.err != nil {
			b.Fatal(d.err, a.err)
		}
		d.conn.Close()
		a.conn.Close()
	}
	reportCPU(b, cpu, 0)
}
