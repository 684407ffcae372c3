package gossip

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

func TestPrefix(t *testing.T) {
	t.Parallel()
	id := [32]byte{0xab, 0xcd, 0xef}
	var p prefix
	for i, want := range []byte{0xa, 0xb, 0xc, 0xd, 0xe, 0xf} {
		if got := nibble(&id, i); got != want {
			t.Fatalf("nibble %d = %x, want %x", i, got, want)
		}
		if !p.contains(&id) {
			t.Fatalf("%s does not contain %x", p, id[:3])
		}
		p = p.child(want)
	}
	if p.String() != "abcdef*" || !p.contains(&id) {
		t.Fatalf("prefix %s", p)
	}
	if other := (prefix{}).child(0xa).child(0xc); other.contains(&id) {
		t.Fatalf("%s contains %x", other, id[:3])
	}
	if got := (prefix{}).child(1).child(2).child(3).bytePrefix(); !slices.Equal(got, []byte{0x12}) {
		t.Fatalf("bytePrefix = %x", got)
	}
}

// TestScanBucket checks summaries against a brute-force computation.
func TestScanBucket(t *testing.T) {
	t.Parallel()
	s := newStore()
	for i := range 500 {
		s.put(valid(fmt.Sprint(i)))
	}
	ids := s.snapshot()
	for _, p := range []prefix{{}, (prefix{}).child(3), (prefix{}).child(3).child(0xe), (prefix{}).child(0xf).child(0).child(9)} {
		visits := 0
		sc, err := scanBucket(s, p, 5, &visits, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		var in [][32]byte
		for _, id := range ids {
			if p.contains(&id) {
				in = append(in, id)
			}
		}
		if sc.sum.count != uint64(len(in)) {
			t.Errorf("%s: count %d, want %d", p, sc.sum.count, len(in))
		}
		h := sha256.New()
		for _, id := range in {
			h.Write(id[:])
		}
		if len(in) > 0 && !slices.Equal(sc.sum.fp[:], h.Sum(nil)[:fpLen]) {
			t.Errorf("%s: fingerprint differs", p)
		}
		if !slices.Equal(sc.ids, in[:min(5, len(in))]) {
			t.Errorf("%s: kept ids differ", p)
		}
		total := uint64(0)
		for c := range fanout {
			total += sc.children[c].count
		}
		if total != sc.sum.count {
			t.Errorf("%s: children hold %d of %d", p, total, sc.sum.count)
		}
	}
	visits := 0
	if _, err := scanBucket(s, prefix{}, 0, &visits, 100); !errors.Is(err, errBudget) {
		t.Errorf("scan over budget = %v", err)
	}
}

// fill puts count valid messages of about size bytes into s.
func fill(s *memStore, from, count, size int) [][]byte {
	var out [][]byte
	for i := from; i < from+count; i++ {
		m := valid(fmt.Sprintf("%08d", i))
		if size > len(m) {
			m = append(m, make([]byte, size-len(m))...)
		}
		s.put(m)
		out = append(out, m)
	}
	return out
}

// TestSyncCompact: with 2,000 items on each side, reconciling equal sets
// costs a tiny fraction of a full ID listing, and sync fetches exactly the
// missing ones.
func TestSyncCompact(t *testing.T) {
	const items = 2000
	full := items * idLen // a full listing of the peer's IDs
	srvStore := newStore()
	fill(srvStore, 0, items, 64)
	srv := newNode(t, nil, srvStore)

	// Equal sets.
	same := newStore()
	fill(same, 0, items, 64)
	cli := newNode(t, nil, same)
	st, err := cli.SyncWith(context.Background(), srv.addrInfo())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("equal sets: %+v (full listing %d bytes)", st, full)
	if st.Missing != 0 || st.Fetched != 0 || st.Rounds != 1 {
		t.Errorf("equal sets: %+v", st)
	}
	if st.SummaryBytes > 64 {
		t.Errorf("equal sets exchanged %d summary bytes, want at most 64 (full listing %d)", st.SummaryBytes, full)
	}

	// A few missing, scattered, and a few the client has that the server
	// lacks (those the server pulls in its own session).
	partial := newStore()
	msgs := fill(partial, 0, items, 64)
	extra := fill(partial, items, 5, 64)
	_ = extra
	lack := map[string]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	kept := newStore()
	for _, m := range msgs {
		if len(lack) < 25 && r.IntN(items/25) == 0 {
			lack[string(m)] = true
			continue
		}
		kept.put(m)
	}
	for _, m := range extra {
		kept.put(m)
	}
	cli2 := newNode(t, nil, kept)
	st, err = cli2.SyncWith(context.Background(), srv.addrInfo())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d missing: %+v", len(lack), st)
	if st.Missing != len(lack) || st.Fetched != len(lack) || st.Accepted != len(lack) {
		t.Errorf("missing %d: %+v", len(lack), st)
	}
	if int(cli2.h.calls.Load()) != len(lack) {
		t.Errorf("handler called %d times, want %d", cli2.h.calls.Load(), len(lack))
	}
	for m := range lack {
		if !kept.has([]byte(m)) {
			t.Errorf("missing message not fetched")
		}
	}
	if st.SummaryBytes > int64(full)/4 {
		t.Errorf("reconciling %d differences took %d bytes", len(lack), st.SummaryBytes)
	}
	if srvStore.has(extra[0]) {
		t.Error("a pull fetched into the server")
	}

	// Empty client: fetches everything.
	cli3 := newNode(t, nil, nil)
	st, err = cli3.SyncWith(context.Background(), srv.addrInfo())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("empty client: %+v", st)
	if st.Missing != items || st.Accepted != items || cli3.store.len() != items {
		t.Errorf("empty client: %+v, holds %d", st, cli3.store.len())
	}
	// Again: nothing to do.
	st, err = cli3.SyncWith(context.Background(), srv.addrInfo())
	if err != nil || st.Missing != 0 || st.SummaryBytes > 64 {
		t.Errorf("second sync: %+v, %v", st, err)
	}
}

// TestSyncLightClient: SyncWith works without Run, from a dial-only host.
func TestSyncLightClient(t *testing.T) {
	srvStore := newStore()
	want := fill(srvStore, 0, 300, 3000)
	srvStore.put(ignored("quarantined"))
	srv := newNode(t, nil, srvStore)
	srv.run(t)
	light := newNode(t, nil, nil, func(c *Config, _ *testHandler) {
		c.Listen, c.NoListen = nil, true
	})
	if len(light.Addrs()) != 0 {
		t.Errorf("light client listens on %v", light.Addrs())
	}
	st, err := light.SyncWith(context.Background(), srv.addrInfo())
	if err != nil {
		t.Fatal(err)
	}
	if st.Accepted != len(want) || st.Ignored != 1 || light.store.len() != len(want) {
		t.Errorf("light sync: %+v", st)
	}
	// The ignored message is not fetched again.
	st, err = light.SyncWith(context.Background(), srv.addrInfo())
	if err != nil || st.Missing != 1 || st.Skipped != 1 || st.Fetched != 0 {
		t.Errorf("second light sync: %+v, %v", st, err)
	}
}

// TestSyncRejectedBans: a peer that serves messages the handler rejects is
// penalised and, after a few, banned.
func TestSyncRejectedBans(t *testing.T) {
	evilStore := newStore()
	for i := range 10 {
		evilStore.put(fmt.Appendf(nil, "forged %d", i))
	}
	evil := newNode(t, nil, evilStore)
	cli := newNode(t, nil, nil)
	_, err := cli.SyncWith(context.Background(), evil.addrInfo())
	if err == nil {
		t.Fatal("sync with a forger succeeded")
	}
	if !cli.bans.has(evil.ID()) {
		t.Fatalf("forger not banned (err %v, penalty %v)", err, cli.pen.value(evil.ID()))
	}
	if cli.store.len() != 0 {
		t.Errorf("ingested %d forged messages", cli.store.len())
	}
	waitFor(t, 5*time.Second, "disconnected", func() bool { return !connected(cli, evil) })
	if _, err := cli.SyncWith(context.Background(), evil.addrInfo()); !errors.Is(err, ErrBanned) {
		t.Errorf("sync with banned peer = %v", err)
	}
}

// rawSyncPeer is a bare host, connected to a fresh node, that answers
// any sync request with the given frame body.
func rawSyncPeer(t *testing.T, answer []byte) (*node, host.Host) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	h.SetStreamHandler(protocol.ID(SyncProtocol(DefaultNetwork)), func(s network.Stream) {
		defer s.Close()
		if _, err := readFrame(bufio.NewReader(s)); err != nil {
			return
		}
		_ = writeFrame(s, answer)
	})
	n := newNode(t, nil, nil)
	if err := h.Connect(context.Background(), n.addrInfo()); err != nil {
		t.Fatal(err)
	}
	return n, h
}

