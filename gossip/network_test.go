package gossip

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"default", DefaultConfig(), true},
		{"network", Config{Network: "rbnode-test-2"}, true},
		{"network upper", Config{Network: "Main"}, false},
		{"network slash", Config{Network: "a/b"}, false},
		{"network long", Config{Network: "abcdefghijabcdefghijabcdefghijabc"}, false},
		{"max size", Config{MaxMessageSize: MaxMessageSizeLimit}, true},
		{"max size over", Config{MaxMessageSize: MaxMessageSizeLimit + 1}, false},
		{"max size negative", Config{MaxMessageSize: -1}, false},
		{"few peers", Config{MaxPeers: 2}, false},
		{"no listen", Config{NoListen: true}, true},
		{"no listen with listen", Config{NoListen: true, Listen: DefaultListen()}, false},
		{"bootstrap without id", Config{Bootstrap: []peer.AddrInfo{{}}}, false},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v is not ErrConfig", tc.name, err)
		}
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	if got := TopicName("cuprated"); got != "/rbnode/cuprated/documents/1" {
		t.Errorf("TopicName = %q", got)
	}
	if got := SyncProtocol("cuprated"); got != "/rbnode/cuprated/sync/1.0.0" {
		t.Errorf("SyncProtocol = %q", got)
	}
}

func TestLifecycle(t *testing.T) {
	n := newNode(t, nil, nil)
	if err := n.Publish(context.Background(), valid("x")); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Publish before Run = %v, want ErrNotRunning", err)
	}
	if len(n.Addrs()) == 0 {
		t.Fatal("no listen addresses")
	}
	for _, a := range n.Addrs() {
		if _, err := a.ValueForProtocol(multiaddr.P_P2P); err != nil {
			t.Errorf("address %s lacks /p2p", a)
		}
	}
	n.run(t)
	if err := n.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		data []byte
		want error
	}{
		{valid("mine"), nil},
		{valid("mine"), nil}, // already delivered: a no-op
		{[]byte("garbage"), ErrRejected},
		{ignored("quarantined"), ErrIgnored},
		{make([]byte, DefaultMaxMessageSize+1), ErrTooLarge},
		{nil, ErrTooLarge},
	} {
		if err := n.Publish(ctx, tc.data); !errors.Is(err, tc.want) {
			t.Errorf("Publish(%.10q) = %v, want %v", tc.data, err, tc.want)
		}
	}
	if !n.store.has(valid("mine")) {
		t.Error("Publish did not run the local handler")
	}
	n.halt(t)
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	if err := n.Publish(ctx, valid("late")); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Publish after Close = %v, want ErrNotRunning", err)
	}
}

