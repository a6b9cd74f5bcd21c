package config

import (
	"crypto/ed25519"
	"log/slog"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/node"
)

// NodeConfig is the node configuration this file describes, for the node
// key (see NodeKey) and a logger. Node tunables without a key here keep
// node's defaults.
func (c *Config) NodeConfig(key ed25519.PrivateKey, log *slog.Logger) node.Config {
	n := c.Network
	cfg := node.Config{
		Key:                   key,
		ListenAddress:         n.ListenAddress.String(),
		PublicAddress:         n.PublicAddress.AddrPort,
		StoragePath:           c.Storage.Path,
		MaxConnections:        n.MaxOpenedConnections,
		Fanout:                n.Fanout,
		Retention:             time.Duration(c.Storage.Retention),
		GossipInterval:        time.Duration(n.Gossiping.MinimumTimeElapsed),
		KnownMessageCacheSize: n.KnownMessageCacheSize,
		LinkQueueSize:         n.MessageQueueSize,
		OpenQueries:           n.OpenQueries,
		NamingV1:              n.NamingV1,
		PersistInterval:       time.Duration(c.Storage.GossipRefreshRate),
		PeerStoreRate:         int64(n.PeerStoreRate),
		PeerStoreBurst:        int64(n.PeerStoreBurst),
		TopicStoreRate:        int64(n.TopicStoreRate),
		TopicStoreBurst:       int64(n.TopicStoreBurst),
		MaxStorageSize:        int64(c.Storage.MaxSize),
		Logger:                log,
	}
	for _, u := range c.Users {
		cfg.Users = append(cfg.Users, keys.PublicKey(u))
	}
	for _, p := range n.KnownPeers {
		cfg.KnownPeers = append(cfg.KnownPeers, node.Peer{ID: keys.PublicKey(p.ID), Address: p.Address})
	}
	for _, g := range n.KnownGossips {
		cfg.KnownGossips = append(cfg.KnownGossips, g.Gossip)
	}
	return cfg
}
