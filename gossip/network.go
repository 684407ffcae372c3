package gossip

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// Result is a Handler's judgement of one message.
type Result int

const (
	// Reject: the message is invalid. It is dropped and counts against the
	// peer that sent it, which is disconnected and banned if it persists.
	Reject Result = iota
	// Accept: the message is valid and was stored; gossip relays it.
	Accept
	// Ignore: drop the message quietly, neither relay nor penalise (for
	// example a well-formed document from an untrusted signer, kept but
	// not relayed, or one this node cannot judge).
	Ignore
	// Throttle: the sender keeps going past its volume budget (too many
	// documents by untrusted keys). Drop the message, do not relay it, and
	// penalise the sender a little for each gossiped one: a peer that
	// keeps sending is disconnected and banned. Volume is not invalidity,
	// so gossipsub itself sees an Ignore. A synced one is only dropped:
	// the asker chose to fetch it.
	Throttle
)

func (r Result) String() string {
	switch r {
	case Accept:
		return "accept"
	case Ignore:
		return "ignore"
	case Throttle:
		return "throttle"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

// Handler judges and ingests one message: a document envelope, opaque to
// gossip. It runs as the gossipsub topic validator, so nothing is relayed
// before it returns Accept, and for every message fetched by sync. from is
// the peer that sent the message (this node's own ID for Publish). It must
// be safe for concurrent use and idempotent: a message already stored is
// not stored again (it may be answered Ignore, so as not to be relayed
// again).
type Handler func(ctx context.Context, from peer.ID, data []byte) Result

// Inventory is the node's message set as sync sees it. IDs are 32-byte
// content addresses (Config.ContentID of the message), uniformly
// distributed. Both methods must be safe for concurrent use.
type Inventory interface {
	// Range calls fn for each held ID that starts with prefix, in
	// ascending byte order, until fn returns false. An error aborts the
	// sync session that asked.
	Range(prefix []byte, fn func(id [32]byte) bool) error
	// Get returns the message held under id. Any error (not found
	// included) makes sync skip the ID.
	Get(id [32]byte) ([]byte, error)
}

// A VersionedInventory says when what it holds may have changed: Version
// moves (it never returns to a value it had) after any change to what
// Range yields has become visible. Served sessions then reuse one scan of
// the whole inventory (the root every session starts with) until it
// moves, instead of ranging over every ID again for each one (at a
// million IDs, 64 MB of the asker's budget a session).
type VersionedInventory interface {
	Inventory
	Version() uint64
}

// Errors of Publish and the lifecycle.
var (
	ErrNotRunning = errors.New("gossip network is not running")
	ErrRunning    = errors.New("gossip network is already running")
	ErrClosed     = errors.New("gossip network is closed")
	ErrTooLarge   = errors.New("message exceeds the size limit")
	ErrRejected   = errors.New("message rejected by the handler")
	ErrIgnored    = errors.New("message ignored by the handler")
)

// Network is a node's place in the rbnode peer-to-peer network: a libp2p
// host, the gossipsub topic of documents, discovery and catch-up sync.
type Network struct {
	cfg       Config
	log       zerolog.Logger
	handler   Handler
	inv       Inventory
	root      rootCache
	host      host.Host
	syncProto protocol.ID
	topicName string

	bans    *banList
	pen     *penalties
	book    *peerBook
	ignored *idCache
	resync  chan struct{}
	ready   chan struct{} // closed once Run has joined the topic
	serving servingSlots
	work    *PeerBudget
	// waiting bounds what each peer has queued for validation; overQ
	// carries the peers it refused to the penalty loop.
	waiting *waiting
	overQ   chan peer.ID
	mesh    meshTracer
	scores  atomic.Pointer[map[peer.ID]float64]
	topic   atomic.Pointer[pubsub.Topic]

	// ctx lives from New to Close.
	ctx    context.Context
	cancel context.CancelFunc

	// bg counts goroutines started by libp2p callbacks (served streams,
	// banned-peer hang-ups); closing stops new ones.
	mu      sync.Mutex
	closing bool
	ran     bool
	runDone chan struct{}
	bg      sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg and builds the host, which starts listening and
// serving sync; Run starts gossip, discovery and sync. h and inv must not
// be nil.
func New(cfg Config, h Handler, inv Inventory) (*Network, error) {
	cfg.fill()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if h == nil || inv == nil {
		return nil, fmt.Errorf("%w: nil handler or inventory", ErrConfig)
	}
	if cfg.Identity == nil {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate identity: %w", err)
		}
		cfg.Identity = k
	}
	n := &Network{
		cfg:       cfg,
		log:       cfg.Logger.With().Str("component", "gossip").Logger(),
		handler:   h,
		inv:       inv,
		syncProto: protocol.ID(SyncProtocol(cfg.Network)),
		topicName: TopicName(cfg.Network),
		bans:      &banList{},
		pen:       &penalties{},
		book:      &peerBook{},
		ignored:   &idCache{ttl: 30 * time.Minute, cap: 1 << 14},
		resync:    make(chan struct{}, 1),
		ready:     make(chan struct{}),
		work:      NewBurstBudget(cfg.SyncWorkPerMinute, cfg.SyncWorkBurst),
		overQ:     make(chan peer.ID, 64),
	}
	n.waiting = newWaiting(n.topicName, cfg.QueueShare, cfg.queueExpiry, func(p peer.ID) {
		select {
		case n.overQ <- p:
		default: // penalties already pending
		}
	})
	opts, err := n.hostOptions()
	if err != nil {
		return nil, err
	}
	factory := cfg.HostFactory
	if factory == nil {
		factory = libp2p.New
	}
	n.host, err = factory(opts...)
	if err != nil {
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, b := range cfg.Bootstrap {
		n.book.learn(b)
	}
	n.host.Network().Notify(&network.NotifyBundle{ConnectedF: n.connected})
	n.host.SetStreamHandler(n.syncProto, n.serveSync)
	n.log.Info().Str("peer", n.host.ID().String()).Stringer("addrs", addrList(n.Addrs())).Msg("libp2p host started")
	return n, nil
}

type addrList []multiaddr.Multiaddr

func (a addrList) String() string { return fmt.Sprint([]multiaddr.Multiaddr(a)) }

// hostOptions are the libp2p options of a real host: TCP and QUIC, Noise
// and TLS, a connection manager, resource limits and the ban gater.
func (n *Network) hostOptions() ([]libp2p.Option, error) {
	cm, err := connmgr.NewConnManager(n.cfg.MaxPeers*3/4, n.cfg.MaxPeers, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	limits.AddProtocolLimit(protocol.ID(SyncProtocol(n.cfg.Network)),
		rcmgr.BaseLimit{StreamsInbound: 2 * maxServed, StreamsOutbound: 16, Streams: 2*maxServed + 16, Memory: 256 << 20},
		rcmgr.BaseLimitIncrease{})
	limits.AddProtocolPeerLimit(protocol.ID(SyncProtocol(n.cfg.Network)),
		rcmgr.BaseLimit{StreamsInbound: 2 * maxServedPerPeer, StreamsOutbound: 2, Streams: 2*maxServedPerPeer + 2, Memory: 64 << 20},
		rcmgr.BaseLimitIncrease{})
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(n.cfg.Identity),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater(gater{bans: n.bans}),
		libp2p.UserAgent("rbnode"),
	}
	if n.cfg.NoListen {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrs(n.cfg.Listen...))
	}
	return opts, nil
}

// enter registers a callback goroutine with bg; false once closing.
func (n *Network) enter() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return false
	}
	n.bg.Add(1)
	return true
}

