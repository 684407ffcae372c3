package node

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/multiformats/go-multiaddr"

	"github.com/rbnode/rbnode/attest"
)

// testDaemon is a running daemon on its own home.
type testDaemon struct {
	home string
	n    *Node
	d    *Daemon
	stop context.CancelFunc
	done chan error
	// baseline holds documents stored before an attack (attack_test.go).
	baseline []attest.ID
}

// startDaemon opens home (creating it) and runs a daemon on it: real
// hosts on 127.0.0.1 unless mn is set, no mDNS or DHT, no API socket.
func startDaemon(t *testing.T, home string, mn mocknet.Mocknet, bootstrap []string, trusted ...builderKey) *testDaemon {
	t.Helper()
	return startDaemonWith(t, home, mn, bootstrap, daemonSetup{}, trusted...)
}

// daemonSetup adjusts startDaemonWith.
type daemonSetup struct {
	opts         DaemonOptions    // Socket and HostFactory are set by startDaemonWith
	syncInterval time.Duration    // 0: the default
	config       func(*Config)    // adjusts the configuration, when set
	clock        func() time.Time // the node's clock, when set (default: time.Now)
}

// startDaemonWith is startDaemon with a setup.
func startDaemonWith(t *testing.T, home string, mn mocknet.Mocknet, bootstrap []string, setup daemonSetup, trusted ...builderKey) *testDaemon {
	t.Helper()
	opts := setup.opts
	cfg := DefaultConfig()
	cfg.Home = home
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.MDNS, cfg.DHT = false, false
	cfg.Bootstrap = bootstrap
	if setup.syncInterval != 0 {
		cfg.SyncInterval.Duration = setup.syncInterval
	}
	if setup.config != nil {
		setup.config(&cfg)
	}
	var nopts []Option
	if setup.clock != nil {
		nopts = append(nopts, WithClock(setup.clock))
	}
	n, err := Open(cfg, testLogger(t), nopts...)
	if err != nil {
		t.Fatal(err)
	}
	trustBuilders(t, n, trusted...)
	opts.Socket = "-"
	if mn != nil {
		key, err := LoadIdentity(home)
		if err != nil {
			t.Fatal(err)
		}
		opts.HostFactory = func(...libp2p.Option) (host.Host, error) {
			return mn.AddPeer(key, mockAddr(home))
		}
	}
	d, err := NewDaemon(n, opts)
	if err != nil {
		n.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := &testDaemon{home: home, n: n, d: d, stop: cancel, done: make(chan error, 1)}
	go func() { td.done <- d.Run(ctx) }()
	t.Cleanup(td.shutdown)
	return td
}

var shutdownMu sync.Mutex

// shutdown stops the daemon and closes its node; safe to call twice.
func (td *testDaemon) shutdown() {
	shutdownMu.Lock()
	defer shutdownMu.Unlock()
	if td.stop == nil {
		return
	}
	td.stop()
	<-td.done
	td.d.Close()
	td.n.Close()
	td.stop = nil
}

func (td *testDaemon) addr(t *testing.T) string {
	t.Helper()
	for _, a := range td.d.Identity().Addrs {
		return a
	}
	t.Fatal("daemon has no address")
	return ""
}

func (td *testDaemon) has(id attest.ID) bool {
	ok, _ := td.n.Store().Has(id)
	return ok
}

// mockLink links two daemons' mocknet hosts and connects them.
func mockLink(t testing.TB, mn mocknet.Mocknet, a, b *testDaemon) {
	t.Helper()
	pa, pb := a.d.Network().ID(), b.d.Network().ID()
	if _, err := mn.LinkPeers(pa, pb); err != nil {
		t.Fatal(err)
	}
	if _, err := mn.ConnectPeers(pa, pb); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

var mockPeers atomic.Uint32

// mockAddr is a label for a mocknet peer; no packet goes there.
func mockAddr(string) multiaddr.Multiaddr {
	i := mockPeers.Add(1)
	return multiaddr.StringCast(fmt.Sprintf("/ip6/100::%x/tcp/4731", i))
}

// publishDoc writes one signed attestation into a fresh tree and publishes
// it at td; it returns the document id.
func publishDoc(t *testing.T, td *testDaemon, b builderKey, version, sha string) attest.ID {
	t.Helper()
	tree := t.TempDir()
	p := b.writeAttestation(t, tree, b.attestation(version, sha, commitA, "rustc 1.82.0"))
	var id attest.ID
	sum, err := td.d.Publish(t.Context(), p, ImportOptions{Document: func(x attest.ID) { id = x }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Published != 1 {
		t.Fatalf("published %d documents, want 1: %+v", sum.Published, sum.Import)
	}
	return id
}

// TestTenDaemonsOnLoopback runs ten daemons on real 127.0.0.1 hosts, each
// bootstrapped from the ones before: a document published at one is stored
// by all; a node stopped while others publish catches up when restarted.
func TestTenDaemonsOnLoopback(t *testing.T) {
	alice, bob := newBuilder(t, "alice"), newBuilder(t, "bob")
	var nodes []*testDaemon
	for i := range 10 {
		var boot []string
		if i > 0 {
			boot = append(boot, nodes[0].addr(t), nodes[i-1].addr(t))
		}
		nodes = append(nodes, startDaemon(t, t.TempDir(), nil, boot, alice, bob))
	}
	for i, td := range nodes {
		waitFor(t, 20*time.Second, fmt.Sprintf("node %d to have peers", i), func() bool { return len(td.d.Peers()) > 0 })
	}

	id := publishDoc(t, nodes[3], alice, "0.0.9", sha('a'))
	for i, td := range nodes {
		waitFor(t, 20*time.Second, fmt.Sprintf("node %d to store the document", i), func() bool { return td.has(id) })
	}

	// Node 9 stops; bob publishes meanwhile; node 9 comes back and catches up.
	home9 := nodes[9].home
	nodes[9].shutdown()
	id2 := publishDoc(t, nodes[0], bob, "0.0.9", sha('a'))
	for i, td := range nodes[:9] {
		waitFor(t, 20*time.Second, fmt.Sprintf("node %d to store bob's document", i), func() bool { return td.has(id2) })
	}
	back := startDaemon(t, home9, nil, []string{nodes[0].addr(t)})
	waitFor(t, 30*time.Second, "the restarted node to catch up", func() bool { return back.has(id2) && back.has(id) })
	r, err := back.n.Status("", "0.0.9", 2)
	if err != nil || r.Verdict != attest.Consensus {
		t.Fatalf("restarted node: %v %+v", err, r)
	}
}

// TestPartitionHeals runs ten daemons on a mocknet as two halves that
// cannot reach each other (formed apart: cutting a running mocknet leaves
// streams half alive), each half publishes, then the halves are joined:
// every node ends with both documents.
func TestPartitionHeals(t *testing.T) {
	alice, bob := newBuilder(t, "alice"), newBuilder(t, "bob")
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	var nodes []*testDaemon
	for range 10 {
		nodes = append(nodes, startDaemon(t, t.TempDir(), mn, nil, alice, bob))
	}
	join := func(as, bs []*testDaemon) {
		for _, a := range as {
			for _, b := range bs {
				if a == b {
					continue
				}
				mockLink(t, mn, a, b)
			}
		}
	}
	left, right := nodes[:5], nodes[5:]
	join(left, left)
	join(right, right)
	for _, td := range nodes {
		waitFor(t, 20*time.Second, "peers within each half", func() bool { return len(td.d.Peers()) >= 4 })
	}
	idL := publishDoc(t, left[0], alice, "0.1.0", sha('b'))
	idR := publishDoc(t, right[0], bob, "0.1.0", sha('b'))
	for _, td := range left {
		waitFor(t, 20*time.Second, "left half to store alice's", func() bool { return td.has(idL) })
	}
	for _, td := range right {
		waitFor(t, 20*time.Second, "right half to store bob's", func() bool { return td.has(idR) })
	}
	if left[1].has(idR) || right[1].has(idL) {
		t.Fatal("a document crossed the partition")
	}
	// Heal: sync on the new connections converges.
	join(left, right)
	for i, td := range nodes {
		waitFor(t, 30*time.Second, fmt.Sprintf("node %d to have both", i), func() bool { return td.has(idL) && td.has(idR) })
	}
}

// TestUntrustedAndInvalidDocumentsAreNotRelayed: a document signed by a
// key the nodes do not trust is kept where it arrives, listed as
// untrusted, and goes no further; a tampered one is stored nowhere.
func TestUntrustedAndInvalidDocumentsAreNotRelayed(t *testing.T) {
	alice, mallory := newBuilder(t, "alice"), newBuilder(t, "mallory")
	a := startDaemon(t, t.TempDir(), nil, nil, alice, mallory) // trusts mallory
	b := startDaemon(t, t.TempDir(), nil, []string{a.addr(t)}, alice)
	c := startDaemon(t, t.TempDir(), nil, []string{b.addr(t)}, alice, mallory)
	waitFor(t, 20*time.Second, "peers", func() bool { return len(b.d.Peers()) >= 2 })

	// a trusts mallory and publishes; b does not trust her: it keeps the
	// document, uncounted, and does not relay it to c.
	idM := publishDoc(t, a, mallory, "0.2.0", sha('c'))
	waitFor(t, 20*time.Second, "b to keep mallory's document", func() bool { return b.has(idM) })
	r, err := b.n.Status("", "0.2.0", 1)
	if err != nil || len(r.Untrusted) != 1 || r.Untrusted[0].Fingerprint != mallory.sk.Public().Fingerprint || len(r.Builders) != 0 {
		t.Fatalf("b's status of 0.2.0: %v %+v", err, r)
	}

	// A tampered envelope: rejected by the handler, stored nowhere.
	tree := t.TempDir()
	p := alice.writeAttestation(t, tree, alice.attestation("0.3.0", sha('d'), commitA, "rustc"))
	doc := &attest.Document{Kind: attest.KindAttestation, Name: filepath.Base(p)}
	doc.Body = []byte(string(alice.attestation("0.3.0", sha('e'), commitA, "rustc").Encode()))
	sig, _ := alice.sk.Sign(alice.attestation("0.3.0", sha('d'), commitA, "rustc").Encode(), testNow)
	doc.Signature = sig
	env := (&attest.Envelope{Doc: *doc, Key: alice.sk.Public().Bytes()}).Encode()
	if res := a.d.handle(t.Context(), b.d.Network().ID(), env); res.String() != "reject" {
		t.Fatalf("tampered envelope: %s, want reject", res)
	}
	if has, _ := a.n.Store().Has(envelopeDocID(t, env)); has {
		t.Fatal("a stored the tampered document")
	}
	// c never sees mallory's document: b did not relay it. A document b
	// does trust, published after hers, reaches c through b, so c has had
	// every chance to receive hers too.
	idA := publishDoc(t, a, alice, "0.4.0", sha('f'))
	waitFor(t, 20*time.Second, "c to store alice's later document", func() bool { return c.has(idA) })
	if c.has(idM) {
		t.Fatal("mallory's document was relayed through a node that does not trust her")
	}
}

// envelopeDocID is the id of the document in an envelope.
func envelopeDocID(t *testing.T, env []byte) attest.ID {
	t.Helper()
	e, err := attest.DecodeEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.Doc.ID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}
