package gossip

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/rs/zerolog"
)

// DefaultNetwork is the network name used when Config.Network is empty.
const DefaultNetwork = "cuprated"

// DefaultPort is the TCP and UDP (QUIC) port a node listens on by default.
const DefaultPort = 4731

// DefaultMaxMessageSize caps a gossiped or synced message (a document
// envelope); it matches attest.MaxEnvelopeSize.
const DefaultMaxMessageSize = 512 << 10

// DefaultQueueShare is Config.QueueShare's default: four thousand
// documents of 16 KiB, more than an honest peer relaying a whole guix.sigs
// tree has in flight (its outbound queue holds 4096 messages).
const DefaultQueueShare = 64 << 20

// MaxMessageSizeLimit is the largest Config.MaxMessageSize accepted: a sync
// frame must hold one message plus a full page of others.
const MaxMessageSizeLimit = 2 << 20

// Defaults for the remaining Config fields.
const (
	DefaultSyncInterval = 5 * time.Minute
	DefaultMaxPeers     = 64
	DefaultBanDuration  = time.Hour
	// DefaultIdleTimeout bounds the wait for one sync frame, on either
	// side: a whole request or answer must arrive (and a written one be
	// read) within it.
	DefaultIdleTimeout = 5 * time.Second
)

var networkName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ValidNetworkName reports whether s may name a network: 1 to 32 of a-z,
// 0-9 and '-', not starting with '-'.
func ValidNetworkName(s string) bool { return networkName.MatchString(s) }

// Config configures a Network. The zero value of each field means its
// default, except the booleans, which DefaultConfig sets for a daemon.
type Config struct {
	// Network names the rbnode network, default DefaultNetwork. The gossip
	// topic, the sync protocol, the mDNS service and the DHT protocol and
	// rendezvous all carry it, so nodes of different networks never mix.
	// Lower-case letters, digits and '-', at most 32.
	Network string

	// Identity is the node's libp2p key, which fixes its peer ID. The node
	// persists it (crypto.MarshalPrivateKey). Nil means a fresh Ed25519 key,
	// fine for a light client, wrong for a daemon.
	Identity crypto.PrivKey

	// Listen is where the host listens; nil means DefaultListen().
	Listen []multiaddr.Multiaddr
	// NoListen makes a dial-only host: a light client (rbnode sync --peer)
	// that must not fight a running daemon for its port.
	NoListen bool

	// Bootstrap peers are dialled at start and whenever the node has fewer
	// than a handful of peers; pass here also the peers KnownPeers returned
	// in the previous run.
	Bootstrap []peer.AddrInfo

	// MDNS turns on LAN discovery (mDNS service "rbnode-<network>").
	MDNS bool
	// DHT turns on a Kademlia DHT private to the network (protocol prefix
	// "/rbnode/<network>") and rendezvous on the network name, to find peers
	// beyond the bootstrap list.
	DHT bool

	// SyncInterval is the period of catch-up sync with one random peer, on
	// top of the sync run on every new connection; default
	// DefaultSyncInterval, negative turns periodic sync off.
	SyncInterval time.Duration

	// MaxMessageSize caps a message, checked before the Handler sees it;
	// default DefaultMaxMessageSize, at most MaxMessageSizeLimit.
	MaxMessageSize int

	// QueueShare caps the bytes of one peer's messages waiting for
	// validation at once: an RPC over it is refused and scores the peer
	// down. Default DefaultQueueShare, at least MaxMessageSize.
	QueueShare int
	// queueExpiry is how long a message pubsub dropped without an event
	// stays counted (default waitExpiry; tests shorten it).
	queueExpiry time.Duration

	// MaxPeers is the connection manager's high water mark; it trims to
	// three quarters of it. Default DefaultMaxPeers.
	MaxPeers int

	// BanDuration is how long a peer whose score fell under the graylist
	// threshold, or that broke the sync protocol, stays disconnected and
	// refused. Default DefaultBanDuration.
	BanDuration time.Duration

	// ContentID computes a message's 32-byte ID as the Inventory knows it;
	// sync checks every fetched message against the ID it asked for.
	// Default sha256.Sum256, which is also the gossip message ID.
	ContentID func(data []byte) [32]byte

	// HostFactory builds the libp2p host from the options gossip chose;
	// nil means libp2p.New. Tests inject mocknet hosts (which ignore the
	// options, so transports, gater and limits do not apply there).
	HostFactory func(opts ...libp2p.Option) (host.Host, error)

	// Logger receives gossip's and pubsub's logs; the zero value discards.
	Logger zerolog.Logger

	// SyncWorkPerMinute and SyncWorkBurst bound the work sync sessions
	// make this node do for one peer, in bytes of cost (docs/protocol.md:
	// IDs ranged over, IDs looked up, bytes served): the peer may take
	// SyncWorkBurst at once, then SyncWorkPerMinute. Zero takes the
	// defaults, 256 MiB a minute and 1 GiB at once.
	SyncWorkPerMinute, SyncWorkBurst int64

	// SyncDone, if set, is called after every catch-up session this node
	// asked for, with its stats and error (metrics).
	SyncDone func(SyncStats, error)

	// RelaySynced, if set, says whether a message first learnt through
	// sync, and accepted, is gossiped on; nil gossips every one. A node
	// back from a long absence fetches many old messages: gossiping them
	// all would flood its peers with what most of them hold.
	RelaySynced func(data []byte) bool

	// tuning holds timings that only tests change.
	tuning tuning
}

