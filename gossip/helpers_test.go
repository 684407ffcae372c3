package gossip

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/multiformats/go-multiaddr"
	"github.com/rs/zerolog"
)

// silentWriter passes log lines to t.Log until the test's cleanup, then
// drops them: pubsub logs after its ctx is cancelled, and t.Log after the
// test has finished panics.
type silentWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *silentWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func testLogger(t testing.TB) zerolog.Logger {
	w := &silentWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return zerolog.New(zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: "15:04:05.000"}).
		Level(testLogLevel()).With().Timestamp().Logger()
}

// memStore is an in-memory Inventory; IDs are sha256 of the data.
type memStore struct {
	mu   sync.RWMutex
	ids  [][32]byte // ascending
	data map[[32]byte][]byte
	// version moves after every change (VersionedInventory); roots
	// counts the Ranges over the whole store.
	version, roots atomic.Uint64
}

func (s *memStore) Version() uint64 { return s.version.Load() }

func newStore() *memStore { return &memStore{data: make(map[[32]byte][]byte)} }

func (s *memStore) put(data []byte) bool {
	id := sha256.Sum256(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.data[id]; ok {
		return false
	}
	s.data[id] = slices.Clone(data)
	i, _ := slices.BinarySearchFunc(s.ids, id, cmpArr)
	s.ids = slices.Insert(s.ids, i, id)
	s.version.Add(1)
	return true
}

// forget empties the store.
func (s *memStore) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids, s.data = nil, make(map[[32]byte][]byte)
	s.version.Add(1)
}

func cmpArr(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) }

func (s *memStore) Range(prefix []byte, fn func(id [32]byte) bool) error {
	if len(prefix) == 0 {
		s.roots.Add(1)
	}
	s.mu.RLock()
	var start [32]byte
	copy(start[:], prefix)
	i, _ := slices.BinarySearchFunc(s.ids, start, cmpArr)
	var ids [][32]byte
	for ; i < len(s.ids) && bytes.HasPrefix(s.ids[i][:], prefix); i++ {
		ids = append(ids, s.ids[i])
	}
	s.mu.RUnlock()
	for _, id := range ids {
		if !fn(id) {
			break
		}
	}
	return nil
}

var errNotFound = errors.New("not found")

func (s *memStore) Get(id [32]byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.data[id]
	if !ok {
		return nil, errNotFound
	}
	return d, nil
}

func (s *memStore) has(data []byte) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.data[sha256.Sum256(data)]
	return ok
}

func (s *memStore) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ids)
}

func (s *memStore) snapshot() [][32]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.ids)
}

// Test messages: "ok:..." is valid, "ign:..." is well-formed but ignored,
// anything else is invalid. Gossip must not know real documents.
func valid(s string) []byte   { return []byte("ok:" + s) }
func ignored(s string) []byte { return []byte("ign:" + s) }

// testHandler stores valid messages in s. With acceptAll it stores
// anything: a broken or malicious node that publishes garbage.
type testHandler struct {
	s         *memStore
	acceptAll bool
	calls     atomic.Int64
	rejects   atomic.Int64
	work      time.Duration // simulated verification time
	// honourCtx makes it drop (Ignore) a message whose context ended
	// while it worked, as a daemon's handler does.
	honourCtx bool
	// ingested, if set, is called for each newly stored message.
	ingested func(data []byte)
}

func (h *testHandler) handle(ctx context.Context, _ peer.ID, data []byte) Result {
	h.calls.Add(1)
	if h.work > 0 {
		busy(h.work)
	}
	if h.honourCtx && ctx.Err() != nil {
		return Ignore
	}
	switch {
	case bytes.HasPrefix(data, []byte("ok:")) || h.acceptAll:
		if h.s.put(data) && h.ingested != nil {
			h.ingested(data)
		}
		return Accept
	case bytes.HasPrefix(data, []byte("ign:")):
		return Ignore
	}
	h.rejects.Add(1)
	return Reject
}

// busy burns CPU for about d, like signature verification does.
func busy(d time.Duration) {
	end := time.Now().Add(d)
	x := sha256.Sum256(nil)
	for time.Now().Before(end) {
		x = sha256.Sum256(x[:])
	}
}

// node is a Network under test with its store.
type node struct {
	*Network
	store *memStore
	h     *testHandler
	mesh  *meshTracer
	stop  context.CancelFunc
	done  chan error
}

type nodeOpt func(*Config, *testHandler)

func withSyncInterval(d time.Duration) nodeOpt {
	return func(c *Config, _ *testHandler) { c.SyncInterval = d }
}

func acceptAll() nodeOpt { return func(_ *Config, h *testHandler) { h.acceptAll = true } }

// fastTuning makes upkeep quick enough for tests.
func fastTuning(c *Config) {
	c.tuning = tuning{
		scoreInspect: 100 * time.Millisecond,
		reconnect:    200 * time.Millisecond,
		dialBackoff:  100 * time.Millisecond,
		syncSpacing:  100 * time.Millisecond,
		advertise:    300 * time.Millisecond,
	}
}

