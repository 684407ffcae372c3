package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/gossip"
	"github.com/rbnode/rbnode/node/store"
)

// DaemonOptions adjust NewDaemon.
type DaemonOptions struct {
	// HostFactory builds the libp2p host (tests pass mocknet); nil is the
	// real one.
	HostFactory func(opts ...libp2p.Option) (host.Host, error)
	// Socket is the local API's unix socket; default HOME/rbnode.sock.
	// "-" serves no API (tests).
	Socket string
	// StopTimeout bounds a graceful stop; default 10 s.
	StopTimeout time.Duration
	// LightClient makes a dial-only node with no discovery, for one sync
	// (rbnode sync --peer): it neither listens nor fights a daemon's port.
	LightClient bool
	// Stored, if set, is called with the id of each document from the
	// network (gossip or sync) once it is durable in the store.
	Stored func(attest.ID)
}

// Daemon is a running node: the store, gossip and sync with peers, and
// the local API the CLI talks to while Badger is locked by this process.
type Daemon struct {
	n    *Node
	log  zerolog.Logger
	opts DaemonOptions
	net  *gossip.Network

	trust  atomic.Pointer[attest.TrustSet]
	ingest chan ingestReq
	keys   keyCache

	metrics *metrics
	gen     atomic.Uint64 // moves when the store or the trust set changes
	netUp   atomic.Bool   // gossip is running

	closeOnce sync.Once
	closeErr  error
}

// ingestReq is one document for the daemon's single writer.
type ingestReq struct {
	entry *store.Entry
	done  chan error
}

// NewDaemon prepares a daemon on an open node: its libp2p identity (kept
// in the home, so the peer ID survives restarts), remembered peers and the
// gossip network. Run starts it.
func NewDaemon(n *Node, opts DaemonOptions) (*Daemon, error) {
	if opts.Socket == "" {
		opts.Socket = filepath.Join(n.cfg.Home, SocketFile)
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 10 * time.Second
	}
	d := &Daemon{
		n: n, opts: opts,
		log:    n.log.With().Str("component", "daemon").Logger(),
		ingest: make(chan ingestReq, 256),
		keys:   keyCache{m: map[[32]byte]*attest.Key{}},
	}
	d.metrics = newMetrics(d)
	if err := d.reloadTrust(); err != nil {
		return nil, err
	}
	id, err := LoadIdentity(n.cfg.Home)
	if err != nil {
		return nil, err
	}
	gcfg, err := d.gossipConfig(id)
	if err != nil {
		return nil, err
	}
	gossip.RouteLibp2pLogs(d.log)
	d.net, err = gossip.New(gcfg, d.handle, inventory{d})
	if err != nil {
		return nil, fmt.Errorf("start network: %w", err)
	}
	return d, nil
}

func (d *Daemon) gossipConfig(id crypto.PrivKey) (gossip.Config, error) {
	c := d.n.cfg
	g := gossip.DefaultConfig()
	g.Network, g.Identity, g.MDNS, g.DHT = c.Network, id, c.MDNS, c.DHT
	g.SyncInterval = c.SyncInterval.Duration
	g.HostFactory = d.opts.HostFactory
	g.Logger = d.log.With().Str("component", "gossip").Logger()
	g.ContentID = envelopeID
	g.SyncDone = d.metrics.syncDone
	g.Listen = nil
	if d.opts.LightClient {
		g.NoListen, g.MDNS, g.DHT, g.SyncInterval = true, false, false, -1
		return g, nil
	}
	for _, a := range c.Listen {
		m, err := multiaddr.NewMultiaddr(a)
		if err != nil {
			return g, usagef("listen address %q: %w", a, err)
		}
		g.Listen = append(g.Listen, m)
	}
	peers, err := ParsePeers(c.Bootstrap)
	if err != nil {
		return g, err
	}
	g.Bootstrap = append(peers, d.rememberedPeers()...)
	return g, nil
}

