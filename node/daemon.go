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
	// MaxUntrusted bounds the documents from the network kept while their
	// signers are untrusted; 0 is store.MaxUntrusted.
	MaxUntrusted int
	// SyncWorkPerMinute and SyncWorkBurst bound what sync sessions make
	// this node do for one peer (gossip.Config); 0 takes the defaults.
	SyncWorkPerMinute, SyncWorkBurst int64
}

// Daemon is a running node: the store, gossip and sync with peers, and
// the local API the CLI talks to while Badger is locked by this process.
type Daemon struct {
	n    *Node
	log  zerolog.Logger
	opts DaemonOptions
	net  *gossip.Network

	trust atomic.Pointer[attest.TrustSet]
	// trustGen moves after every change of trust (inventory.Version).
	trustGen atomic.Uint64
	ingest   chan ingestReq
	keys     keyCache
	// budget is each peer's allowance of documents by untrusted keys.
	budget *gossip.PeerBudget
	// diskLow is set while the disk is under the reserve, so that the
	// refusal is logged when it starts and when it ends, not per message.
	diskLow atomic.Bool

	// requests queues the build requests to answer (nil unless
	// auto_build lists requesters); buildMu makes builds one at a time.
	requests *requestQueue
	buildMu  sync.Mutex

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
		budget: gossip.NewPeerBudget(n.cfg.UntrustedPerMinute),
	}
	if a := n.cfg.AutoBuild; a.Enabled && len(a.RequestsFrom) > 0 {
		d.requests = newRequestQueue(max(a.QueueLimit, 1))
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
	g.MaxMessageSize = int(c.MaxDocumentSize) + envelopeOverhead
	g.HostFactory = d.opts.HostFactory
	g.Logger = d.log.With().Str("component", "gossip").Logger()
	g.ContentID = envelopeID
	g.SyncDone = d.metrics.syncDone
	g.RelaySynced = d.recent
	g.SyncWorkPerMinute, g.SyncWorkBurst = d.opts.SyncWorkPerMinute, d.opts.SyncWorkBurst
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
	g.Go(func() error { return d.moveLegacyQuarantine(ctx) })
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
	g.Go(func() error { return d.reclaim(ctx) })
	if d.opts.Socket != "-" {
		g.Go(func() error { return d.serveAPI(ctx) })
	}
	if d.n.cfg.AutoBuild.Enabled {
		g.Go(func() error { return d.autoBuild(ctx) })
	}
	if d.requests != nil {
		g.Go(func() error { return d.requestBuilds(ctx) })
	}
	d.log.Info().Str("peer_id", d.net.ID().String()).Str("network", d.n.cfg.Network).Msg("daemon running")
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// moveLegacyQuarantine judges again the envelopes a daemon of an earlier
// rbnode kept in its separate quarantine, which stores them as any
// document from the network, then drops that quarantine.
func (d *Daemon) moveLegacyQuarantine(ctx context.Context) error {
	var envs [][]byte
	if err := d.n.store.LegacyQuarantine(func(env []byte) bool { envs = append(envs, env); return true }); err != nil {
		return fmt.Errorf("read the old quarantine: %w", err)
	}
	if len(envs) == 0 {
		return nil
	}
	for _, env := range envs {
		d.judge(ctx, env, true)
	}
	if err := ctx.Err(); err != nil {
		return nil // judged again at the next start
	}
	d.log.Info().Int("documents", len(envs)).Msg("moved the old quarantine into the store")
	return d.n.store.DropLegacyQuarantine()
}

// reclaimInterval is how often the daemon gives back the store's space
// held by deleted or overwritten values (Badger value-log GC).
const reclaimInterval = 10 * time.Minute

func (d *Daemon) reclaim(ctx context.Context) error {
	t := time.NewTicker(reclaimInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if n, err := d.n.store.Reclaim(); err != nil {
			d.log.Warn().Err(err).Msg("reclaim store space")
		} else if n > 0 {
			d.log.Info().Int("files", n).Msg("reclaimed store space")
		}
	}
}

// SyncWith catches up with the peers, without Run: the light client of
// rbnode sync --peer. Everything fetched is verified as gossip is. It
// fetches from all of them at once, each part of the ID space from one
// (gossip.CatchUp, which resumes after a peer's budget refusal); with
// more than one peer it then syncs once more with each, so that what
// only one of them holds arrives too. It returns one SyncStats per peer.
func (d *Daemon) SyncWith(ctx context.Context, peers []peer.AddrInfo) ([]gossip.SyncStats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { d.writer(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	out, err := d.net.CatchUp(ctx, peers)
	if err != nil || len(peers) == 1 {
		return out, err
	}
	// What the catch-up fetched must be in the store before the
	// summaries are compared again, or it would be fetched twice.
	if err := d.store(ctx, nil, true); err != nil {
		return out, err
	}
	for i, p := range peers {
		st, err := d.net.SyncWith(ctx, p)
		out[i] = addStats(out[i], st)
		if err != nil {
			out[i].Err = err
			return out, err
		}
	}
	return out, nil
}

// addStats adds a session's figures to a peer's.
func addStats(a, b gossip.SyncStats) gossip.SyncStats {
	a.Rounds += b.Rounds
	a.Buckets += b.Buckets
	a.SummaryBytes += b.SummaryBytes
	a.FetchBytes += b.FetchBytes
	a.Missing += b.Missing
	a.Skipped += b.Skipped
	a.Fetched += b.Fetched
	a.Accepted += b.Accepted
	a.Ignored += b.Ignored
	a.Rejected += b.Rejected
	a.Duration += b.Duration
	a.Sessions += b.Sessions
	a.Refused += b.Refused
	a.Waited += b.Waited
	a.More = a.More || b.More
	return a
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
			if r.entry == nil {
				continue // a barrier (drain)
			}
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
			n := 0
			for _, r := range waiting {
				if r.entry != nil {
					n++
				}
			}
			d.metrics.stored.WithLabelValues("network").Add(float64(n))
			d.changed()
		}
		for _, r := range waiting {
			if r.done != nil {
				r.done <- err
			}
			if err == nil && d.opts.Stored != nil && r.entry != nil {
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
	d.trustGen.Add(1)
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
// this node's own Publish) and stores it when its signature is authentic.
// Documents by keys this node does not trust are stored within the
// untrusted budget and not relayed. What no honest node would relay
// (malformed, badly signed, breaking a naming or context rule) is
// rejected, logged and counts against the sender; a document dated in the
// future is dropped and logged, but not held against the sender.
func (d *Daemon) handle(ctx context.Context, from peer.ID, data []byte) gossip.Result {
	res, reason, detail := d.judgeFrom(ctx, from, data, false)
	d.log.Debug().Stringer("peer", from).Stringer("result", res).Str("reason", reason).Msg("document")
	d.count(from, res, reason)
	if res == gossip.Reject {
		d.log.Info().Str("peer", from.String()).Str("reason", reason).Str("detail", detail).Msg("rejected a document")
	}
	return res
}

// trusts reports whether the daemon's current trust set holds fp.
func (d *Daemon) trusts(fp string) bool {
	_, ok := (*d.trust.Load())[fp]
	return ok
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

// relayWindow is how recently a document fetched by sync must have been
// signed for this node to gossip it on: what was published during a
// partition healed within a day crosses at gossip speed; older documents
// reach the nodes that lack them by their own syncs (on connecting, then
// every 5 minutes), not by one returning node's flood to all its peers.
const relayWindow = 24 * time.Hour

// recent reports whether an envelope's signature was made within
// relayWindow of now (gossip.Config.RelaySynced).
func (d *Daemon) recent(data []byte) bool {
	env, err := attest.DecodeEnvelope(data)
	if err != nil {
		return false
	}
	sig, err := attest.ParseSignature(env.Doc.Signature)
	if err != nil {
		return false
	}
	return d.n.now().Sub(sig.Created()) < relayWindow
}

// reasonQuarantined is judge's reason for a document kept, not relayed,
// because its signer is not trusted (the untrusted budget).
const reasonQuarantined = "untrusted_key"

// judge decides on one envelope and stores it when its signature is
// authentic (waiting until it is durable when wait is set). What is
// stored does not depend on the trust set, except that untrusted
// documents are bounded: the verdict is computed from the stored
// documents and the trust set of the moment it is asked for.
func (d *Daemon) judge(ctx context.Context, data []byte, wait bool) (gossip.Result, string, string) {
	return d.judgeFrom(ctx, "", data, wait)
}

// judgeFrom is judge for an envelope sent by a peer (empty: this node),
// which is held to its budget of documents by keys this node does not
// trust. Every rejection is logged with what is known of the document:
// under the sending peer, bounded per peer, unless the document's good
// signature is by a trusted key.
func (d *Daemon) judgeFrom(ctx context.Context, from peer.ID, data []byte, wait bool) (gossip.Result, string, string) {
	rej := store.Rejection{Source: "local"}
	remote := from != "" && from != d.net.ID()
	reject := func(res gossip.Result, reason, detail string) (gossip.Result, string, string) {
		if remote { // spelt out only here: base58 is a cost on every document
			rej.Source, rej.Peer = "peer:"+from.String(), from.String()
		}
		rej.Time, rej.Reason, rej.Detail = d.n.now().UTC(), reason, detail
		if err := d.n.store.AddRejections([]store.Rejection{rej}); err != nil {
			d.log.Warn().Err(err).Msg("log a rejection")
		}
		return res, reason, detail
	}
	env, err := attest.DecodeEnvelope(data)
	if err != nil {
		return reject(gossip.Reject, "malformed", err.Error())
	}
	rej.Version, rej.Signer, rej.File = env.Doc.Version, env.Doc.Signer, env.Doc.Name
	if max := int(d.n.cfg.MaxDocumentSize); len(env.Doc.Body) > max {
		return reject(gossip.Reject, "too_large", fmt.Sprintf("document is %d bytes, more than %d (max_document_size)", len(env.Doc.Body), max))
	}
	p, err := env.Doc.Parse()
	if err != nil {
		return reject(gossip.Reject, parseReason(err), err.Error())
	}
	rej.Project, rej.Version = p.Statement.Project, p.Statement.Version
	key, err := d.keys.get(env.Key)
	if err != nil {
		return reject(gossip.Reject, "bad_key", err.Error())
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
	trusted := d.trusts(key.Fingerprint)
	if kr != main && trusted {
		// News about a trusted key (a revocation, a new subkey) is kept
		// whatever the document: it re-judges everything the key signed.
		if _, err := d.n.AddKeys([]*attest.Key{kr.Get(key.Fingerprint)}); err != nil {
			d.log.Warn().Err(err).Msg("store key")
			return gossip.Ignore, "", ""
		}
	}
	if fp, held, err := d.n.store.Signer(p.ID); err == nil && held {
		// A peer's copy of a document held here is not relayed again: this
		// node relayed it when it first had it, and a catch-up republishes
		// documents older than pubsub's seen cache, which would otherwise
		// cross the whole network once more. Its own publication is
		// relayed only if it counts here: trusted, and not voided by its
		// key.
		if remote {
			return gossip.Ignore, "", ""
		}
		if d.trusts(fp) {
			if _, meta, err := d.n.store.Get(p.ID); err == nil && meta.Verification.OK() {
				return gossip.Accept, "", ""
			}
		}
		return gossip.Ignore, "", ""
	}
	v := kr.Verify(env.Doc.Body, p.Sig, d.n.now())
	rej.KeyID = v.KeyID
	if v.Status == attest.StatusBadSignature {
		return reject(gossip.Reject, string(v.Status), v.Detail)
	}
	if !trusted && remote {
		// Past its budget a peer is rate-limited: its documents are
		// dropped. One that goes on for another budget's worth (an honest
		// node's bulk relay does not) is also penalised, then banned.
		switch left := d.budget.Draw(from, d.n.now()); {
		case left <= -float64(d.n.cfg.UntrustedPerMinute):
			return gossip.Throttle, "", ""
		case left < 0:
			d.log.Debug().Stringer("peer", from).Msg("peer over its budget of untrusted documents")
			return gossip.Ignore, "", ""
		}
	}
	if !v.Authentic() {
		// Future-dated, or a key that does not match the signature: an
		// honest peer with a skewed clock relays it, so it is dropped and
		// logged without counting against the sender.
		d.log.Info().Str("reason", string(v.Status)).Str("detail", v.Detail).Msg("ignored a document")
		rej.Trusted = trusted
		return reject(gossip.Ignore, string(v.Status), v.Detail)
	}
	if !d.roomFor(len(data)) {
		return gossip.Ignore, "", ""
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
	if !d.trusts(v.Fingerprint) {
		// Kept (bounded, oldest out) so that trusting its key later counts
		// it at once; not relayed meanwhile.
		limit := store.UntrustedLimit{Count: d.n.cfg.MaxUntrusted, Bytes: int64(d.n.cfg.MaxUntrustedBytes)}
		if d.opts.MaxUntrusted > 0 {
			limit.Count = d.opts.MaxUntrusted
		}
		added, err := d.n.store.PutUntrusted(e, limit, d.trusts)
		if err != nil {
			d.log.Warn().Err(err).Msg("store untrusted document")
		} else if added {
			if d.opts.Stored != nil {
				d.opts.Stored(p.ID)
			}
			d.offerRequest(p.ID, &p.Statement, v)
		}
		return gossip.Ignore, reasonQuarantined, ""
	}
	if err := d.store(ctx, e, wait); err != nil {
		d.log.Warn().Err(err).Msg("store document")
		return gossip.Ignore, "", ""
	}
	d.offerRequest(p.ID, &p.Statement, v)
	if !v.OK() {
		// Kept as evidence (status lists it, sync serves it) but voided by
		// its key: not relayed.
		return gossip.Ignore, "", ""
	}
	return gossip.Accept, "", ""
}

// roomFor reports whether a document of size bytes from the network may
// be written: not while the disk is under the reserve. The node keeps
// serving reads and sync meanwhile; the change is logged both ways.
func (d *Daemon) roomFor(size int) bool {
	err := d.n.room(size)
	if err != nil {
		if !d.diskLow.Swap(true) {
			d.log.Error().Err(err).Msg("disk below the reserve: not accepting documents from the network until space is freed (reads and sync serving go on)")
		}
		return false
	}
	if d.diskLow.Swap(false) {
		d.log.Warn().Msg("disk above the reserve again: accepting documents from the network")
	}
	return true
}

var _ gossip.VersionedInventory = inventory{}

// inventory shows the store to sync: documents with authentic signatures
// by keys this node trusts (voided ones too, as evidence), each served as
// an envelope with its signer's key.
type inventory struct{ d *Daemon }

func (i inventory) Range(prefix []byte, fn func(id [32]byte) bool) error {
	return i.d.n.store.Range(prefix, i.d.trusts, func(id attest.ID) bool { return fn(id) })
}

func (i inventory) Get(id [32]byte) ([]byte, error) { return i.d.n.Envelope(id) }

// Version moves when the store's documents or the trust set change: the
// sum of two counters that only grow.
func (i inventory) Version() uint64 { return i.d.n.store.Generation() + i.d.trustGen.Load() }

// Envelope returns a stored document as peers receive it: the exact
// bytes, the signature and the signer's key.
func (n *Node) Envelope(id attest.ID) ([]byte, error) {
	rec, meta, err := n.store.Get(id)
	if err != nil {
		return nil, err
	}
	if !meta.Verification.Authentic() {
		return nil, fmt.Errorf("document %s has no authentic signature to share", id.Short())
	}
	key, err := n.store.KeyBytes(meta.Verification.Fingerprint)
	if err != nil {
		return nil, err
	}
	env := attest.Envelope{Doc: *rec.Document(), Key: key}
	return env.Encode(), nil
}
