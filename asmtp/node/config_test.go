package node

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidation(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.Key = newKey(t)
		c.StoragePath = "node.db"
		return c
	}
	cases := []struct {
		name    string
		change  func(*Config)
		wantErr string // "" for valid
	}{
		{"defaults with key and path", func(*Config) {}, ""},
		{"zero tunables take defaults", func(c *Config) { *c = Config{Key: c.Key, StoragePath: c.StoragePath} }, ""},
		{"no key", func(c *Config) { c.Key = nil }, "key"},
		{"no storage path", func(c *Config) { c.StoragePath = "" }, "storage path"},
		{"listen address without port", func(c *Config) { c.ListenAddress = "localhost" }, "listen address"},
		{"known peer without port", func(c *Config) { c.KnownPeers = []Peer{{Address: "10.0.0.1"}} }, "known peer"},
		{"fanout 1", func(c *Config) { c.Fanout = 1 }, "fanout"},
		{"negative retention", func(c *Config) { c.Retention = -time.Hour }, "retention"},
		{"negative connections", func(c *Config) { c.MaxConnections = -1 }, "max connections"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := valid()
			c.change(&cfg)
			cfg.setDefaults()
			err := cfg.validate()
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want one about %q", err, c.wantErr)
			}
		})
	}
	if c := (Config{}); true {
		c.setDefaults()
		if c.Fanout != DefaultFanout || c.Retention != DefaultRetention || c.MaxConnections != DefaultMaxConnections {
			t.Errorf("zero config defaults: %+v", c)
		}
	}
}