func newKey(t testing.TB) crypto.PrivKey {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newNode builds (not runs) a Network. With mn set the host is a mocknet
// peer; otherwise a real host on 127.0.0.1.
func newNode(t testing.TB, mn mocknet.Mocknet, store *memStore, opts ...nodeOpt) *node {
	t.Helper()
	if store == nil {
		store = newStore()
	}
	h := &testHandler{s: store}
	cfg := Config{
		Identity:     newKey(t),
		Listen:       []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")},
		SyncInterval: -1,
		Logger:       testLogger(t),
	}
	fastTuning(&cfg)
	mesh := &meshTracer{}
	cfg.tuning.tracer = mesh
	if mn != nil {
		key := cfg.Identity
		cfg.HostFactory = func(...libp2p.Option) (host.Host, error) {
			return mn.AddPeer(key, mockAddr())
		}
	}
	for _, o := range opts {
		o(&cfg, h)
	}
	n, err := New(cfg, h.handle, store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return &node{Network: n, store: store, h: h, mesh: mesh}
}

var mockAddrs atomic.Uint32

// mockAddr is a label for a mocknet peer; no packet ever goes there.
func mockAddr() multiaddr.Multiaddr {
	i := mockAddrs.Add(1)
	return multiaddr.StringCast(fmt.Sprintf("/ip6/100::%x:%x/tcp/4731", i>>16, i&0xffff))
}

// run starts Run in the background; the test's cleanup stops it and
// checks that it returned nil.
func (n *node) run(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n.stop, n.done = cancel, make(chan error, 1)
	go func() { n.done <- n.Run(ctx) }()
	t.Cleanup(func() { n.halt(t) })
	waitFor(t, 10*time.Second, "topic joined", func() bool { return n.topic.Load() != nil })
}

// halt stops Run and closes the node.
func (n *node) halt(t testing.TB) {
	if n.stop == nil {
		return
	}
	n.stop()
	n.stop = nil
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("Run did not return")
	}
	if err := n.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func (n *node) addrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: n.ID(), Addrs: n.host.Addrs()}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mockNetwork builds count running nodes on a fully linked and connected
// mocknet.
func mockNetwork(t testing.TB, count int, opts ...nodeOpt) (mocknet.Mocknet, []*node) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	nodes := make([]*node, count)
	for i := range nodes {
		nodes[i] = newNode(t, mn, nil, opts...)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		n.run(t)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	waitMesh(t, nodes)
	return mn, nodes
}

// tcpNetwork builds count running nodes on real loopback hosts, each
// dialling a few of the others (a sparse, connected graph).
func tcpNetwork(t testing.TB, count int, opts ...nodeOpt) []*node {
	t.Helper()
	nodes := make([]*node, count)
	for i := range nodes {
		nodes[i] = newNode(t, nil, nil, opts...)
		nodes[i].run(t)
	}
	sparseConnect(t, nodes)
	return nodes
}

// sparseConnect connects each node to the next three (a ring with chords).
func sparseConnect(t testing.TB, nodes []*node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, n := range nodes {
		for k := 1; k <= 3 && k < len(nodes); k++ {
			m := nodes[(i+k)%len(nodes)]
			if err := n.host.Connect(ctx, m.addrInfo()); err != nil {
				t.Fatalf("connect %d to %d: %v", i, (i+k)%len(nodes), err)
			}
		}
	}
	waitMesh(t, nodes)
}

// waitMesh waits until every node knows all its connected peers as topic
// peers and has grafted a mesh of at least min(topic peers, 4): before
// that, a message may reach only the publisher's direct peers, and only
// sync would carry it further.
func waitMesh(t testing.TB, nodes []*node) {
	t.Helper()
	waitFor(t, 20*time.Second, "gossip mesh", func() bool {
		for _, n := range nodes {
			tp := n.topic.Load()
			if tp == nil {
				return false
			}
			have := len(tp.ListPeers())
			if have < len(n.host.Network().Peers()) || len(n.mesh.peers()) < min(have, 4) {
				return false
			}
		}
		return true
	})
}

// assertEverywhere waits until every node's store holds each message.
func assertEverywhere(t testing.TB, nodes []*node, d time.Duration, msgs ...[]byte) {
	t.Helper()
	waitFor(t, d, "messages everywhere", func() bool {
		for _, n := range nodes {
			for _, m := range msgs {
				if !n.store.has(m) {
					return false
				}
			}
		}
		return true
	})
}

// assertNowhere checks that no node holds any of the messages.
func assertNowhere(t testing.TB, nodes []*node, msgs ...[]byte) {
	t.Helper()
	for i, n := range nodes {
		for _, m := range msgs {
			if n.store.has(m) {
				t.Errorf("node %d ingested %q", i, m)
			}
		}
	}
}

func connected(a, b *node) bool {
	return a.host.Network().Connectedness(b.ID()) == network.Connected
}

// testLogLevel is Info, or Debug with RBNODE_TEST_DEBUG set.
func testLogLevel() zerolog.Level {
	if os.Getenv("RBNODE_TEST_DEBUG") != "" {
		return zerolog.DebugLevel
	}
	return zerolog.InfoLevel
}
