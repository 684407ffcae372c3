package node

import (
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	dto "github.com/prometheus/client_model/go"

	"github.com/rbnode/rbnode/attest"
)

// received is how many documents td's handler has had from peers.
func received(td *testDaemon) int {
	var m dto.Metric
	if err := td.d.metrics.received.Write(&m); err != nil {
		return -1
	}
	return int(m.GetCounter().GetValue())
}

// TestCatchUpDoesNotRegossipHeldDocuments: a node that catches up on a
// recent document republishes it (so that a healed partition is crossed
// at gossip speed), but the peers that already hold it do not pass it on:
// the rest of the network does not move it again. Line a - b - c; b and c
// hold the document from before; a syncs it from b. c then has from its
// peers only the fresh document a publishes next.
func TestCatchUpDoesNotRegossipHeldDocuments(t *testing.T) {
	alice := newBuilder(t, "alice")
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	link := func(x, y *testDaemon) {
		mockLink(t, mn, x, y)
		px, py := x.d.Network().ID(), y.d.Network().ID()
		// The mesh, not only the topic: what a node accepts from a peer is
		// forwarded to its mesh peers, which pubsub grafts at a heartbeat.
		waitFor(t, 20*time.Second, "the mesh", func() bool {
			return slices.Contains(x.d.Network().MeshPeers(), py) && slices.Contains(y.d.Network().MeshPeers(), px)
		})
	}
	a := startDaemon(t, t.TempDir(), mn, nil, alice)
	b := startDaemon(t, t.TempDir(), mn, nil, alice)
	c := startDaemon(t, t.TempDir(), mn, nil, alice)
	link(a, b)
	link(b, c)
	// b and c hold a document signed an hour ago that none of them ever
	// gossiped: within the relay window, out of pubsub's 10-minute seen
	// cache, as one gossiped an hour ago would be.
	env := signedEnvelope(t, alice, "0.7.0", sha('a'), time.Now().Add(-time.Hour))
	old := envelopeID(env)
	for _, td := range []*testDaemon{b, c} {
		if res, reason, _ := td.d.judge(t.Context(), env, true); !td.has(old) {
			t.Fatalf("did not store the old document: %v %s", res, reason)
		}
	}
	// a catches up from b and republishes what it fetched.
	if _, err := a.d.Network().SyncWith(t.Context(), peer.AddrInfo{ID: b.d.Network().ID()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a to catch up", func() bool { return a.has(old) })
	waitFor(t, 20*time.Second, "b to hear it back from a", func() bool { return received(b) >= 1 })
	fresh := publishDoc(t, a, alice, "0.7.1", sha('b'))
	// A document is counted once judged, after it is stored. b forwards
	// in order: had it relayed the old one, c would have had it first.
	waitFor(t, 20*time.Second, "the fresh document to reach c", func() bool { return c.has(fresh) && received(c) >= 1 })
	if n := received(c); n != 1 {
		t.Fatalf("c had %d documents from its peers, want 1 (the fresh one): b passed the old one on", n)
	}
}

// signedEnvelope is an envelope of b's attestation of version, with the
// given artifact hash, signed at the given time.
func signedEnvelope(t *testing.T, b builderKey, version, artifact string, at time.Time) []byte {
	t.Helper()
	body := b.attestation(version, artifact, commitA, "rustc 1.82.0").Encode()
	sig, err := b.sk.Sign(body, at)
	if err != nil {
		t.Fatal(err)
	}
	env := attest.Envelope{Doc: attest.Document{Kind: attest.KindAttestation, Name: "attestation.json", Body: body, Signature: sig}, Key: b.sk.Public().Bytes()}
	return env.Encode()
}

// TestRelayWindow: what a node fetched by sync is gossiped on only if it
// was signed within the last day (gossip.Config.RelaySynced): a node back
// after a month does not flood its peers with the month.
func TestRelayWindow(t *testing.T) {
	alice := newBuilder(t, "alice")
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	td := startDaemon(t, t.TempDir(), mn, nil, alice)
	for _, c := range []struct {
		age  time.Duration
		want bool
	}{{time.Minute, true}, {23 * time.Hour, true}, {25 * time.Hour, false}, {30 * 24 * time.Hour, false}} {
		if got := td.d.recent(signedEnvelope(t, alice, "0.8.0", sha('a'), time.Now().Add(-c.age))); got != c.want {
			t.Errorf("signed %v ago: relayed %v, want %v", c.age, got, c.want)
		}
	}
	if td.d.recent([]byte("not an envelope")) {
		t.Error("a malformed message is relayed")
	}
}

// TestSyncServesTheStoreAndTrustOfNow: a serving daemon reuses its scan of
// everything it serves (every sync session starts there) only while
// neither its documents nor its trust have changed. b syncs from a three
// times: before a trusts alice (nothing served), after (her document),
// and after a stores another one of hers.
func TestSyncServesTheStoreAndTrustOfNow(t *testing.T) {
	alice := newBuilder(t, "alice")
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	a := startDaemon(t, t.TempDir(), mn, nil)
	b := startDaemon(t, t.TempDir(), mn, nil, alice)
	mockLink(t, mn, a, b)
	fetched := func() int {
		t.Helper()
		st, err := b.d.Network().SyncWith(t.Context(), peer.AddrInfo{ID: a.d.Network().ID()})
		if err != nil {
			t.Fatal(err)
		}
		return st.Fetched
	}
	first := signedEnvelope(t, alice, "0.7.0", sha('a'), time.Now().Add(-time.Hour))
	a.d.judge(t.Context(), first, true)
	if !a.has(envelopeID(first)) {
		t.Fatal("a did not hold alice's document")
	}
	if n := fetched(); n != 0 {
		t.Fatalf("a trusts no one but served %d documents", n)
	}
	trustBuilders(t, a.n, alice)
	if err := a.d.trustChanged(); err != nil {
		t.Fatal(err)
	}
	if n := fetched(); n != 1 {
		t.Fatalf("after a trusts alice, b fetched %d documents, want her 1", n)
	}
	waitFor(t, 20*time.Second, "b to store it", func() bool { return b.has(envelopeID(first)) })
	second := signedEnvelope(t, alice, "0.7.1", sha('b'), time.Now().Add(-time.Hour))
	a.d.judge(t.Context(), second, true)
	if n := fetched(); n != 1 {
		t.Fatalf("after a stores another, b fetched %d documents, want 1", n)
	}
	waitFor(t, 20*time.Second, "b to store it", func() bool { return b.has(envelopeID(second)) })
}
