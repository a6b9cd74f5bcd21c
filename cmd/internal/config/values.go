package config

import (
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"gopkg.in/yaml.v3"
)

// The value types below decode one YAML value each and report problems as
// yaml.TypeError lines, so that every error in a file is collected and then
// located by key (see errors.go).

func typeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: ", n.Line, n.Column) + fmt.Sprintf(format, args...)}}
}

func scalar(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", typeError(n, "want %s, got a list or map", what)
	}
	return n.Value, nil
}

// Duration is a time.Duration written either as a Go duration ("30s") or as
// upstream's serde form ({secs: 30, nanos: 0}).
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.MappingNode:
		return d.fromSecsNanos(n)
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int":
		return typeError(n, "duration %s has no unit: write e.g. \"%ss\" or {secs: %s, nanos: 0}", n.Value, n.Value, n.Value)
	case n.Kind == yaml.ScalarNode:
		v, err := time.ParseDuration(n.Value)
		if err != nil {
			return typeError(n, "bad duration %q: want e.g. \"30s\", \"5m\", \"720h\" or {secs: 30, nanos: 0}", n.Value)
		}
		if v < 0 {
			return typeError(n, "duration %q is negative", n.Value)
		}
		*d = Duration(v)
		return nil
	default:
		return typeError(n, "want a duration such as \"30s\" or {secs: 30, nanos: 0}")
	}
}

func (d *Duration) fromSecsNanos(n *yaml.Node) error {
	var secs, nanos uint64
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var dst *uint64
		switch k.Value {
		case "secs":
			dst = &secs
		case "nanos":
			dst = &nanos
		default:
			return typeError(k, "unknown key %q in a {secs, nanos} duration", k.Value)
		}
		if err := v.Decode(dst); err != nil {
			return err
		}
	}
	if nanos >= uint64(time.Second) {
		return typeError(n, "nanos is %d; must be below 1000000000", nanos)
	}
	if secs >= math.MaxInt64/uint64(time.Second) {
		return typeError(n, "secs is %d; too long a duration", secs)
	}
	*d = Duration(time.Duration(secs)*time.Second + time.Duration(nanos))
	return nil
}

// String is the Go form of the duration.
func (d Duration) String() string { return time.Duration(d).String() }

// Address is a literal IP socket address such as "127.0.0.1:9800" or
// "[::1]:9800", as upstream's SocketAddr. "" is the zero Address, unset:
// optional addresses are then off, and required ones fail validation.
type Address struct{ netip.AddrPort }

// UnmarshalYAML implements yaml.Unmarshaler.
func (a *Address) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "an IP address and port")
	if err != nil {
		return err
	}
	if s == "" {
		*a = Address{}
		return nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return typeError(n, "bad address %q: want an IP and port such as \"127.0.0.1:%d\" or \"[::1]:%d\"", s, DefaultPort, DefaultPort)
	}
	a.AddrPort = ap
	return nil
}

// PublicKey is an Ed25519 public key (node id or user device key) in hex.
type PublicKey keys.PublicKey

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *PublicKey) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "a 64-hex public key")
	if err != nil {
		return err
	}
	k, err := keys.ParsePublicKey(strings.TrimSpace(s))
	if err != nil {
		return typeError(n, "%v", err)
	}
	*p = PublicKey(k)
	return nil
}

// String is the lowercase hex form.
func (p PublicKey) String() string { return keys.PublicKey(p).String() }

// Peer is a node to link to at start, written "<64-hex id>@<host:port>".
type Peer struct {
	ID PublicKey
	// Address is host:port; the host may be a name, resolved when dialling.
	Address string
}

// ParsePeer parses the "<64-hex id>@<host:port>" form.
func ParsePeer(s string) (Peer, error) {
	id, addr, ok := strings.Cut(strings.TrimSpace(s), "@")
	if !ok {
		return Peer{}, fmt.Errorf("peer %q: want <64-hex node id>@<host:port>", s)
	}
	k, err := keys.ParsePublicKey(id)
	if err != nil {
		return Peer{}, fmt.Errorf("peer %q: node id: %w", s, err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return Peer{}, fmt.Errorf("peer %q: address: %w", s, err)
	}
	if host == "" {
		return Peer{}, fmt.Errorf("peer %q: address %q has no host", s, addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return Peer{}, fmt.Errorf("peer %q: port %q is not a number from 1 to 65535", s, port)
	}
	return Peer{ID: PublicKey(k), Address: addr}, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *Peer) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "<64-hex node id>@<host:port>")
	if err != nil {
		return err
	}
	if *p, err = ParsePeer(s); err != nil {
		return typeError(n, "%v", err)
	}
	return nil
}

// String is the "<id>@<host:port>" form.
func (p Peer) String() string { return p.ID.String() + "@" + p.Address }

// Gossip is a signed node gossip, written in hex as make-gossip prints it;
// its length and signature are checked on load.
type Gossip struct{ gossip.Gossip }

// UnmarshalYAML implements yaml.Unmarshaler.
func (g *Gossip) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "a hex gossip")
	if err != nil {
		return err
	}
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return typeError(n, "gossip is not hex: %v", err)
	}
	if g.Gossip, err = gossip.Decode(b); err != nil {
		return typeError(n, "%v", err)
	}
	return nil
}

// ByteSize is a size in bytes written as a number of bytes (1048576) or
// with a binary unit ("512KiB", "32MiB", "4GiB", "1TiB").
type ByteSize int64

var byteUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalar(n, "a size such as \"32MiB\"")
	if err != nil {
		return err
	}
	num, shift := strings.TrimSpace(s), uint(0)
	for _, u := range byteUnits {
		if v, ok := strings.CutSuffix(num, u.suffix); ok {
			num, shift = strings.TrimSpace(v), u.shift
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64>>shift {
		return typeError(n, "bad size %q: want bytes or e.g. \"512KiB\", \"32MiB\", \"4GiB\"", s)
	}
	*b = ByteSize(v << shift)
	return nil
}

// String writes the size with the largest unit that divides it.
func (b ByteSize) String() string {
	for _, u := range byteUnits {
		if u.shift > 0 && b != 0 && b%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", b>>u.shift, u.suffix)
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}
