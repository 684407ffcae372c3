package node

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/multiformats/go-multiaddr"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/gossip"
	"github.com/rbnode/rbnode/node/store"
)

// Config is a node's configuration. The cli fills it from flags, RBNODE_*
// environment variables and the home's config.toml, in that order of
// precedence, over DefaultConfig. docs/config.md documents every key.
type Config struct {
	// Home is the node's directory: store, keys, configuration.
	Home string `toml:"-"`
	// Quorum is how many trusted builders must agree for consensus.
	Quorum int `toml:"quorum"`
	// Project is the project a bare VERSION refers to when several
	// projects have that version. Empty: the version must be unambiguous.
	Project string `toml:"project"`
	// LogLevel is zerolog's level name: trace, debug, info, warn, error.
	LogLevel string `toml:"log_level"`
	// LogFormat is how logs are written: console (human-readable) or
	// json (one object a line); both stamp RFC 3339 times.
	LogFormat string `toml:"log_format"`
	// HTTP is the status web page's listen address (HOST:PORT, or PORT
	// for 127.0.0.1 only); empty serves no page.
	HTTP string `toml:"http"`

	// Network names the rbnode network; nodes of different networks
	// never exchange anything.
	Network string `toml:"network"`
	// Listen lists the daemon's listen multiaddrs.
	Listen []string `toml:"listen"`
	// Bootstrap lists peers to dial at start, as full multiaddrs with
	// /p2p/<peer id> (rbnode id prints them).
	Bootstrap []string `toml:"bootstrap"`
	// MDNS turns on discovery of peers on the local network.
	MDNS bool `toml:"mdns"`
	// DHT turns on Kademlia rendezvous on the network name, to find peers
	// beyond the bootstrap list.
	DHT bool `toml:"dht"`
	// SyncInterval is the period of catch-up sync with a random peer
	// (there is also one on every new connection).
	SyncInterval Duration `toml:"sync_interval"`

	// MaxDocumentSize caps a document (the signed file), at import and
	// from the network; an envelope may carry at most this plus
	// envelopeOverhead for its signature, key and names.
	MaxDocumentSize Size `toml:"max_document_size"`
	// DiskReserve is the free space kept on the store's file system: below
	// it, the daemon stops accepting documents from the network (it still
	// serves reads) and import stops with an error.
	DiskReserve Size `toml:"disk_reserve"`
	// UntrustedPerMinute is how many documents by untrusted keys one peer
	// may send per minute (with a burst of as many); beyond it they are
	// dropped, and past twice that the peer is penalised, then banned.
	UntrustedPerMinute int `toml:"untrusted_per_minute"`
	// MaxUntrusted and MaxUntrustedBytes bound, in count and in bytes, the
	// documents from the network kept while their signers are untrusted;
	// the oldest go first.
	MaxUntrusted      int  `toml:"max_untrusted"`
	MaxUntrustedBytes Size `toml:"max_untrusted_bytes"`

	// AutoBuild makes the daemon build new releases by itself.
	AutoBuild AutoBuildConfig `toml:"auto_build"`
}

// Size is a byte count, written in the config file as an integer or as a
// string such as "64KiB", "128MiB" or "1GiB".
type Size int64

// UnmarshalTOML reads an integer number of bytes or a string with a unit.
func (s *Size) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		*s = Size(v)
		return nil
	case string:
		return s.UnmarshalText([]byte(v))
	}
	return fmt.Errorf("%v is not a size like \"64KiB\" or 65536", v)
}

// UnmarshalText reads "65536", "64KiB", "64K", "128MiB", "1GiB" (powers of
// 1024).
func (s *Size) UnmarshalText(b []byte) error {
	t := strings.TrimSpace(string(b))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return fmt.Errorf("%q is not a size like \"64KiB\" or 65536", b)
	}
	*s = Size(n * mult)
	return nil
}

// MarshalText writes the size in bytes.
func (s Size) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(s), 10)), nil }

// Defaults and bounds of the budgets.
const (
	DefaultMaxDocumentSize    = 64 << 10
	DefaultDiskReserve        = 128 << 20
	DefaultUntrustedPerMinute = 1000
	minDocumentSize           = 4 << 10
	// envelopeOverhead is what an envelope may add to its document: the
	// signature (at most attest.MaxSignatureSize), the signer's minimal
	// key and the context names.
	envelopeOverhead = 48 << 10
)

// AutoBuildConfig is the [auto_build] table: the daemon watches a
// repository for release tags and builds, signs and publishes each new
// release once.
type AutoBuildConfig struct {
	Enabled bool `toml:"enabled"`
	// Repo is the builder's Cuprate checkout (only read: builds run in
	// their own clones).
	Repo string `toml:"repo"`
	// Remote is fetched (git fetch --tags) every FetchInterval; empty
	// fetches nothing and watches local tags only.
	Remote        string   `toml:"remote"`
	FetchInterval Duration `toml:"fetch_interval"`
	// TagPattern maps tags to versions: "cuprated-{version}".
	TagPattern string `toml:"tag_pattern"`
	// Pipeline, if set, is the command of a project that is not cuprated
	// (rbnode build --pipeline), and Project its name.
	Pipeline string `toml:"pipeline"`
	Project  string `toml:"project"`
	// BuilderID is the builder_id written into attestations; default the
	// builder key's name.
	BuilderID string `toml:"builder_id"`
	// RequestsFrom lists the fingerprints whose signed build requests
	// (rbnode request) the daemon builds, once each, from Repo at the
	// requested commit (fetched from Remote): no tag needed.
	RequestsFrom []string `toml:"requests_from"`
	// QueueLimit bounds the requests waiting for their build; more are
	// logged and dropped.
	QueueLimit int `toml:"queue_limit"`
}

