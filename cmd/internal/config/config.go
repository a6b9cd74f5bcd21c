// Package config is the asmtpd configuration file: its YAML schema, the
// defaults, loading and validation, and the commented template printed by
// `asmtpd-cli default-config`.
//
// An upstream (Rust asmtpd v0.1.0) config.yaml loads unchanged: its keys keep
// their meaning, durations may be upstream {secs, nanos} maps as well as Go
// durations, and the upstream keys this node has no use for (sled tuning,
// heart_beat, gossip queue sizes: see ignoredKeys) are accepted and ignored
// with a warning. Unknown keys are errors naming the key and its line.
//
// To add a section (for example the mail bridges), add a field with a yaml
// tag to Config, its defaults to Default, its checks to validate, and its
// commented keys to default.yaml; error locations need no further work.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/wire"
	"gopkg.in/yaml.v3"
)

// DefaultPort is the ASMTP TCP port.
const DefaultPort = 9800

// Template is the commented configuration printed by `asmtpd-cli
// default-config`; it works as it is next to a generate-new-key entropy.txt.
//
//go:embed default.yaml
var Template []byte

// Config is a loaded asmtpd configuration; default.yaml explains each key.
// Paths are absolute once loaded.
type Config struct {
	Secret  Secret      `yaml:"secret"`
	Users   []PublicKey `yaml:"users"`
	Network Network     `yaml:"network"`
	Storage Storage     `yaml:"storage"`
	Bridge  Bridge      `yaml:"bridge"`

	// Warnings name the keys that were accepted but have no effect.
	Warnings []string `yaml:"-"`
}

// Secret locates the node key.
type Secret struct {
	// Entropy is the entropy file written by generate-new-key.
	Entropy string `yaml:"entropy"`
	// PublicID, when set, is the only identity the node may start as.
	PublicID *PublicKey `yaml:"public_id"`
}

// Network is the node's links, bootstrap and relaying.
type Network struct {
	ListenAddress Address `yaml:"listen_address"`
	// PublicAddress is signed into the node's gossip; defaults to ListenAddress.
	PublicAddress         Address   `yaml:"public_address"`
	KnownPeers            []Peer    `yaml:"known_peers"`
	KnownGossips          []Gossip  `yaml:"known_gossips"`
	Fanout                int       `yaml:"fanout"`
	OpenQueries           bool      `yaml:"open_queries"`
	NamingV1              bool      `yaml:"naming_v1"`
	MaxOpenedConnections  int       `yaml:"max_opened_connections"`
	MessageQueueSize      int       `yaml:"message_queue_size"`
	KnownMessageCacheSize int       `yaml:"known_message_cache_size"`
	Gossiping             Gossiping `yaml:"gossiping"`
	// Per-link and per-topic bounds on what peers make the node store.
	PeerStoreRate   ByteSize `yaml:"peer_store_rate"`
	PeerStoreBurst  ByteSize `yaml:"peer_store_burst"`
	TopicStoreRate  ByteSize `yaml:"topic_store_rate"`
	TopicStoreBurst ByteSize `yaml:"topic_store_burst"`

	HeartBeat yaml.Node `yaml:"heart_beat"` // ignored (see ignoredKeys)
}

// Gossiping paces the PolderCast gossip exchange.
type Gossiping struct {
	// MinimumTimeElapsed is the gossip period: one exchange with one peer
	// each period, so at least this long between two gossips to a peer.
	MinimumTimeElapsed Duration `yaml:"minimum_time_elapsed"`

	QueueSize   yaml.Node `yaml:"queue_size"`   // ignored (see ignoredKeys)
	HistorySize yaml.Node `yaml:"history_size"` // ignored (see ignoredKeys)
}

// Storage is the node's database.
type Storage struct {
	Path              string   `yaml:"path"`
	Retention         Duration `yaml:"retention"`
	GossipRefreshRate Duration `yaml:"gossip_refresh_rate"`
	// MaxSize bounds the stored message content (node.Config.MaxStorageSize).
	MaxSize ByteSize `yaml:"max_size"`

	// Upstream keys without effect here (see ignoredKeys): accepted, unread.
	PassportCacheSize yaml.Node `yaml:"passport_cache_size"`
	Mode              yaml.Node `yaml:"mode"`
	ProfileOnDrop     yaml.Node `yaml:"profile_on_drop"`
	CompressionFactor yaml.Node `yaml:"compression_factor"`
}

// Default returns the configuration of an empty file, with relative paths.
func Default() Config {
	return Config{
		Secret: Secret{Entropy: "entropy.txt"},
		Network: Network{
			ListenAddress:         Address{netip.MustParseAddrPort("127.0.0.1:9800")},
			Fanout:                node.DefaultFanout,
			MaxOpenedConnections:  node.DefaultMaxConnections,
			MessageQueueSize:      node.DefaultLinkQueueSize,
			KnownMessageCacheSize: node.DefaultKnownMessageCacheSize,
			Gossiping:             Gossiping{MinimumTimeElapsed: Duration(node.DefaultGossipInterval)},
			PeerStoreRate:         node.DefaultPeerStoreRate,
			PeerStoreBurst:        node.DefaultPeerStoreBurst,
			TopicStoreRate:        node.DefaultTopicStoreRate,
			TopicStoreBurst:       node.DefaultTopicStoreBurst,
		},
		Storage: Storage{
			Path:              "asmtpd.db",
			Retention:         Duration(node.DefaultRetention),
			GossipRefreshRate: Duration(node.DefaultPersistInterval),
			MaxSize:           node.DefaultMaxStorageSize,
		},
		Bridge: defaultBridge(),
	}
}