// ParsePeers reads full multiaddrs (with /p2p/<id>) into peer addresses.
func ParsePeers(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, a := range addrs {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			return nil, usagef("peer address %q: %w (it must end in /p2p/<peer id>; rbnode id prints one)", a, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}

// envelopeID is the content ID gossip and sync use for an envelope: the
// document id, so that one document is one item however its key travels.
func envelopeID(data []byte) [32]byte {
	env, err := attest.DecodeEnvelope(data)
	if err == nil {
		if id, err := env.Doc.ID(); err == nil {
			return id
		}
	}
	return sha256.Sum256(data)
}

// LoadIdentity reads the libp2p key from the home, making one on first use.
func LoadIdentity(home string) (crypto.PrivKey, error) {
	path := filepath.Join(home, IdentityFile)
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("save %s: %w", path, err)
	}
	return k, nil
}

const peersSetting = "known-peers"

func (d *Daemon) rememberedPeers() []peer.AddrInfo {
	b, err := d.n.store.GetSetting(peersSetting)
	if err != nil {
		return nil
	}
	var addrs []string
	if json.Unmarshal(b, &addrs) != nil {
		return nil
	}
	var out []peer.AddrInfo
	for _, a := range addrs {
		if ai, err := peer.AddrInfoFromString(a); err == nil {
			out = append(out, *ai)
		}
	}
	return out
}

func (d *Daemon) savePeers() {
	var addrs []string
	for _, ai := range d.net.KnownPeers() {
		full, err := peer.AddrInfoToP2pAddrs(&ai)
		if err != nil {
			continue
		}
		for _, m := range full {
			addrs = append(addrs, m.String())
		}
	}
	b, _ := json.Marshal(addrs)
	if err := d.n.store.PutSetting(peersSetting, b); err != nil {
		d.log.Warn().Err(err).Msg("remember peers")
	}
}

// Network returns the daemon's gossip network.
func (d *Daemon) Network() *gossip.Network { return d.net }

// Node returns the daemon's node.
func (d *Daemon) Node() *Node { return d.n }

// Run runs the daemon until ctx is cancelled or a part fails.
func (d *Daemon) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.writer(ctx) })
	g.Go(func() error {
		d.netUp.Store(true)
		defer d.netUp.Store(false)
		return d.net.Run(ctx)
	})
	g.Go(func() error {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				d.savePeers()
				return nil
			case <-t.C:
				d.savePeers()
			}
		}
	})
	if d.opts.Socket != "-" {
		g.Go(func() error { return d.serveAPI(ctx) })
	}
	if d.n.cfg.AutoBuild.Enabled {
		g.Go(func() error { return d.autoBuild(ctx) })
	}
	d.log.Info().Str("peer_id", d.net.ID().String()).Str("network", d.n.cfg.Network).Msg("daemon running")
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// SyncWith runs one catch-up sync with each peer, without Run: the light
// client of rbnode sync --peer. Everything fetched is verified as gossip is.
func (d *Daemon) SyncWith(ctx context.Context, peers []peer.AddrInfo) ([]gossip.SyncStats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { d.writer(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	var out []gossip.SyncStats
	for _, p := range peers {
		st, err := d.net.SyncWith(ctx, p)
		out = append(out, st)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// Close stops the network. It is safe to call more than once; the node
// (and its store) is closed by its owner afterwards.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.net.Close() })
	return d.closeErr
}

// writer is the daemon's single store writer: it takes documents from
// handlers and writes them in batches, as large as the queue allows. When
// ctx ends it writes what is queued, then returns.
func (d *Daemon) writer(ctx context.Context) error {
	batch := d.n.store.NewBatch()
	var waiting []ingestReq
	for {
		stopping := false
		select {
		case <-ctx.Done():
			stopping = true
			waiting = waiting[:0]
		case r := <-d.ingest:
			waiting = append(waiting[:0], r)
		}
	drain:
		for len(waiting) < importBatch {
			select {
			case r := <-d.ingest:
				waiting = append(waiting, r)
			default:
				break drain
			}
		}
		var err error
		for _, r := range waiting {
			if err = batch.Put(r.entry); err != nil {
				break
			}
		}
		if err == nil && len(waiting) > 0 {
			err = batch.Flush()
		}
		if err != nil {
			d.log.Error().Err(err).Int("documents", len(waiting)).Msg("store documents")
		} else if len(waiting) > 0 {
			d.metrics.stored.WithLabelValues("network").Add(float64(len(waiting)))
			d.changed()
		}
		for _, r := range waiting {
			if r.done != nil {
				r.done <- err
			}
			if err == nil && d.opts.Stored != nil {
				d.opts.Stored(r.entry.Record.ID)
			}
		}
		if stopping && len(waiting) < importBatch {
			return nil
		}
	}
}

// store hands an entry to the writer. With wait it returns once the entry
// is durable; without, as soon as the writer has it: a document is relayed
// once verified, without waiting for this node's disk.
func (d *Daemon) store(ctx context.Context, e *store.Entry, wait bool) error {
	r := ingestReq{entry: e}
	if wait {
		r.done = make(chan error, 1)
	}
	select {
	case d.ingest <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	if !wait {
		return nil
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Daemon) reloadTrust() error {
	ts, err := d.n.TrustSet()
	if err != nil {
		return err
	}
	d.trust.Store(&ts)
	d.changed()
	return nil
}

// keyCache remembers keys parsed from envelopes by the hash of their
// bytes: a signer's key arrives with every one of its documents.
type keyCache struct {
	mu sync.Mutex
	m  map[[32]byte]*attest.Key
}

const maxCachedKeys = 4096

func (c *keyCache) get(b []byte) (*attest.Key, error) {
	h := sha256.Sum256(b)
	c.mu.Lock()
	k := c.m[h]
	c.mu.Unlock()
	if k != nil {
		return k, nil
	}
	ks, err := attest.ReadKeys(b)
	if err != nil {
		return nil, err
	}
	if len(ks) != 1 {
		return nil, fmt.Errorf("envelope carries %d keys, want the signer's one", len(ks))
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedKeys {
		clear(c.m)
	}
	c.m[h] = ks[0]
	c.mu.Unlock()
	return ks[0], nil
}

// handle is the gossip Handler: it judges an envelope from a peer (or from
// this node's own Publish) and stores it when it is good and trusted.
// Documents by keys this node does not trust are quarantined and not
// relayed. What no honest node would relay (malformed, badly signed,
// breaking a naming or context rule) is rejected, logged and counts
// against the sender; a document whose key has since expired or been
// revoked is dropped and logged, but not held against the sender.
func (d *Daemon) handle(ctx context.Context, from peer.ID, data []byte) gossip.Result {
	res, reason, detail := d.judge(ctx, data, false)
	d.log.Debug().Str("peer", from.String()).Stringer("result", res).Str("reason", reason).Msg("document")
	d.count(from, res, reason)
	if res == gossip.Reject {
		d.log.Info().Str("peer", from.String()).Str("reason", reason).Str("detail", detail).Msg("rejected a document")
		_ = d.n.store.AddRejections([]store.Rejection{{
			Time: d.n.now().UTC(), Source: "peer:" + from.String(), Reason: reason, Detail: detail,
		}})
	}
	return res
}

// count adds a document from a peer to the metrics (this node's own
// publications pass through the handler too, and are not counted).
func (d *Daemon) count(from peer.ID, res gossip.Result, reason string) {
	if from == d.net.ID() {
		return
	}
	d.metrics.received.Inc()
	switch {
	case res == gossip.Reject:
		d.metrics.rejected.WithLabelValues(reason).Inc()
	case res == gossip.Ignore && reason == reasonQuarantined:
		d.metrics.quarantined.Inc()
	case res == gossip.Ignore && reason != "":
		d.metrics.rejected.WithLabelValues(reason).Inc()
	}
}

// reasonQuarantined is judge's reason for a document kept in quarantine.
const reasonQuarantined = "untrusted_key"

// judge decides on one envelope and stores it when it is good and trusted
// (waiting until it is durable when wait is set).
func (d *Daemon) judge(ctx context.Context, data []byte, wait bool) (gossip.Result, string, string) {
	env, err := attest.DecodeEnvelope(data)
	if err != nil {
		return gossip.Reject, "malformed", err.Error()
	}
	p, err := env.Doc.Parse()
	if err != nil {
		return gossip.Reject, parseReason(err), err.Error()
	}
	if has, err := d.n.store.Has(p.ID); err == nil && has {
		return gossip.Accept, "", ""
	}
	key, err := d.keys.get(env.Key)
	if err != nil {
		return gossip.Reject, "bad_key", err.Error()
	}
	main, err := d.n.Keyring()
	if err != nil {
		return gossip.Ignore, "", ""
	}
	kr := main
	if known := main.Get(key.Fingerprint); known == nil || !bytes.Equal(known.Bytes(), env.Key) {
		// A key the node lacks, or another copy of one it has (perhaps with
		// a revocation one of them lacks): judge with both merged.
		kr = main.Clone()
		kr.Add(key)
	}
	v := kr.Verify(env.Doc.Body, p.Sig, d.n.now())
	switch {
	case v.Status == attest.StatusBadSignature:
		return gossip.Reject, string(v.Status), v.Detail
	case !v.OK():
		// Expired, revoked, future-dated: invalid, but an honest peer that
		// lacks the revocation (or has a skewed clock) relays it, so it is
		// dropped and logged without counting against the sender.
		d.log.Info().Str("reason", string(v.Status)).Str("detail", v.Detail).Msg("ignored a document")
		_ = d.n.store.AddRejections([]store.Rejection{{
			Time: d.n.now().UTC(), Source: "gossip", Version: p.Statement.Version, Signer: env.Doc.Signer,
			File: env.Doc.Name, KeyID: v.KeyID, Reason: string(v.Status), Detail: v.Detail,
		}})
		return gossip.Ignore, string(v.Status), v.Detail
	}
	ts := *d.trust.Load()
	if _, ok := ts[v.Fingerprint]; !ok {
		_, err := d.n.store.Quarantine(store.QuarantineEntry{
			ID: p.ID, Project: p.Statement.Project, Version: p.Statement.Version,
			Signer: env.Doc.Signer, File: env.Doc.Name, Verification: v, ReceivedAt: d.n.now().UTC(),
		}, data)
		if err != nil {
			d.log.Warn().Err(err).Msg("quarantine")
		}
		return gossip.Ignore, reasonQuarantined, ""
	}
	if kr != main {
		if _, err := d.n.AddKeys([]*attest.Key{kr.Get(v.Fingerprint)}); err != nil {
			d.log.Warn().Err(err).Msg("store key")
			return gossip.Ignore, "", ""
		}
	}
	e := &store.Entry{
		Record: store.Record{
			ID: p.ID, Kind: env.Doc.Kind, Project: p.Statement.Project, Version: p.Statement.Version,
			Signer: env.Doc.Signer, Name: env.Doc.Name, Body: env.Doc.Body, Signature: env.Doc.Signature,
			ReceivedAt: d.n.now().UTC(), Source: "gossip",
		},
		Meta:      store.Meta{ID: p.ID, Verification: v},
		Artifacts: p.Statement.Artifacts,
	}
	if err := d.store(ctx, e, wait); err != nil {
		d.log.Warn().Err(err).Msg("store document")
		return gossip.Ignore, "", ""
	}
	return gossip.Accept, "", ""
}

var _ gossip.Inventory = inventory{}

// inventory shows the store to sync: documents with good signatures, each
// served as an envelope with its signer's key.
type inventory struct{ d *Daemon }

func (i inventory) Range(prefix []byte, fn func(id [32]byte) bool) error {
	return i.d.n.store.Range(prefix, func(id attest.ID) bool { return fn(id) })
}

func (i inventory) Get(id [32]byte) ([]byte, error) { return i.d.n.Envelope(id) }

// Envelope returns a stored document as peers receive it: the exact
// bytes, the signature and the signer's key.
func (n *Node) Envelope(id attest.ID) ([]byte, error) {
	rec, meta, err := n.store.Get(id)
	if err != nil {
		return nil, err
	}
	if !meta.Verification.OK() {
		return nil, fmt.Errorf("document %s has no good signature to share", id.Short())
	}
	key, err := n.store.KeyBytes(meta.Verification.Fingerprint)
	if err != nil {
		return nil, err
	}
	env := attest.Envelope{Doc: *rec.Document(), Key: key}
	return env.Encode(), nil
}