// TestSyncMalformed: a peer answering or asking with a malformed frame is
// banned at once, on either side.
func TestSyncMalformed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer []byte
	}{
		{"bad type", []byte{99}},
		{"wrong answer type", encode(&getResp{})},
		{"trailing bytes", append(encode(&reconcileResp{answers: []answer{{kind: answerEqual}}}), 0)},
		{"answer count", encode(&reconcileResp{})},
		{"unsorted ids", encode(&reconcileResp{answers: []answer{{kind: answerIDs, ids: [][32]byte{{2}, {1}}}}})},
	} {
		t.Run("server "+tc.name, func(t *testing.T) {
			n, h := rawSyncPeer(t, tc.answer)
			_, err := n.syncPeer(context.Background(), h.ID())
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("sync = %v, want ErrMalformed", err)
			}
			if !n.bans.has(h.ID()) {
				t.Error("peer not banned")
			}
			waitFor(t, 5*time.Second, "disconnected", func() bool {
				return n.host.Network().Connectedness(h.ID()) != network.Connected
			})
		})
	}
	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"client empty get", append(binary.AppendUvarint(nil, 2), msgGet, 0)},
		{"client oversized frame", []byte{0xff, 0xff, 0xff, 0x7f}},
		{"client answer as request", append(binary.AppendUvarint(nil, 2), msgReconcileResp, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, h := rawSyncPeer(t, nil)
			s, err := h.NewStream(context.Background(), n.ID(), protocol.ID(SyncProtocol(DefaultNetwork)))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "client banned", func() bool { return n.bans.has(h.ID()) })
		})
	}
}