// Load reads and checks the configuration file at path. Relative paths in
// it are resolved against the file's directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path, filepath.Dir(abs))
}

// Parse decodes and checks a configuration. name is used in error messages;
// relative paths are resolved against dir.
func Parse(data []byte, name, dir string) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// Parsed twice: the node tree locates errors, and only the decoder can
	// reject unknown keys.
	loc := locate(&doc)
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, loc.explain(name, err)
	}
	if errs := c.validate(); len(errs) > 0 {
		return nil, loc.join(name, errs)
	}
	c.Secret.Entropy = resolve(dir, c.Secret.Entropy)
	c.Storage.Path = resolve(dir, c.Storage.Path)
	c.Bridge.DataDir = resolve(dir, c.Bridge.DataDir)
	for _, k := range ignoredKeys {
		if line, ok := loc.line(k.key); ok {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: %s is ignored: %s", name, line, k.key, k.why))
		}
	}
	return &c, nil
}

func resolve(dir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// keyError is a problem with one key, located later by its dotted path.
type keyError struct {
	key string
	msg string
}

// validate checks c, defaulting network.public_address to the listen address.
func (c *Config) validate() []keyError {
	var errs []keyError
	fail := func(key, format string, args ...any) {
		errs = append(errs, keyError{key, fmt.Sprintf(format, args...)})
	}
	if c.Secret.Entropy == "" {
		fail("secret.entropy", "must name the entropy file")
	}
	if c.Storage.Path == "" {
		fail("storage.path", "must name the database file")
	}
	n := &c.Network
	if !n.ListenAddress.IsValid() {
		fail("network.listen_address", "must be set")
	}
	public := "network.public_address"
	if !n.PublicAddress.IsValid() {
		n.PublicAddress, public = n.ListenAddress, "network.listen_address"
	}
	if a := n.PublicAddress; a.Addr().IsUnspecified() || a.Port() == 0 {
		fail(public, "%s cannot be dialled by peers: set network.public_address to the address and port they should use", a)
	}
	seen := make(map[PublicKey]int)
	for i, p := range n.KnownPeers {
		if j, dup := seen[p.ID]; dup {
			fail(fmt.Sprintf("network.known_peers[%d]", i), "node %s is already listed at known_peers[%d]", p.ID, j)
		}
		seen[p.ID] = i
	}
	if n.Fanout < 2 {
		fail("network.fanout", "is %d; PolderCast needs at least 2", n.Fanout)
	}
	positive := []struct {
		key string
		v   int
	}{
		{"network.max_opened_connections", n.MaxOpenedConnections},
		{"network.message_queue_size", n.MessageQueueSize},
		{"network.known_message_cache_size", n.KnownMessageCacheSize},
	}
	for _, p := range positive {
		if p.v <= 0 {
			fail(p.key, "is %d; must be at least 1", p.v)
		}
	}
	oneMessage := ByteSize(wire.MaxTopicContent)
	sizes := []struct {
		key string
		v   ByteSize
		min ByteSize
	}{
		{"network.peer_store_rate", n.PeerStoreRate, 1},
		{"network.peer_store_burst", n.PeerStoreBurst, oneMessage},
		{"network.topic_store_rate", n.TopicStoreRate, 1},
		{"network.topic_store_burst", n.TopicStoreBurst, oneMessage},
		{"storage.max_size", c.Storage.MaxSize, oneMessage},
	}
	for _, s := range sizes {
		if s.v < s.min {
			fail(s.key, "is %s; must be at least %s", s.v, s.min)
		}
	}
	durations := []struct {
		key string
		v   Duration
	}{
		{"network.gossiping.minimum_time_elapsed", n.Gossiping.MinimumTimeElapsed},
		{"storage.retention", c.Storage.Retention},
		{"storage.gossip_refresh_rate", c.Storage.GossipRefreshRate},
	}
	for _, d := range durations {
		if d.v <= 0 {
			fail(d.key, "must be longer than zero")
		}
	}
	c.Bridge.validate(fail)
	return errs
}

// ignoredKeys are upstream keys that load but have no effect here.
var ignoredKeys = []struct{ key, why string }{
	{"network.heart_beat", "this node has no heartbeat loop; the gossip period is network.gossiping.minimum_time_elapsed"},
	{"network.gossiping.queue_size", "PolderCast here bounds its gossip queues itself"},
	{"network.gossiping.history_size", "PolderCast here bounds its gossip history itself"},
	{"storage.passport_cache_size", "upstream never used it either"},
	{"storage.mode", "it tuned upstream v0.1.0's sled storage; this node uses SQLite"},
	{"storage.profile_on_drop", "it tuned upstream v0.1.0's sled storage; this node uses SQLite"},
	{"storage.compression_factor", "it tuned upstream v0.1.0's sled storage; this node uses SQLite"},
}