// connected hangs up on banned peers (the gater already refuses them on
// real hosts; mocknet hosts have none).
func (n *Network) connected(_ network.Network, c network.Conn) {
	if !n.bans.has(c.RemotePeer()) || !n.enter() {
		return
	}
	go func() {
		defer n.bg.Done()
		_ = c.Close()
	}()
}

// Run starts gossip, peer upkeep, discovery and sync, and returns when
// ctx is cancelled or Close is called (nil), or when a subsystem fails.
// It may be called once.
func (n *Network) Run(ctx context.Context) (err error) {
	n.mu.Lock()
	switch {
	case n.closing:
		n.mu.Unlock()
		return ErrClosed
	case n.ran:
		n.mu.Unlock()
		return ErrRunning
	}
	n.ran = true
	n.runDone = make(chan struct{})
	n.mu.Unlock()
	defer close(n.runDone)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(n.ctx, cancel)
	defer stop()

	scores := make(chan map[peer.ID]float64, 1)
	found := make(chan peer.AddrInfo, 64)
	syncReq := make(chan peer.ID)

	// pubsub lives as long as this ctx: it has no Close.
	ps, err := pubsub.NewGossipSub(ctx, n.host, n.pubsubOptions(scores)...)
	if err != nil {
		return fmt.Errorf("start gossipsub: %w", err)
	}
	if err := ps.RegisterTopicValidator(n.topicName, n.validate, pubsub.WithValidatorTimeout(time.Minute), pubsub.WithValidatorInline(true)); err != nil {
		return fmt.Errorf("register validator: %w", err)
	}
	topic, err := ps.Join(n.topicName)
	if err != nil {
		return fmt.Errorf("join topic %s: %w", n.topicName, err)
	}
	defer func() { _ = topic.Close() }()
	sub, err := topic.Subscribe()
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", n.topicName, err)
	}
	defer sub.Cancel()
	n.topic.Store(topic)
	defer n.topic.Store(nil)
	close(n.ready) // Run runs once

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// Messages are ingested by the validator; drain the subscription.
		for {
			if _, err := sub.Next(gctx); err != nil {
				return nil
			}
		}
	})
	g.Go(func() error { return n.managePeers(gctx, scores, found, syncReq) })
	g.Go(func() error { return n.scheduleSync(gctx, syncReq) })
	g.Go(func() error { n.waiting.sweepEvery(gctx); return nil })
	g.Go(func() error {
		// Penalties for flooding the validation queue, off pubsub's loop.
		for {
			select {
			case p := <-n.overQ:
				n.penalise(p, penaltyExcess, "over its share of the validation queue")
			case <-gctx.Done():
				return nil
			}
		}
	})
	for _, b := range n.cfg.Bootstrap {
		select {
		case found <- b:
		default:
		}
	}
	if n.cfg.MDNS {
		md := mdns.NewMdnsService(n.host, mdnsService(n.cfg.Network), mdnsNotifee{found})
		if err := md.Start(); err != nil {
			cancel()
			_ = g.Wait()
			return fmt.Errorf("start mdns: %w", err)
		}
		defer func() { _ = md.Close() }()
	}
	if n.cfg.DHT {
		kdht, err := dht.New(n.host,
			dht.Mode(dht.ModeAutoServer),
			dht.ProtocolPrefix(protocol.ID(dhtPrefix(n.cfg.Network))),
			dht.BootstrapPeersFunc(func() []peer.AddrInfo { return append(n.KnownPeers(), n.cfg.Bootstrap...) }),
		)
		if err != nil {
			cancel()
			_ = g.Wait()
			return fmt.Errorf("start dht: %w", err)
		}
		defer func() { _ = kdht.Close() }()
		g.Go(func() error { return n.rendezvous(gctx, kdht, found) })
	}
	n.log.Info().Str("topic", n.topicName).Bool("mdns", n.cfg.MDNS).Bool("dht", n.cfg.DHT).Msg("gossip running")
	err = g.Wait()
	n.log.Info().Err(err).Msg("gossip stopped")
	return err
}