func TestCloseWithoutRun(t *testing.T) {
	n := newNode(t, nil, nil)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

// publishAll publishes one message from each of some nodes and checks that
// every node ingests all of them.
func publishAll(t *testing.T, nodes []*node, tag string) {
	t.Helper()
	var msgs [][]byte
	for i := 0; i < len(nodes); i += 3 {
		m := valid(fmt.Sprintf("%s from %d", tag, i))
		if err := nodes[i].Publish(context.Background(), m); err != nil {
			t.Fatalf("publish at %d: %v", i, err)
		}
		msgs = append(msgs, m)
	}
	assertEverywhere(t, nodes, 20*time.Second, msgs...)
}

func TestPublishReachesAllMocknet(t *testing.T) {
	_, nodes := mockNetwork(t, 10)
	publishAll(t, nodes, "mocknet")
}

func TestPublishReachesAllTCP(t *testing.T) {
	nodes := tcpNetwork(t, 10)
	publishAll(t, nodes, "tcp")
}

// TestInvalidSenderBanned: a node whose handler lets it publish garbage
// floods it to its peers; none ingests it, and all disconnect and ban it.
func TestInvalidSenderBanned(t *testing.T) {
	mn, honest := mockNetwork(t, 10)
	evil := newNode(t, mn, nil, acceptAll())
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	evil.run(t)
	for _, h := range honest {
		if _, err := mn.ConnectPeers(evil.ID(), h.ID()); err != nil {
			t.Fatal(err)
		}
	}
	waitMesh(t, append(honest, evil))

	bad := [][]byte{[]byte("garbage 1"), []byte("garbage 2"), []byte("garbage 3")}
	for _, m := range bad {
		if err := evil.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "evil node banned and disconnected everywhere", func() bool {
		for _, h := range honest {
			if !h.bans.has(evil.ID()) || connected(h, evil) {
				return false
			}
		}
		return true
	})
	assertNowhere(t, honest, bad...)
	// The honest network still works, and the banned node stays out.
	publishAll(t, honest, "after ban")
	if _, err := mn.ConnectPeers(evil.ID(), honest[0].ID()); err == nil {
		waitFor(t, 10*time.Second, "banned peer hung up on", func() bool { return !connected(honest[0], evil) })
	}
	for _, h := range honest {
		for _, k := range h.KnownPeers() {
			if k.ID == evil.ID() {
				t.Errorf("banned peer among KnownPeers")
			}
		}
	}
}

// TestRawPubsubAttackerBanned: a bare gossipsub peer with no validation
// publishes garbage on real hosts; it is banned, and the gater refuses it.
func TestRawPubsubAttackerBanned(t *testing.T) {
	nodes := tcpNetwork(t, 4)
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID), pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(TopicName(DefaultNetwork))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	for _, n := range nodes[:2] {
		if err := h.Connect(ctx, n.addrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "attacker sees topic peers", func() bool { return len(topic.ListPeers()) == 2 })
	bad := [][]byte{[]byte("raw 1"), []byte("raw 2"), []byte("raw 3")}
	for _, m := range bad {
		if err := topic.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "attacker banned", func() bool {
		for _, n := range nodes[:2] {
			if !n.bans.has(h.ID()) || n.host.Network().Connectedness(h.ID()) == network.Connected {
				return false
			}
		}
		return true
	})
	assertNowhere(t, nodes, bad...)
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	h.Peerstore().RemovePeer(nodes[0].ID())
	if err := h.Connect(dctx, nodes[0].addrInfo()); err == nil {
		waitFor(t, 5*time.Second, "gater refuses the banned peer", func() bool {
			return nodes[0].host.Network().Connectedness(h.ID()) != network.Connected
		})
	}
}

// partitionHeals checks that two halves that each publish while apart
// converge to the same set once heal has joined them.
func partitionHeals(t *testing.T, a, b []*node, heal func()) {
	t.Helper()
	var ma, mb [][]byte
	for i := range 3 {
		ma = append(ma, valid(fmt.Sprintf("half a %d", i)))
		mb = append(mb, valid(fmt.Sprintf("half b %d", i)))
		if err := a[i].Publish(context.Background(), ma[i]); err != nil {
			t.Fatal(err)
		}
		if err := b[i].Publish(context.Background(), mb[i]); err != nil {
			t.Fatal(err)
		}
	}
	assertEverywhere(t, a, 20*time.Second, ma...)
	assertEverywhere(t, b, 20*time.Second, mb...)
	assertNowhere(t, a, mb...)
	assertNowhere(t, b, ma...)

	heal()
	nodes := append(slices.Clone(a), b...)
	assertEverywhere(t, nodes, 30*time.Second, append(ma, mb...)...)
	want := nodes[0].store.snapshot()
	for i, n := range nodes {
		if got := n.store.snapshot(); !slices.Equal(got, want) {
			t.Errorf("node %d holds %d messages, node 0 %d", i, len(got), len(want))
		}
	}
}

// TestPartitionHealsTCP: a running network of real hosts is cut in two
// halves (each side's gater refuses the other half, standing in for a
// firewall), each half publishes, the cut is lifted, peer upkeep redials
// the remembered peers and sync on connection makes the sets converge.
func TestPartitionHealsTCP(t *testing.T) {
	nodes := tcpNetwork(t, 10)
	waitFor(t, 10*time.Second, "peers remembered", func() bool {
		for _, n := range nodes {
			if len(n.KnownPeers()) < 3 {
				return false
			}
		}
		return true
	})
	a, b := nodes[:5], nodes[5:]
	block := func(x, y *node) {
		x.bans.add(y.ID(), time.Now().Add(time.Hour))
		_ = x.host.Network().ClosePeer(y.ID())
	}
	for _, x := range a {
		for _, y := range b {
			block(x, y)
			block(y, x)
		}
	}
	// The halves stay connected inside: nodes 0-4 and 5-9 were dialled
	// in a ring with chords.
	waitMesh(t, nodes)
	partitionHeals(t, a, b, func() {
		for _, n := range nodes {
			n.bans.mu.Lock()
			clear(n.bans.m)
			n.bans.mu.Unlock()
		}
	})
}

// TestPartitionHealsMocknet: two halves formed apart on mocknet, each
// publishing, then linked and joined by a single connection: sync on that
// connection and periodic sync carry everything everywhere.
func TestPartitionHealsMocknet(t *testing.T) {
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	var a, b []*node
	for i := range 10 {
		n := newNode(t, mn, nil, withSyncInterval(200*time.Millisecond))
		if i < 5 {
			a = append(a, n)
		} else {
			b = append(b, n)
		}
	}
	for _, half := range [][]*node{a, b} {
		for _, x := range half {
			for _, y := range half {
				if x != y {
					if _, err := mn.LinkPeers(x.ID(), y.ID()); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		for _, n := range half {
			n.run(t)
		}
		for i, x := range half {
			for _, y := range half[i+1:] {
				if _, err := mn.ConnectPeers(x.ID(), y.ID()); err != nil {
					t.Fatal(err)
				}
			}
		}
		waitMesh(t, half)
	}
	partitionHeals(t, a, b, func() {
		if _, err := mn.LinkPeers(a[0].ID(), b[0].ID()); err != nil {
			t.Fatal(err)
		}
		if _, err := mn.ConnectPeers(a[0].ID(), b[0].ID()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRestartCatchesUp: a node stopped while others publish catches up
// after restart, from the peers it remembered, by sync on connect.
func TestRestartCatchesUp(t *testing.T) {
	nodes := tcpNetwork(t, 10)
	publishAll(t, nodes, "before")
	last := nodes[9]
	key, store := last.cfg.Identity, last.store
	waitFor(t, 10*time.Second, "known peers", func() bool { return len(last.KnownPeers()) >= 3 })
	known := last.KnownPeers()
	last.halt(t)

	rest := nodes[:9]
	var msgs [][]byte
	for i := range 5 {
		m := valid(fmt.Sprintf("while away %d", i))
		if err := rest[i].Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	assertEverywhere(t, rest, 20*time.Second, msgs...)
	assertNowhere(t, []*node{last}, msgs...)

	back := newNode(t, nil, store, func(c *Config, _ *testHandler) {
		c.Identity = key
		c.Bootstrap = known
	})
	back.run(t)
	assertEverywhere(t, []*node{back}, 20*time.Second, msgs...)
	if back.ID() != last.ID() {
		t.Errorf("identity changed across restart")
	}
}

// TestTransportsAndSecurity: a node accepts TCP and QUIC, and Noise and
// TLS.
func TestTransportsAndSecurity(t *testing.T) {
	n := newNode(t, nil, nil, func(c *Config, _ *testHandler) {
		c.Listen = []multiaddr.Multiaddr{
			multiaddr.StringCast("/ip4/127.0.0.1/tcp/0"),
			multiaddr.StringCast("/ip4/127.0.0.1/udp/0/quic-v1"),
		}
	})
	for _, tc := range []struct {
		name     string
		opts     []libp2p.Option
		security string
	}{
		{"tcp noise", []libp2p.Option{libp2p.Transport(tcp.NewTCPTransport), libp2p.Security(noise.ID, noise.New)}, noise.ID},
		{"tcp tls", []libp2p.Option{libp2p.Transport(tcp.NewTCPTransport), libp2p.Security(libp2ptls.ID, libp2ptls.New)}, libp2ptls.ID},
		{"quic", []libp2p.Option{libp2p.Transport(libp2pquic.NewTransport)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := libp2p.New(append(tc.opts, libp2p.NoListenAddrs)...)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := h.Connect(ctx, n.addrInfo()); err != nil {
				t.Fatal(err)
			}
			conns := h.Network().ConnsToPeer(n.ID())
			if len(conns) == 0 {
				t.Fatal("no connection")
			}
			st := conns[0].ConnState()
			if tc.security != "" && string(st.Security) != tc.security {
				t.Errorf("security %q, want %q", st.Security, tc.security)
			}
			if tc.name == "quic" && st.Transport != "quic-v1" {
				t.Errorf("transport %q, want quic-v1", st.Transport)
			}
		})
	}
}

// TestDHTRendezvous: nodes that only know a hub find each other through
// the network's DHT rendezvous.
func TestDHTRendezvous(t *testing.T) {
	if testing.Short() {
		t.Skip("DHT discovery takes seconds")
	}
	dhtOn := func(c *Config, _ *testHandler) { c.DHT = true }
	hub := newNode(t, nil, nil, dhtOn)
	hub.run(t)
	var leaves []*node
	for range 3 {
		l := newNode(t, nil, nil, dhtOn, func(c *Config, _ *testHandler) {
			c.Bootstrap = []peer.AddrInfo{hub.addrInfo()}
		})
		l.run(t)
		leaves = append(leaves, l)
	}
	waitFor(t, 60*time.Second, "leaves connected to each other", func() bool {
		for _, x := range leaves {
			for _, y := range leaves {
				if x != y && !connected(x, y) {
					return false
				}
			}
		}
		return true
	})
}

// TestPeersAndKnownPeers checks the peer listings.
func TestPeersAndKnownPeers(t *testing.T) {
	nodes := tcpNetwork(t, 3)
	waitFor(t, 10*time.Second, "peers identified", func() bool {
		for _, n := range nodes {
			ps := n.Peers()
			if len(ps) != 2 || !ps[0].Member || !ps[1].Member || len(n.KnownPeers()) != 2 {
				return false
			}
		}
		return true
	})
	for _, p := range nodes[0].Peers() {
		if len(p.Addrs) == 0 || p.Agent != "rbnode" {
			t.Errorf("peer info %+v", p)
		}
	}
}