// DefaultQueueLimit is auto_build.queue_limit's default.
const DefaultQueueLimit = 16

// equal reports whether two [auto_build] tables are the same.
func (a AutoBuildConfig) equal(b AutoBuildConfig) bool {
	x, y := a, b
	x.RequestsFrom, y.RequestsFrom = nil, nil
	return reflect.DeepEqual(x, y) && slices.Equal(a.RequestsFrom, b.RequestsFrom)
}

// listsRequester reports whether requests signed by fingerprint fp are
// built.
func (a AutoBuildConfig) listsRequester(fp string) bool {
	return a.Enabled && slices.ContainsFunc(a.RequestsFrom, func(l string) bool { return strings.EqualFold(l, fp) })
}

// Duration is a time.Duration written as "5m" or "90s" in the config file.
type Duration struct{ time.Duration }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like 90s or 5m", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as Go does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		Home: DefaultHome(), Quorum: attest.DefaultQuorum, LogLevel: "warn", LogFormat: "console",
		Network: "cuprated", Listen: []string{"/ip4/0.0.0.0/tcp/4731", "/ip4/0.0.0.0/udp/4731/quic-v1"},
		MDNS: true, DHT: true, SyncInterval: Duration{5 * time.Minute},
		MaxDocumentSize: DefaultMaxDocumentSize, DiskReserve: DefaultDiskReserve, UntrustedPerMinute: DefaultUntrustedPerMinute,
		MaxUntrusted: store.MaxUntrusted, MaxUntrustedBytes: store.MaxUntrustedBytes,
		AutoBuild: AutoBuildConfig{Remote: "origin", FetchInterval: Duration{10 * time.Minute}, TagPattern: "cuprated-{version}", QueueLimit: DefaultQueueLimit},
	}
}

// DefaultHome is ~/.rbnode, or .rbnode in the working directory when the
// user has no home directory.
func DefaultHome() string {
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".rbnode")
	}
	return ".rbnode"
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if c.Home == "" {
		return errors.New("home directory is not set")
	}
	if c.Quorum < 1 {
		return fmt.Errorf("quorum must be at least 1, got %d", c.Quorum)
	}
	if c.Project != "" {
		if err := attest.CheckName("project", c.Project); err != nil {
			return err
		}
	}
	if !gossip.ValidNetworkName(c.Network) {
		return fmt.Errorf("network %q: want 1 to 32 of a-z, 0-9 and '-'", c.Network)
	}
	if c.SyncInterval.Duration < time.Second {
		return fmt.Errorf("sync_interval %s is too short (at least 1s)", c.SyncInterval)
	}
	if c.MaxDocumentSize < minDocumentSize || c.MaxDocumentSize > attest.MaxManifestSize {
		return fmt.Errorf("max_document_size %d is out of range (%d to %d bytes)", c.MaxDocumentSize, minDocumentSize, attest.MaxManifestSize)
	}
	if c.DiskReserve < store.MinFree {
		return fmt.Errorf("disk_reserve %d is too small (at least %d MiB: Badger needs that much to close cleanly)", c.DiskReserve, store.MinFree>>20)
	}
	if c.UntrustedPerMinute < 1 {
		return fmt.Errorf("untrusted_per_minute must be at least 1, got %d", c.UntrustedPerMinute)
	}
	if c.MaxUntrusted < 0 || c.MaxUntrustedBytes < 0 {
		return errors.New("max_untrusted and max_untrusted_bytes must not be negative (0 is the default)")
	}
	for _, a := range append(append([]string(nil), c.Listen...), c.Bootstrap...) {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			return fmt.Errorf("%q is not a multiaddr: %v", a, err)
		}
	}
	if a := c.AutoBuild; a.Enabled {
		if a.Repo == "" {
			return errors.New("auto_build.repo must name the repository to watch")
		}
		if fi, err := os.Stat(a.Repo); err != nil || !fi.IsDir() {
			return fmt.Errorf("auto_build.repo %s is not a directory", a.Repo)
		}
		if a.FetchInterval.Duration < 10*time.Second {
			return fmt.Errorf("auto_build.fetch_interval %s is too short (at least 10s)", a.FetchInterval)
		}
		if !strings.Contains(a.TagPattern, "{version}") {
			return fmt.Errorf("auto_build.tag_pattern %q has no {version}", a.TagPattern)
		}
	}
	for _, fp := range c.AutoBuild.RequestsFrom {
		if len(fp) != 40 || !isHex(fp) {
			return fmt.Errorf("auto_build.requests_from: %q is not a key fingerprint (40 hex digits, as `rbnode trust list --wide` shows)", fp)
		}
	}
	if c.AutoBuild.QueueLimit < 1 || c.AutoBuild.QueueLimit > 10000 {
		return fmt.Errorf("auto_build.queue_limit %d is out of range (1 to 10000)", c.AutoBuild.QueueLimit)
	}
	switch c.LogFormat {
	case "console", "json":
	default:
		return fmt.Errorf("log_format %q is not console or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "trace", "debug", "info", "warn", "error", "disabled":
	default:
		return fmt.Errorf("log_level %q is not one of trace, debug, info, warn, error, disabled", c.LogLevel)
	}
	return nil
}

// Paths inside a home directory.
const (
	ConfigFile = "config.toml"
	StoreDir   = "store"
	KeyFile    = "builder-key.asc"
	// IdentityFile holds the daemon's libp2p key: its peer ID.
	IdentityFile = "p2p-identity.key"
	// SocketFile is the local API's unix socket.
	SocketFile = "rbnode.sock"
)