// rendezvous advertises this node under the network's rendezvous key in
// the DHT and dials the peers found there, periodically.
func (n *Network) rendezvous(ctx context.Context, kdht *dht.IpfsDHT, found chan<- peer.AddrInfo) error {
	if err := kdht.Bootstrap(ctx); err != nil {
		return fmt.Errorf("bootstrap dht: %w", err)
	}
	rd := drouting.NewRoutingDiscovery(kdht)
	ns := rendezvous(n.cfg.Network)
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = n.cfg.tuning.advertise
		if len(kdht.RoutingTable().ListPeers()) == 0 {
			wait = min(wait, 5*time.Second)
			continue
		}
		if ttl, err := rd.Advertise(ctx, ns); err != nil {
			n.log.Debug().Err(err).Msg("dht advertise")
			wait = min(wait, 30*time.Second)
		} else {
			wait = min(wait, ttl*7/8)
		}
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		peers, err := rd.FindPeers(fctx, ns)
		if err == nil {
			for ai := range peers {
				if ai.ID == n.host.ID() || len(ai.Addrs) == 0 {
					continue
				}
				select {
				case found <- ai:
				case <-ctx.Done():
				}
			}
		}
		cancel()
	}
}

type mdnsNotifee struct{ found chan<- peer.AddrInfo }