// tuning holds internal timings; zero fields take defaults.
type tuning struct {
	scoreInspect   time.Duration // how often peer scores are inspected
	reconnect      time.Duration // how often the peer count is checked
	dialBackoff    time.Duration // first back-off after a failed dial
	syncSpacing    time.Duration // least time between two syncs with a peer
	settle         time.Duration // delay of the second sync after a peer connects
	sessionTimeout time.Duration // deadline of one sync session
	idleTimeout    time.Duration // deadline of one sync request or answer
	advertise      time.Duration // DHT rendezvous period
	pace           time.Duration // refill a sync answer may wait for; <0: none
	resumeWork     int64         // sync work a refused asker is told to wait for

	tracer pubsub.RawTracer // tests watch the mesh form
}

func (t *tuning) fill() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.scoreInspect, time.Second)
	def(&t.reconnect, 30*time.Second)
	def(&t.dialBackoff, 10*time.Second)
	def(&t.syncSpacing, 10*time.Second)
	def(&t.settle, 5*time.Second)
	def(&t.sessionTimeout, 2*time.Minute)
	def(&t.idleTimeout, DefaultIdleTimeout)
	def(&t.advertise, 10*time.Minute)
	def(&t.pace, time.Second)
	if t.resumeWork == 0 {
		t.resumeWork = resumeWork
	}
}

// DefaultListen returns the default listen addresses: TCP and QUIC on
// DefaultPort on all IPv4 interfaces.
func DefaultListen() []multiaddr.Multiaddr {
	return []multiaddr.Multiaddr{
		multiaddr.StringCast(fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", DefaultPort)),
		multiaddr.StringCast(fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", DefaultPort)),
	}
}

// DefaultConfig returns the configuration of a daemon: every default filled
// in, mDNS and the DHT on. The caller sets Identity and Bootstrap.
func DefaultConfig() Config {
	return Config{
		Network:        DefaultNetwork,
		Listen:         DefaultListen(),
		MDNS:           true,
		DHT:            true,
		SyncInterval:   DefaultSyncInterval,
		MaxMessageSize: DefaultMaxMessageSize,
		MaxPeers:       DefaultMaxPeers,
		BanDuration:    DefaultBanDuration,
	}
}

// ErrConfig is wrapped by every error Validate returns.
var ErrConfig = errors.New("invalid gossip config")

// Validate reports the first invalid field, after defaults are applied.
func (c Config) Validate() error {
	c.fill()
	return c.validate()
}

func (c *Config) fill() {
	if c.Network == "" {
		c.Network = DefaultNetwork
	}
	if c.Listen == nil && !c.NoListen {
		c.Listen = DefaultListen()
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.QueueShare == 0 {
		c.QueueShare = max(DefaultQueueShare, c.MaxMessageSize)
	}
	if c.queueExpiry == 0 {
		c.queueExpiry = waitExpiry
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	if c.SyncWorkPerMinute == 0 {
		c.SyncWorkPerMinute = workPerMinute
	}
	if c.SyncWorkBurst == 0 {
		c.SyncWorkBurst = workBurst
	}
	if c.BanDuration == 0 {
		c.BanDuration = DefaultBanDuration
	}
	if c.ContentID == nil {
		c.ContentID = sha256.Sum256
	}
	c.tuning.fill()
}

func (c *Config) validate() error {
	switch {
	case !networkName.MatchString(c.Network):
		return fmt.Errorf("%w: network name %q: want 1 to 32 of a-z, 0-9 and '-'", ErrConfig, c.Network)
	case c.MaxMessageSize < 0 || c.MaxMessageSize > MaxMessageSizeLimit:
		return fmt.Errorf("%w: max message size %d: want 1 to %d", ErrConfig, c.MaxMessageSize, MaxMessageSizeLimit)
	case c.QueueShare < c.MaxMessageSize:
		return fmt.Errorf("%w: queue share %d: want at least the max message size %d", ErrConfig, c.QueueShare, c.MaxMessageSize)
	case c.MaxPeers < 4:
		return fmt.Errorf("%w: max peers %d: want at least 4", ErrConfig, c.MaxPeers)
	case c.SyncWorkPerMinute < 0 || c.SyncWorkBurst < 0:
		return fmt.Errorf("%w: negative sync work budget", ErrConfig)
	case c.BanDuration < 0:
		return fmt.Errorf("%w: negative ban duration", ErrConfig)
	case c.NoListen && len(c.Listen) > 0:
		return fmt.Errorf("%w: listen addresses given with no-listen", ErrConfig)
	}
	for _, b := range c.Bootstrap {
		if b.ID == "" {
			return fmt.Errorf("%w: bootstrap peer without a peer ID (%v)", ErrConfig, b.Addrs)
		}
	}
	return nil
}

// TopicName is the gossipsub topic documents travel on.
func TopicName(network string) string { return "/rbnode/" + network + "/documents/1" }

// SyncProtocol is the libp2p protocol ID of catch-up sync.
func SyncProtocol(network string) string { return "/rbnode/" + network + "/sync/1.0.0" }

// dhtPrefix is the protocol prefix of the network's private Kademlia DHT.
func dhtPrefix(network string) string { return "/rbnode/" + network }

// rendezvous is the DHT rendezvous namespace nodes advertise under.
func rendezvous(network string) string { return "rbnode/" + network + "/peers" }

// mdnsService is the mDNS service name.
func mdnsService(network string) string { return "rbnode-" + network }
