package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/asmtp/asmtp/asmtp/gossip"
	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/wire"
)

// Peer is a node reachable at a known address, dialled without needing its
// gossip first (a bootstrap entry; its gossip arrives over the link).
type Peer struct {
	ID      keys.PublicKey
	Address string // "host:port"
}

// Config configures a Node. Zero values of the tunables mean the default
// listed beside each field (see DefaultConfig); Key and StoragePath are
// required.
type Config struct {
	// Key is the node's Ed25519 identity; its public half is the node id.
	Key ed25519.PrivateKey
	// ListenAddress is the TCP address to listen on ("[::1]:9876", or
	// "127.0.0.1:0" for an ephemeral port). Default "[::1]:9876".
	ListenAddress string
	// PublicAddress is advertised in the node's gossip. Zero: the address
	// the listener is bound to (set it when listening on a wildcard
	// address such as "[::]:9876", or behind NAT).
	PublicAddress netip.AddrPort
	// Users are the Ed25519 keys of the client devices (asmtp-cli, the
	// in-process bridge) allowed to attach: only they may put passports,
	// register and deregister topics. AddUser/RemoveUser change the set at
	// run time.
	Users []keys.PublicKey
	// KnownGossips are bootstrap gossips (as in upstream known_gossips).
	KnownGossips []gossip.Gossip
	// KnownPeers are bootstrap peers dialled by address.
	KnownPeers []Peer
	// StoragePath is the SQLite database file (created if missing).
	StoragePath string

	// MaxConnections bounds live links, node and user links together
	// (upstream max_opened_connections). Default 128.
	MaxConnections int
	// Fanout is PolderCast's F: each subscriber forwards each message to F
	// peers. At least 2. Default 3.
	Fanout int
	// Retention is how long topic messages are kept. Default 30 days.
	Retention time.Duration
	// GossipInterval is the period of the gossip exchange. Default 10 s.
	GossipInterval time.Duration
	// KnownMessageCacheSize bounds the relay dedupe cache (entries).
	// Default 10240.
	KnownMessageCacheSize int
	// LinkQueueSize bounds each link's write queue (messages). Default 256.
	LinkQueueSize int
	// DeliveryQueueSize bounds each session's live delivery channel.
	// Default 256.
	DeliveryQueueSize int
	// HandshakeTimeout bounds dialling plus the Noise handshake. Default 10 s.
	HandshakeTimeout time.Duration
	// FirstByteTimeout closes an inbound connection that sends nothing for
	// this long, so idle connections do not hold handshake slots.
	// Default 3 s.
	FirstByteTimeout time.Duration
	// IdleTimeout closes a node link that sent nothing for this long (the
	// per-link read deadline). User links rely on TCP keepalive instead.
	// Default 5 min.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one message, and waiting for room in a
	// full link queue, before the link is considered stuck and closed.
	// Default 30 s.
	WriteTimeout time.Duration
	// PeerStoreRate and PeerStoreBurst bound the bytes of topic messages
	// one node link makes us store, per second and in a burst; a
	// stranger's link (inbound, younger than StrangerPeriod) gets an
	// eighth. Over it messages are dropped and the peer struck.
	// Defaults 1 MiB/s and 32 MiB (a 25 MiB mail fits one burst).
	PeerStoreRate, PeerStoreBurst int64
	// TopicStoreRate and TopicStoreBurst bound the same for one topic,
	// all links together. Defaults 2 MiB/s and 64 MiB.
	TopicStoreRate, TopicStoreBurst int64
	// MaxStorageSize bounds the bytes of stored message content. Over it
	// the node evicts what no local user waits for and then refuses new
	// messages from peers (quota.go). Default 4 GiB.
	MaxStorageSize int64
	// QuarantineDuration is how long a misbehaving peer is refused.
	// Default 10 min.
	QuarantineDuration time.Duration
	// MaxClockSkew bounds how far in the future a gossip may be dated.
	// Default 10 min.
	MaxClockSkew time.Duration
	// QueryRate is the sustained number of QueryTopicMessages (and
	// GetPassport) a peer may send per second; QueryBurst the burst.
	// A node peer's excess requests are dropped and count as strikes; a
	// local user's are delayed. Defaults 5 and 20.
	QueryRate  float64
	QueryBurst int
	// QueryLimit bounds the messages sent back for one query. Default 1000.
	QueryLimit int
	// OpenQueries lets any peer query any stored topic (upstream
	// behaviour, defect #4). Default false: local users may query the
	// topics they registered, other nodes the topics they advertise in
	// their own gossip.
	OpenQueries bool
	// NamingV1 makes the node gossip as a v1 node (info bit 10 clear), as
	// upstream and earlier releases do: for tests of mixed networks and
	// for operators who must look like an older release. Its users may
	// still register inbox topics; peers then treat the node as v1
	// (PROTOCOL.md §16.8). Default false: the node speaks naming v2.
	NamingV1 bool
	// BucketWindow and BucketHold pace the intro-bucket width (§16.4): the
	// network-size estimate is smoothed over BucketWindow, and the width
	// moves once the estimate has called for it for BucketHold. Defaults
	// a day each.
	BucketWindow, BucketHold time.Duration
	// PassportTimeout bounds how long GetPassport waits for the network.
	// Default 10 s.
	PassportTimeout time.Duration
	// PersistInterval is how often the gossips of the node's views and
	// its last-seen time are written to the database, and messages older
	// than Retention deleted. Default 30 s.
	PersistInterval time.Duration
	// Logger receives the node's logs. Default: slog.Default().
	Logger *slog.Logger
}