func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	select {
	case m.found <- ai:
	default:
	}
}

// messageID is the gossip message ID: sha256 of the data, so the same
// document is one message whoever publishes it.
func messageID(m *pb.Message) string {
	h := sha256.Sum256(m.GetData())
	return string(h[:])
}

func (n *Network) pubsubOptions(scores chan map[peer.ID]float64) []pubsub.Option {
	inspect := func(s map[peer.ID]float64) {
		select {
		case scores <- s:
		default:
		}
	}
	loopback := []*net.IPNet{
		{IP: net.IPv4(127, 0, 0, 0), Mask: net.CIDRMask(8, 32)},
		{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
	}
	params := &pubsub.PeerScoreParams{
		Topics: map[string]*pubsub.TopicScoreParams{n.topicName: {
			TopicWeight:                    1,
			TimeInMeshWeight:               0.01,
			TimeInMeshQuantum:              time.Second,
			TimeInMeshCap:                  300,
			FirstMessageDeliveriesWeight:   1,
			FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(time.Hour),
			FirstMessageDeliveriesCap:      20,
			InvalidMessageDeliveriesWeight: invalidMessageWeight,
			InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
		}},
		TopicScoreCap:               50,
		AppSpecificScore:            func(p peer.ID) float64 { return -n.pen.value(p) },
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -10,
		IPColocationFactorThreshold: 16,
		IPColocationFactorWhitelist: loopback,
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(time.Hour),
		DecayInterval:               time.Second,
		DecayToZero:                 pubsub.DefaultDecayToZero,
		RetainScore:                 time.Hour,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:             gossipThreshold,
		PublishThreshold:            publishThreshold,
		GraylistThreshold:           graylistThreshold,
		AcceptPXThreshold:           100,
		OpportunisticGraftThreshold: 5,
	}
	opts := []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID),
		// Documents are few and each matters: send our own to every peer,
		// not only the mesh (which is empty until the first heartbeat).
		pubsub.WithFloodPublish(true),
		// A node importing a guix.sigs tree publishes a few thousand
		// documents at once: the default queues (32) would drop most.
		pubsub.WithPeerOutboundQueueSize(4096),
		pubsub.WithValidateQueueSize(4096),
		pubsub.WithMaxMessageSize(max(n.cfg.MaxMessageSize+64<<10, pubsub.DefaultMaxMessageSize)),
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(inspect), n.cfg.tuning.scoreInspect),
		pubsub.WithSeenMessagesTTL(10 * time.Minute),
		pubsub.WithAppSpecificRpcInspector(n.waiting.inspect),
		pubsub.WithRawTracer(n.waiting),
		pubsub.WithRawTracer(&n.mesh),
		pubsub.WithLogger(slog.New(zerolog.NewSlogHandler(n.log.With().Str("subsystem", "pubsub").Logger()))),
	}
	if n.cfg.tuning.tracer != nil {
		opts = append(opts, pubsub.WithRawTracer(n.cfg.tuning.tracer))
	}
	return opts
}

// validate is the topic validator: the size cap, then the Handler.
func (n *Network) validate(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	if len(m.Data) == 0 || len(m.Data) > n.cfg.MaxMessageSize {
		return pubsub.ValidationReject
	}
	switch n.handler(ctx, from, m.Data) {
	case Accept:
		return pubsub.ValidationAccept
	case Ignore:
		return pubsub.ValidationIgnore
	case Throttle:
		n.penalise(from, penaltyExcess, "over its budget of untrusted documents")
		return pubsub.ValidationIgnore
	default:
		return pubsub.ValidationReject
	}
}

// Publish gives data to the local Handler and, if it accepts, gossips it.
// It fails with ErrNotRunning outside Run, ErrTooLarge, ErrRejected or
// ErrIgnored. Publishing a message already delivered is a no-op.
func (n *Network) Publish(ctx context.Context, data []byte) error {
	if len(data) == 0 || len(data) > n.cfg.MaxMessageSize {
		return fmt.Errorf("publish %d bytes: %w", len(data), ErrTooLarge)
	}
	t := n.topic.Load()
	if t == nil {
		return ErrNotRunning
	}
	err := t.Publish(ctx, data)
	var ve pubsub.ValidationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ve) && ve.Reason == pubsub.RejectValidationIgnored:
		return ErrIgnored
	case errors.As(err, &ve):
		return fmt.Errorf("%w: %s", ErrRejected, ve.Reason)
	case errors.Is(err, pubsub.ErrTopicClosed):
		return ErrNotRunning
	}
	return fmt.Errorf("publish: %w", err)
}

