package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/bridge"
	"github.com/asmtp/asmtp/bridge/outbound"
	"gopkg.in/yaml.v3"
)

func parse(t *testing.T, src string) (*Config, error) {
	t.Helper()
	return Parse([]byte(src), "test.yaml", "/srv/asmtpd")
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := parse(t, src)
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", src, err)
	}
	return c
}

// locatedErrors returns the *Error values joined in err.
func locatedErrors(t *testing.T, err error) []*Error {
	t.Helper()
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if e, ok := err.(*Error); ok {
			out = append(out, e)
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

func TestUpstreamConfigLoadsUnchanged(t *testing.T) {
	c, err := Load("testdata/upstream-v0.1.0.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := c.Network
	checks := []struct {
		what      string
		got, want any
	}{
		{"secret.entropy", c.Secret.Entropy, "/path/to/entropy.txt"},
		{"users", c.Users[0].String(), "cf71feb4eb176849217727f286a9c87c80b071b23084d0013334d59786605a24"},
		{"listen_address", n.ListenAddress.String(), "[::1]:9876"},
		{"public_address", n.PublicAddress.String(), "[::1]:9876"},
		{"max_opened_connections", n.MaxOpenedConnections, 128},
		{"message_queue_size", n.MessageQueueSize, 64},
		{"known_message_cache_size", n.KnownMessageCacheSize, 10240},
		{"known_gossips", len(n.KnownGossips), 1},
		{"known gossip id", n.KnownGossips[0].ID.String(), "7353f1e7fb03b2346638b4e2b93f810c84853787970be0844df63cdc9979a01d"},
		{"known gossip address", n.KnownGossips[0].Addr.String(), "86.31.102.125:9800"},
		{"minimum_time_elapsed", time.Duration(n.Gossiping.MinimumTimeElapsed), 30 * time.Second},
		{"storage.path", c.Storage.Path, "/path/to/persistent/storage.db"},
		{"gossip_refresh_rate", time.Duration(c.Storage.GossipRefreshRate), time.Minute},
		{"fanout (not upstream: default)", n.Fanout, 3},
		{"retention (not upstream: default)", time.Duration(c.Storage.Retention), 30 * 24 * time.Hour},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.what, ch.got, ch.want)
		}
	}
	warned := strings.Join(c.Warnings, "\n")
	for _, k := range ignoredKeys {
		key := k.key
		if !strings.Contains(warned, key+" is ignored") {
			t.Errorf("no warning for %s in:\n%s", key, warned)
		}
	}
}

func TestNodeConfigOfUpstreamConfig(t *testing.T) {
	c, err := Load("testdata/upstream-v0.1.0.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := c.NodeConfig(nil, nil)
	checks := []struct {
		what      string
		got, want any
	}{
		{"ListenAddress", n.ListenAddress, "[::1]:9876"},
		{"PublicAddress", n.PublicAddress.String(), "[::1]:9876"},
		{"Users", n.Users[0].String(), "cf71feb4eb176849217727f286a9c87c80b071b23084d0013334d59786605a24"},
		{"KnownGossips", n.KnownGossips[0].ID.String(), "7353f1e7fb03b2346638b4e2b93f810c84853787970be0844df63cdc9979a01d"},
		{"StoragePath", n.StoragePath, "/path/to/persistent/storage.db"},
		{"MaxConnections", n.MaxConnections, 128},
		{"LinkQueueSize", n.LinkQueueSize, 64},
		{"KnownMessageCacheSize", n.KnownMessageCacheSize, 10240},
		{"GossipInterval", n.GossipInterval, 30 * time.Second},
		{"PersistInterval", n.PersistInterval, time.Minute},
		{"Fanout", n.Fanout, 3},
		{"Retention", n.Retention, 30 * 24 * time.Hour},
		{"OpenQueries", n.OpenQueries, false},
		{"NamingV1", n.NamingV1, false},
		{"PeerStoreBurst (not upstream: default)", n.PeerStoreBurst, int64(32 << 20)},
		{"MaxStorageSize (not upstream: default)", n.MaxStorageSize, int64(4 << 30)},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.what, ch.got, ch.want)
		}
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		value   string
		want    time.Duration
		wantErr string
	}{
		{value: "{ secs: 30, nanos: 0 }", want: 30 * time.Second},
		{value: "{secs: 1, nanos: 500000000}", want: 1500 * time.Millisecond},
		{value: "{secs: 2}", want: 2 * time.Second},
		{value: "\"30s\"", want: 30 * time.Second},
		{value: "1m30s", want: 90 * time.Second},
		{value: "720h", want: 720 * time.Hour},
		{value: "30", wantErr: "has no unit"},
		{value: "soon", wantErr: `bad duration "soon"`},
		{value: "-5s", wantErr: "negative"},
		{value: "{secs: 1, nanos: 1000000000}", wantErr: "nanos is 1000000000"},
		{value: "{secs: 1, milis: 5}", wantErr: `unknown key "milis"`},
		{value: "{secs: -1}", wantErr: "cannot unmarshal"},
		{value: "[1, 2]", wantErr: "want a duration"},
		{value: "0s", wantErr: "must be longer than zero"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			c, err := parse(t, "storage:\n  retention: "+tt.value+"\n")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "test.yaml:2: storage.retention") {
					t.Errorf("error %q does not name storage.retention at line 2", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := time.Duration(c.Storage.Retention); got != tt.want {
				t.Errorf("retention = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUnknownKeysAreLocated(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		wantKey  string
		wantLine int
	}{
		{"top level", "users: []\nuser: []\n", "user", 2},
		{"secret", "secret:\n  entropy: e.txt\n  password: hunter2\n", "secret.password", 3},
		{"network", "network:\n  fanout: 3\n  listen_adress: \"[::1]:9800\"\n", "network.listen_adress", 3},
		{"gossiping", "network:\n  gossiping:\n    queue_size: 1\n    history: 2\n", "network.gossiping.history", 4},
		{"flow map", "network:\n  gossiping: {queue_size: 1, histroy_size: 2}\n", "network.gossiping.histroy_size", 2},
		{"duration map", "network:\n  gossiping:\n    minimum_time_elapsed: {secs: 1, nano: 2}\n", "network.gossiping.minimum_time_elapsed.nano", 3},
		{"storage", "storage:\n\n  pth: x.db\n", "storage.pth", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.src)
			errs := locatedErrors(t, err)
			if len(errs) != 1 {
				t.Fatalf("got %v, want one located error", err)
			}
			e := errs[0]
			if e.Key != tt.wantKey || e.Line != tt.wantLine || !strings.Contains(e.Msg, "unknown key") {
				t.Errorf("got %q (key %q line %d), want unknown key %q at line %d", e, e.Key, e.Line, tt.wantKey, tt.wantLine)
			}
		})
	}
}

func TestEveryErrorIsReported(t *testing.T) {
	src := "users:\n  - abc\nnetwork:\n  fanout: many\n  colour: blue\n"
	errs := locatedErrors(t, func() error { _, err := parse(t, src); return err }())
	var got []string
	for _, e := range errs {
		got = append(got, e.Key)
	}
	want := []string{"users[0]", "network.fanout", "network.colour"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("error keys = %q, want %q", got, want)
	}
}

func TestKnownPeers(t *testing.T) {
	const (
		id      = "7353f1e7fb03b2346638b4e2b93f810c84853787970be0844df63cdc9979a01d"
		otherID = "cf71feb4eb176849217727f286a9c87c80b071b23084d0013334d59786605a24"
	)
	tests := []struct {
		entry    string
		wantAddr string
		wantErr  string
	}{
		{entry: id + "@127.0.0.1:9800", wantAddr: "127.0.0.1:9800"},
		{entry: id + "@[::1]:9800", wantAddr: "[::1]:9800"},
		{entry: id + "@node.example.org:9800", wantAddr: "node.example.org:9800"},
		{entry: strings.ToUpper(id) + "@10.0.0.1:1", wantAddr: "10.0.0.1:1"},
		{entry: id + " 127.0.0.1:9800", wantErr: "want <64-hex node id>@<host:port>"},
		{entry: id[:62] + "@127.0.0.1:9800", wantErr: "node id: public key: 62 hex characters, want 64"},
		{entry: strings.Replace(id, "7", "x", 1) + "@127.0.0.1:9800", wantErr: "node id"},
		{entry: id + "@127.0.0.1", wantErr: "missing port"},
		{entry: id + "@:9800", wantErr: "has no host"},
		{entry: id + "@127.0.0.1:http", wantErr: `port "http" is not a number`},
		{entry: id + "@127.0.0.1:0", wantErr: `port "0" is not a number from 1 to 65535`},
		{entry: id + "@127.0.0.1:70000", wantErr: "not a number from 1 to 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			src := "network:\n  known_peers:\n    - " + otherID + "@127.0.0.2:9800\n    - \"" + tt.entry + "\"\n"
			c, err := parse(t, src)
			if tt.wantErr != "" {
				errs := locatedErrors(t, err)
				if len(errs) != 1 || !strings.Contains(errs[0].Msg, tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if errs[0].Key != "network.known_peers[1]" || errs[0].Line != 4 {
					t.Errorf("error at %q line %d, want network.known_peers[1] line 4", errs[0].Key, errs[0].Line)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := c.NodeConfig(nil, nil).KnownPeers[1]
			if p.Address != tt.wantAddr || !strings.EqualFold(p.ID.String(), id) {
				t.Errorf("node peer = %v, want %s@%s", p, id, tt.wantAddr)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	const id = "7353f1e7fb03b2346638b4e2b93f810c84853787970be0844df63cdc9979a01d"
	tests := []struct {
		name    string
		src     string
		wantKey string
		wantMsg string
	}{
		{"fanout 1", "network:\n  fanout: 1\n", "network.fanout", "at least 2"},
		{"no connections", "network:\n  max_opened_connections: 0\n", "network.max_opened_connections", "at least 1"},
		{"negative queue", "network:\n  message_queue_size: -1\n", "network.message_queue_size", "at least 1"},
		{"zero gossip period", "network:\n  gossiping:\n    minimum_time_elapsed: {secs: 0, nanos: 0}\n", "network.gossiping.minimum_time_elapsed", "longer than zero"},
		{"zero retention", "storage:\n  retention: 0s\n", "storage.retention", "longer than zero"},
		{"zero retry window", "bridge:\n  retry_window: 0s\n", "bridge.retry_window", "positive duration"},
		{"zero delay warning", "bridge:\n  delay_warning: 0s\n", "bridge.delay_warning", "positive duration"},
		{"wildcard listen, no public address", "network:\n  listen_address: \"0.0.0.0:9800\"\n", "network.listen_address", "set network.public_address"},
		{"listen port 0, no public address", "network:\n  listen_address: \"127.0.0.1:0\"\n", "network.listen_address", "set network.public_address"},
		{"wildcard public address", "network:\n  public_address: \"[::]:9800\"\n", "network.public_address", "cannot be dialled"},
		{"public port 0", "network:\n  public_address: \"127.0.0.1:0\"\n", "network.public_address", "cannot be dialled"},
		{"listen not an IP", "network:\n  listen_address: \"localhost:9800\"\n", "network.listen_address", "want an IP and port"},
		{"duplicate peer", "network:\n  known_peers:\n    - " + id + "@127.0.0.1:1\n    - " + id + "@127.0.0.1:2\n", "network.known_peers[1]", "already listed at known_peers[0]"},
		{"bad user", "users:\n  - \"cf71\"\n", "users[0]", "want 64"},
		{"bad public_id", "secret:\n  public_id: zz\n", "secret.public_id", "public key"},
		{"empty entropy path", "secret:\n  entropy: \"\"\n", "secret.entropy", "must name"},
		{"gossip not hex", "network:\n  known_gossips: [\"8000zz\"]\n", "network.known_gossips[0]", "not hex"},
		{"gossip bad signature", "network:\n  known_gossips:\n    - \"80007353f1e7fb03b2346638b4e2b93f810c84853787970be0844df63cdc9979a01d0221561d561f667d26482dc49b0ef76a32f94aeecb4c01191510ca8ec977bd714545888ad0117fa81a176922927114db64cbc6666d2fa2877207baabe0080489fac7c054335c68fcc90e\"\n", "network.known_gossips[0]", "gossip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.src)
			errs := locatedErrors(t, err)
			if len(errs) != 1 {
				t.Fatalf("got %v, want one located error", err)
			}
			if errs[0].Key != tt.wantKey || !strings.Contains(errs[0].Msg, tt.wantMsg) {
				t.Errorf("got %q, want key %q and a message containing %q", errs[0], tt.wantKey, tt.wantMsg)
			}
			if errs[0].Line == 0 {
				t.Errorf("%q has no line", errs[0])
			}
		})
	}
}

func TestBridgeRetryWindow(t *testing.T) {
	for _, tt := range []struct {
		src  string
		want time.Duration
	}{
		{"", outbound.DefaultRetryWindow},
		{"bridge:\n  retry_window: \"15s\"\n", 15 * time.Second},
		{"bridge:\n  retry_window: {secs: 3600, nanos: 0}\n", time.Hour},
	} {
		if got := mustParse(t, tt.src).BridgeConfig(nil).Delivery.RetryWindow; got != tt.want {
			t.Errorf("%q: retry window %v, want %v", tt.src, got, tt.want)
		}
	}
}

func TestBridgeDelayWarning(t *testing.T) {
	for _, tt := range []struct {
		src  string
		want time.Duration
	}{
		{"", outbound.DefaultDelayWarning},
		{"bridge:\n  delay_warning: \"30m\"\n", 30 * time.Minute},
	} {
		if got := mustParse(t, tt.src).BridgeConfig(nil).Delivery.DelayWarning; got != tt.want {
			t.Errorf("%q: delay warning %v, want %v", tt.src, got, tt.want)
		}
	}
}

func TestBridgeImplicitTLS(t *testing.T) {
	const tlsOn = "bridge:\n  tls: true\n"
	tests := []struct {
		name                 string
		src                  string
		wantIMAPS, wantSMTPS string // bridge.Config.IMAPSAddr, SMTPSAddr
		wantKey, wantMsg     string // the one error expected, if any
	}{
		{name: "absent is off", src: tlsOn},
		{name: "empty is off", src: tlsOn + "  imaps_listen_address: \"\"\n  smtps_listen_address: \"\"\n"},
		{name: "null is off", src: tlsOn + "  imaps_listen_address:\n  smtps_listen_address: ~\n"},
		{name: "off needs no tls", src: "bridge:\n  imaps_listen_address: \"\"\n"},
		{name: "both, beyond loopback", src: tlsOn + "  imaps_listen_address: \"0.0.0.0:993\"\n  smtps_listen_address: \"[::]:465\"\n",
			wantIMAPS: "0.0.0.0:993", wantSMTPS: "[::]:465"},
		{name: "imaps only, loopback", src: tlsOn + "  imaps_listen_address: \"127.0.0.1:1993\"\n", wantIMAPS: "127.0.0.1:1993"},
		{name: "smtps only", src: tlsOn + "  smtps_listen_address: \"192.0.2.7:465\"\n", wantSMTPS: "192.0.2.7:465"},
		{name: "ephemeral ports may repeat", src: tlsOn + "  imaps_listen_address: \"127.0.0.1:0\"\n  smtps_listen_address: \"127.0.0.1:0\"\n",
			wantIMAPS: "127.0.0.1:0", wantSMTPS: "127.0.0.1:0"},
		{name: "imaps without tls", src: "bridge:\n  imaps_listen_address: \"0.0.0.0:993\"\n",
			wantKey: "bridge.imaps_listen_address", wantMsg: "needs bridge.tls: true"},
		{name: "smtps without tls, even on loopback", src: "bridge:\n  smtps_listen_address: \"127.0.0.1:1465\"\n",
			wantKey: "bridge.smtps_listen_address", wantMsg: "needs bridge.tls: true"},
		{name: "imaps on the imap port", src: tlsOn + "  imaps_listen_address: \"127.0.0.1:1143\"\n",
			wantKey: "bridge.imaps_listen_address", wantMsg: "is also bridge.imap_listen_address"},
		{name: "smtps on the imaps port", src: tlsOn + "  imaps_listen_address: \"[::]:993\"\n  smtps_listen_address: \"[::]:993\"\n",
			wantKey: "bridge.smtps_listen_address", wantMsg: "is also bridge.imaps_listen_address"},
		{name: "not an IP", src: tlsOn + "  imaps_listen_address: \"localhost:993\"\n",
			wantKey: "bridge.imaps_listen_address", wantMsg: "want an IP and port"},
		{name: "no port", src: tlsOn + "  smtps_listen_address: \"0.0.0.0\"\n",
			wantKey: "bridge.smtps_listen_address", wantMsg: "want an IP and port"},
		{name: "empty imap address is still required", src: "bridge:\n  imap_listen_address: \"\"\n",
			wantKey: "bridge.imap_listen_address", wantMsg: "must be set"},
		{name: "carddav beyond loopback without tls", src: "bridge:\n  carddav_listen_address: \"0.0.0.0:1808\"\n",
			wantKey: "bridge.carddav_listen_address", wantMsg: "not a loopback address"},
		{name: "carddav on the smtp port", src: "bridge:\n  carddav_listen_address: \"127.0.0.1:1587\"\n",
			wantKey: "bridge.carddav_listen_address", wantMsg: "is also bridge.smtp_listen_address"},
		{name: "carddav off", src: "bridge:\n  carddav_listen_address: \"\"\n"},
		{name: "carddav beyond loopback with tls", src: tlsOn + "  carddav_listen_address: \"0.0.0.0:1808\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse(t, tt.src)
			if tt.wantKey != "" {
				errs := locatedErrors(t, err)
				if len(errs) != 1 || errs[0].Key != tt.wantKey || !strings.Contains(errs[0].Msg, tt.wantMsg) || errs[0].Line == 0 {
					t.Fatalf("error = %v, want one at %s with a line, containing %q", err, tt.wantKey, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			bc := c.BridgeConfig(nil)
			if bc.IMAPSAddr != tt.wantIMAPS || bc.SMTPSAddr != tt.wantSMTPS {
				t.Errorf("IMAPSAddr, SMTPSAddr = %q, %q; want %q, %q", bc.IMAPSAddr, bc.SMTPSAddr, tt.wantIMAPS, tt.wantSMTPS)
			}
			if bc.IMAPAddr != bridge.DefaultIMAPAddr || bc.SMTPAddr != bridge.DefaultSMTPAddr {
				t.Errorf("plain ports moved: %s, %s", bc.IMAPAddr, bc.SMTPAddr)
			}
		})
	}
}

func TestPublicAddressDefaultsToListenAddress(t *testing.T) {
	c := mustParse(t, "network:\n  listen_address: \"127.0.0.1:9811\"\n")
	if got := c.Network.PublicAddress.String(); got != "127.0.0.1:9811" {
		t.Errorf("public_address = %s, want the listen address", got)
	}
}

func TestRelativePathsFollowTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	src := "secret:\n  entropy: keys/entropy.txt\nstorage:\n  path: /var/lib/asmtpd/node.db\n"
	if err := os.WriteFile(filepath.Join(dir, "node.yaml"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(filepath.Join(dir, "node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "keys", "entropy.txt"); c.Secret.Entropy != want {
		t.Errorf("secret.entropy = %s, want %s", c.Secret.Entropy, want)
	}
	if c.Storage.Path != "/var/lib/asmtpd/node.db" {
		t.Errorf("storage.path = %s, want the absolute path unchanged", c.Storage.Path)
	}
}

func TestTemplateIsTheDefault(t *testing.T) {
	c, err := Parse(Template, "template", "/srv/asmtpd")
	if err != nil {
		t.Fatal(err)
	}
	empty := mustParse(t, "")
	// %+v prints nil and empty lists alike; the template writes "users: []".
	if fmt.Sprintf("%+v", c) != fmt.Sprintf("%+v", empty) {
		t.Errorf("the template does not load as the defaults:\ntemplate %+v\ndefaults %+v", c, empty)
	}
	if c.Storage.Path != "/srv/asmtpd/asmtpd.db" || c.Secret.Entropy != "/srv/asmtpd/entropy.txt" {
		t.Errorf("template paths %s, %s are not next to the config", c.Storage.Path, c.Secret.Entropy)
	}
	if len(c.Warnings) > 0 {
		t.Errorf("the template warns: %q", c.Warnings)
	}
}

// TestTemplateDocumentsEveryKey fails when a key is added to Config but not
// to default.yaml (as a setting or as a commented-out example).
func TestTemplateDocumentsEveryKey(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(Template, &doc); err != nil {
		t.Fatal(err)
	}
	present := locate(&doc).lines
	ignored := make(map[string]bool)
	for _, k := range ignoredKeys {
		ignored[k.key] = true
	}
	for _, key := range schemaKeys(reflect.TypeFor[Config](), "") {
		leaf := key[strings.LastIndex(key, ".")+1:]
		_, set := present[key]
		if !set && !ignored[key] && !bytes.Contains(Template, []byte("# "+leaf+":")) {
			t.Errorf("default.yaml does not mention %s", key)
		}
		if set && ignored[key] {
			t.Errorf("default.yaml sets %s, which is ignored", key)
		}
	}
}

// schemaKeys lists the dotted YAML keys of a config struct type.
func schemaKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		keys = append(keys, key)
		if isSection(f.Type) {
			keys = append(keys, schemaKeys(f.Type, key+".")...)
		}
	}
	return keys
}

// isSection tells a nested section from a value type such as Address.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t.PkgPath() == reflect.TypeFor[Config]().PkgPath() &&
		!reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]())
}

func TestExampleConfigIsTheTemplate(t *testing.T) {
	example, err := os.ReadFile("../../../contrib/config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(example, Template) {
		t.Error("contrib/config.example.yaml differs from the template; regenerate it with\n\tgo run ./cmd/asmtpd-cli default-config > contrib/config.example.yaml")
	}
}

func TestNodeKeyChecksPublicID(t *testing.T) {
	// PROTOCOL.md §10: entropy 00 01 … 3f with password "asmtp".
	const id = "78f6b1cc94b56c934b8df791c8a8362e72b3decd8fbb0e132d2148a358ebf4e8"
	var entropy [64]byte
	for i := range entropy {
		entropy[i] = byte(i)
	}
	dir := t.TempDir()
	// With a trailing newline, which upstream choked on.
	if err := os.WriteFile(filepath.Join(dir, "entropy.txt"), []byte(hex.EncodeToString(entropy[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		publicID string
		password string
		wantErr  string
	}{
		{name: "no public_id", password: "asmtp"},
		{name: "matching public_id", publicID: id, password: "asmtp"},
		{name: "wrong password", publicID: id, password: "asmtq", wantErr: "the password derives node id "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "secret:\n  entropy: entropy.txt\n"
			if tt.publicID != "" {
				src += "  public_id: " + tt.publicID + "\n"
			}
			c, err := Parse([]byte(src), "test.yaml", dir)
			if err != nil {
				t.Fatal(err)
			}
			key, err := c.NodeKey(tt.password)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) ||
					!strings.Contains(err.Error(), "but secret.public_id is "+id) ||
					!strings.Contains(err.Error(), "refusing to start") {
					t.Fatalf("error = %v, want a refusal naming both ids", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := keys.Public(key).String(); got != id {
				t.Errorf("node id = %s, want %s", got, id)
			}
		})
	}
}

func TestNodeKeyReportsMissingEntropy(t *testing.T) {
	c := mustParse(t, "secret:\n  entropy: /nonexistent/entropy.txt\n")
	if _, err := c.NodeKey("pw"); err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "secret.entropy") {
		t.Errorf("error = %v, want a missing secret.entropy file", err)
	}
}

// Sizes take bytes or a binary unit; the node limits reach the node
// config; a size too small for one message is refused with its key.
func TestByteSizes(t *testing.T) {
	cases := []struct {
		yaml string
		want ByteSize
		bad  bool
	}{
		{"1048576", 1 << 20, false},
		{`"512KiB"`, 512 << 10, false},
		{`"32MiB"`, 32 << 20, false},
		{`"4 GiB"`, 4 << 30, false},
		{`"100B"`, 100, false},
		{`"12MB"`, 0, true},
		{`"-1MiB"`, 0, true},
		{`"9999999TiB"`, 0, true},
	}
	for _, c := range cases {
		var b ByteSize
		err := yaml.Unmarshal([]byte(c.yaml), &b)
		if (err != nil) != c.bad || (!c.bad && b != c.want) {
			t.Errorf("%s: got %v, %v; want %v (error: %v)", c.yaml, b, err, c.want, c.bad)
		}
	}
	base := "secret: {entropy: e.txt}\n"
	c, err := Parse([]byte(base+"network: {peer_store_rate: \"256KiB\", peer_store_burst: \"8MiB\", topic_store_rate: \"1MiB\", topic_store_burst: \"16MiB\"}\nstorage: {max_size: \"1GiB\"}\n"), "c.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n := c.NodeConfig(nil, nil)
	if n.PeerStoreRate != 256<<10 || n.PeerStoreBurst != 8<<20 || n.TopicStoreRate != 1<<20 || n.TopicStoreBurst != 16<<20 || n.MaxStorageSize != 1<<30 {
		t.Errorf("node limits: %+v", n)
	}
	_, err = Parse([]byte(base+"storage: {max_size: \"1KiB\"}\n"), "c.yaml", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "storage.max_size") {
		t.Errorf("a 1 KiB storage cap: %v, want an error naming storage.max_size", err)
	}
}