// TestSyncOnConnect: two running nodes pull from each other as soon as
// they connect, in both directions.
func TestSyncOnConnect(t *testing.T) {
	a, b := newNode(t, nil, nil), newNode(t, nil, nil)
	ma := fill(a.store, 0, 100, 100)
	mb := fill(b.store, 1000, 100, 100)
	a.run(t)
	b.run(t)
	if err := a.host.Connect(context.Background(), b.addrInfo()); err != nil {
		t.Fatal(err)
	}
	assertEverywhere(t, []*node{a, b}, 20*time.Second, append(ma, mb...)...)
}

// TestPeriodicSync: a message that reached one store without gossip (say,
// imported while offline) reaches a connected peer by periodic sync.
func TestPeriodicSync(t *testing.T) {
	a := newNode(t, nil, nil, withSyncInterval(200*time.Millisecond))
	b := newNode(t, nil, nil, withSyncInterval(200*time.Millisecond))
	a.run(t)
	b.run(t)
	if err := a.host.Connect(context.Background(), b.addrInfo()); err != nil {
		t.Fatal(err)
	}
	waitMesh(t, []*node{a, b})
	m := valid("imported offline")
	a.store.put(m)
	assertEverywhere(t, []*node{b}, 20*time.Second, m)
}

// TestSyncRelaysOnlyWhatRelaySyncedAllows: a node gossips on what it
// fetched by sync, so that a healed partition is crossed at gossip speed,
// but not the messages Config.RelaySynced declines (the node's old
// documents): a peer that lacks them gets them by its own sync instead of
// by a flood. a is linked to b and c; b holds an old and a new message;
// c's own syncs are held off; a syncs from b. c then gets the new one by
// gossip and not the old one.
func TestSyncRelaysOnlyWhatRelaySyncedAllows(t *testing.T) {
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	old, recent := valid("signed last month"), valid("signed a minute ago")
	a := newNode(t, mn, nil, func(c *Config, _ *testHandler) {
		c.RelaySynced = func(data []byte) bool { return !bytes.Equal(data, old) }
	})
	b := newNode(t, mn, nil)
	c := newNode(t, mn, nil, func(c *Config, _ *testHandler) {
		c.tuning.settle, c.tuning.syncSpacing = time.Hour, time.Hour
	})
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{a, b, c} {
		n.run(t)
	}
	for _, p := range []*node{b, c} {
		if _, err := mn.ConnectPeers(a.ID(), p.ID()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "a's mesh with b and c", func() bool {
		ps := a.TopicPeers()
		return slices.Contains(ps, b.ID()) && slices.Contains(ps, c.ID()) && slices.Contains(c.TopicPeers(), a.ID())
	})
	b.store.put(old)
	b.store.put(recent)
	if _, err := a.SyncWith(t.Context(), b.addrInfo()); err != nil {
		t.Fatal(err)
	}
	if !a.store.has(old) || !a.store.has(recent) {
		t.Fatal("a did not fetch both messages from b")
	}
	// What a relayed went out before this, on the same stream to c.
	barrier := valid("published after the sync")
	if err := a.Publish(t.Context(), barrier); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "c to get the new messages", func() bool { return c.store.has(recent) && c.store.has(barrier) })
	if c.store.has(old) {
		t.Fatal("a gossiped the old message that RelaySynced declined")
	}
}