// Ready is closed once Run has joined the topic: from then on Publish
// works (until Run returns).
func (n *Network) Ready() <-chan struct{} { return n.ready }

// Close stops Run, if running, and the host. It is idempotent.
func (n *Network) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closing = true
		done := n.runDone
		n.mu.Unlock()
		n.cancel()
		if done != nil {
			<-done
		}
		n.host.RemoveStreamHandler(n.syncProto)
		n.bg.Wait()
		if err := n.host.Close(); err != nil {
			n.closeErr = fmt.Errorf("close libp2p host: %w", err)
		}
	})
	return n.closeErr
}

// TopicPeers returns the peers known to subscribe to the documents topic
// (those a Publish reaches); none outside Run.
func (n *Network) TopicPeers() []peer.ID {
	if t := n.topic.Load(); t != nil {
		return t.ListPeers()
	}
	return nil
}

// MeshPeers returns the peers in the documents topic's gossipsub mesh:
// those a message accepted here is forwarded to. Pubsub grafts topic
// peers into the mesh at its heartbeats (every second).
func (n *Network) MeshPeers() []peer.ID { return n.mesh.peers() }

// Penalty is p's current sync and volume penalty (what it subtracts from
// p's gossipsub score), decaying with a 10-minute half-life.
func (n *Network) Penalty(p peer.ID) float64 { return n.pen.value(p) }

// Banned reports whether p is banned now (its score fell under the
// graylist threshold, or it broke the sync protocol).
func (n *Network) Banned(p peer.ID) bool { return n.bans.has(p) }

// ID is the node's peer ID.
func (n *Network) ID() peer.ID { return n.host.ID() }

// Addrs returns the host's listen addresses, each ending in /p2p/<id>.
func (n *Network) Addrs() []multiaddr.Multiaddr {
	p2p, err := multiaddr.NewComponent("p2p", n.host.ID().String())
	if err != nil {
		return nil
	}
	var out []multiaddr.Multiaddr
	for _, a := range n.host.Addrs() {
		out = append(out, a.Encapsulate(p2p))
	}
	return out
}

// PeerInfo describes a connected peer.
type PeerInfo struct {
	ID      peer.ID
	Addrs   []multiaddr.Multiaddr // remote addresses of the connections
	Inbound bool                  // the first connection was dialled by the peer
	Score   float64               // gossipsub score at the last inspection
	Agent   string                // libp2p user agent
	Member  bool                  // speaks this network's sync protocol
}

// Peers returns the connected peers, sorted by ID.
func (n *Network) Peers() []PeerInfo {
	var scores map[peer.ID]float64
	if s := n.scores.Load(); s != nil {
		scores = *s
	}
	var out []PeerInfo
	for _, p := range n.host.Network().Peers() {
		pi := PeerInfo{ID: p, Score: scores[p]}
		for i, c := range n.host.Network().ConnsToPeer(p) {
			if i == 0 {
				pi.Inbound = c.Stat().Direction == network.DirInbound
			}
			pi.Addrs = append(pi.Addrs, c.RemoteMultiaddr())
		}
		if v, err := n.host.Peerstore().Get(p, "AgentVersion"); err == nil {
			pi.Agent, _ = v.(string)
		}
		ok, _ := n.host.Peerstore().SupportsProtocols(p, n.syncProto)
		pi.Member = len(ok) > 0
		out = append(out, pi)
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return cmpID(a.ID, b.ID) })
	return out
}

// KnownPeers returns the peers seen speaking this network's protocol, most
// recent first, at most a few hundred, banned ones left out: the node
// persists them and passes them as Config.Bootstrap on the next start.
func (n *Network) KnownPeers() []peer.AddrInfo {
	return n.book.known(func(p peer.ID) bool { return p == n.host.ID() || n.bans.has(p) })
}

// Queued is how many bytes of peers' messages wait for validation now, and
// the most that ever waited at once. Each peer's share is bounded.
func (n *Network) Queued() (now, peak int) { return n.waiting.stats() }