// Defaults of the tunable Config fields.
const (
	DefaultListenAddress         = "[::1]:9876"
	DefaultMaxConnections        = 128
	DefaultFanout                = 3
	DefaultRetention             = 30 * 24 * time.Hour
	DefaultGossipInterval        = 10 * time.Second
	DefaultKnownMessageCacheSize = 10240
	DefaultLinkQueueSize         = 256
	DefaultDeliveryQueueSize     = 256
	DefaultHandshakeTimeout      = 10 * time.Second
	DefaultFirstByteTimeout      = 3 * time.Second
	DefaultIdleTimeout           = 5 * time.Minute
	DefaultWriteTimeout          = 30 * time.Second
	DefaultQuarantineDuration    = 10 * time.Minute
	DefaultPeerStoreRate         = 1 << 20
	DefaultPeerStoreBurst        = 32 << 20
	DefaultTopicStoreRate        = 2 << 20
	DefaultTopicStoreBurst       = 64 << 20
	DefaultMaxStorageSize        = 4 << 30
	DefaultMaxClockSkew          = 10 * time.Minute
	DefaultQueryRate             = 5
	DefaultQueryBurst            = 20
	DefaultQueryLimit            = 1000
	DefaultPassportTimeout       = 10 * time.Second
	DefaultPersistInterval       = 30 * time.Second
)

// DefaultConfig returns a Config with every tunable at its default; the
// caller sets Key, StoragePath, Users and the addresses.
func DefaultConfig() Config {
	var c Config
	c.setDefaults()
	return c
}

// setDefaults fills the zero tunables with their defaults.
func (c *Config) setDefaults() {
	setDefault(&c.ListenAddress, DefaultListenAddress)
	setDefault(&c.MaxConnections, DefaultMaxConnections)
	setDefault(&c.Fanout, DefaultFanout)
	setDefault(&c.Retention, DefaultRetention)
	setDefault(&c.GossipInterval, DefaultGossipInterval)
	setDefault(&c.KnownMessageCacheSize, DefaultKnownMessageCacheSize)
	setDefault(&c.LinkQueueSize, DefaultLinkQueueSize)
	setDefault(&c.DeliveryQueueSize, DefaultDeliveryQueueSize)
	setDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&c.FirstByteTimeout, DefaultFirstByteTimeout)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.QuarantineDuration, DefaultQuarantineDuration)
	setDefault(&c.PeerStoreRate, DefaultPeerStoreRate)
	setDefault(&c.PeerStoreBurst, DefaultPeerStoreBurst)
	setDefault(&c.TopicStoreRate, DefaultTopicStoreRate)
	setDefault(&c.TopicStoreBurst, DefaultTopicStoreBurst)
	setDefault(&c.MaxStorageSize, DefaultMaxStorageSize)
	setDefault(&c.MaxClockSkew, DefaultMaxClockSkew)
	setDefault(&c.QueryRate, DefaultQueryRate)
	setDefault(&c.QueryBurst, DefaultQueryBurst)
	setDefault(&c.QueryLimit, DefaultQueryLimit)
	setDefault(&c.PassportTimeout, DefaultPassportTimeout)
	setDefault(&c.PersistInterval, DefaultPersistInterval)
	setDefault(&c.BucketWindow, BucketWindow)
	setDefault(&c.BucketHold, BucketHold)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// validate checks a Config whose defaults are already set.
func (c *Config) validate() error {
	var errs []error
	if len(c.Key) != ed25519.PrivateKeySize {
		errs = append(errs, fmt.Errorf("key: %d bytes, want an Ed25519 private key", len(c.Key)))
	}
	if c.StoragePath == "" {
		errs = append(errs, errors.New("storage path: required"))
	}
	if _, _, err := net.SplitHostPort(c.ListenAddress); err != nil {
		errs = append(errs, fmt.Errorf("listen address: %w", err))
	}
	for _, p := range c.KnownPeers {
		if _, _, err := net.SplitHostPort(p.Address); err != nil {
			errs = append(errs, fmt.Errorf("known peer %s: %w", p.ID, err))
		}
	}
	positive := []struct {
		name string
		ok   bool
	}{
		{"max connections", c.MaxConnections > 0},
		{"fanout (at least 2)", c.Fanout >= 2},
		{"retention", c.Retention > 0},
		{"gossip interval", c.GossipInterval > 0},
		{"known message cache size", c.KnownMessageCacheSize > 0},
		{"link queue size", c.LinkQueueSize > 0},
		{"delivery queue size", c.DeliveryQueueSize > 0},
		{"handshake timeout", c.HandshakeTimeout > 0},
		{"first byte timeout", c.FirstByteTimeout > 0},
		{"idle timeout", c.IdleTimeout > 0},
		{"write timeout", c.WriteTimeout > 0},
		{"quarantine duration", c.QuarantineDuration > 0},
		{"peer store rate", c.PeerStoreRate > 0},
		{"peer store burst (at least one message)", c.PeerStoreBurst >= wire.MaxTopicContent},
		{"topic store rate", c.TopicStoreRate > 0},
		{"topic store burst (at least one message)", c.TopicStoreBurst >= wire.MaxTopicContent},
		{"max storage size (at least one message)", c.MaxStorageSize >= wire.MaxTopicContent},
		{"max clock skew", c.MaxClockSkew > 0},
		{"query rate", c.QueryRate > 0},
		{"query burst", c.QueryBurst > 0},
		{"query limit", c.QueryLimit > 0},
		{"passport timeout", c.PassportTimeout > 0},
		{"persist interval", c.PersistInterval > 0},
		{"bucket window", c.BucketWindow > 0},
		{"bucket hold", c.BucketHold > 0},
	}
	for _, p := range positive {
		if !p.ok {
			errs = append(errs, fmt.Errorf("%s: must be positive", p.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("node config: %w", err)
	}
	return nil
}
