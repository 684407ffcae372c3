package gossip

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// arrivals records when each node first holds each message.
type arrivals struct {
	nodes int
	mu    sync.Mutex
	m     map[string]*arrival
}

type arrival struct {
	n    atomic.Int32
	last atomic.Int64 // UnixNano of the latest arrival
	done chan struct{}
}

func (a *arrivals) expect(msg []byte) *arrival {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := &arrival{done: make(chan struct{})}
	a.m[string(msg)] = r
	return r
}

func (a *arrivals) record(msg []byte) {
	now := time.Now().UnixNano()
	a.mu.Lock()
	r := a.m[string(msg)]
	a.mu.Unlock()
	if r == nil {
		return
	}
	r.last.Store(max(r.last.Load(), now))
	if int(r.n.Add(1)) == a.nodes {
		close(r.done)
	}
}

// propagate publishes 100 messages, one at a time from rotating nodes, and
// returns the time until every node held each.
func propagate(b *testing.B, round int, a *arrivals, publish func(i int, data []byte) error) []time.Duration {
	var lat []time.Duration
	for i := range 100 {
		msg := valid(fmt.Sprintf("round %d message %d %s", round, i, make([]byte, 2048)))
		r := a.expect(msg)
		t0 := time.Now()
		if err := publish(i, msg); err != nil {
			b.Fatal(err)
		}
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			b.Fatalf("message %d reached %d of %d nodes", i, r.n.Load(), a.nodes)
		}
		lat = append(lat, time.Duration(r.last.Load()-t0.UnixNano()))
	}
	return lat
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkPropagation20: 20 nodes on a fully linked mocknet, each
// connected to 6 others; 100 messages of ~2 KiB per round, published one
// at a time; the latency of a message is the time from Publish until the
// last of the 20 nodes holds it.
func BenchmarkPropagation20(b *testing.B) {
	const nodes = 20
	// bare: gossipsub with default options, no validator, no storage;
	// arrival is the subscription delivering the message.
	b.Run("bare-gossipsub", func(b *testing.B) {
		mn := mocknet.New()
		defer mn.Close()
		a := &arrivals{nodes: nodes, m: make(map[string]*arrival)}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		var topics []*pubsub.Topic
		var meshes []*meshTracer
		for range nodes {
			h, err := mn.GenPeer()
			if err != nil {
				b.Fatal(err)
			}
			mesh := &meshTracer{}
			meshes = append(meshes, mesh)
			// The tracer only observes: it lets the benchmark wait for the
			// meshes instead of sleeping through heartbeats.
			ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithRawTracer(mesh))
			if err != nil {
				b.Fatal(err)
			}
			tp, err := ps.Join("bench")
			if err != nil {
				b.Fatal(err)
			}
			sub, err := tp.Subscribe()
			if err != nil {
				b.Fatal(err)
			}
			topics = append(topics, tp)
			wg.Go(func() {
				for {
					m, err := sub.Next(ctx)
					if err != nil {
						return
					}
					a.record(m.Data)
				}
			})
		}
		linkRing(b, mn)
		waitFor(b, 30*time.Second, "gossip meshes", func() bool {
			for i, tp := range topics {
				if have := len(tp.ListPeers()); have < 2 || len(meshes[i].peers()) < min(have, 4) {
					return false
				}
			}
			return true
		})
		var lat []time.Duration
		b.ResetTimer()
		for round := 0; b.Loop(); round++ {
			lat = append(lat, propagate(b, round, a, func(i int, data []byte) error {
				return topics[i%nodes].Publish(ctx, data)
			})...)
		}
		reportLatency(b, lat)
	})
	// network: rbnode's Network, the handler burning 350 µs per message
	// (an RSA-4096 verification, anchors.md) and storing it.
	b.Run("network-350us", func(b *testing.B) {
		mn := mocknet.New()
		defer mn.Close()
		a := &arrivals{nodes: nodes, m: make(map[string]*arrival)}
		var ns []*node
		for range nodes {
			n := newNode(b, mn, nil, func(_ *Config, h *testHandler) {
				h.work = 350 * time.Microsecond
				h.ingested = a.record
			})
			ns = append(ns, n)
		}
		linkRing(b, mn)
		for _, n := range ns {
			n.run(b)
		}
		waitMesh(b, ns)
		var lat []time.Duration
		b.ResetTimer()
		for round := 0; b.Loop(); round++ {
			lat = append(lat, propagate(b, round, a, func(i int, data []byte) error {
				return ns[i%nodes].Publish(context.Background(), data)
			})...)
		}
		reportLatency(b, lat)
	})
}

// linkRing links all mocknet peers and connects each to the next three,
// so every node has six peers and messages take several hops.
func linkRing(b *testing.B, mn mocknet.Mocknet) {
	if err := mn.LinkAll(); err != nil {
		b.Fatal(err)
	}
	ps := mn.Peers()
	slices.Sort(ps)
	for i := range ps {
		for k := 1; k <= 3; k++ {
			if _, err := mn.ConnectPeers(ps[i], ps[(i+k)%len(ps)]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkSyncCatchUp: an empty node fetches 2,000 messages of ~3 KiB
// from one peer over TCP on loopback (Noise, yamux).
func BenchmarkSyncCatchUp(b *testing.B) {
	for _, work := range []time.Duration{0, 350 * time.Microsecond} {
		b.Run(fmt.Sprintf("verify=%v", work), func(b *testing.B) {
			const items, size = 2000, 3 << 10
			srvStore := newStore()
			fill(srvStore, 0, items, size)
			srv := newNode(b, nil, srvStore)
			b.SetBytes(items * size)
			var summary, fetch int64
			for b.Loop() {
				b.StopTimer()
				cli := newNode(b, nil, nil, func(_ *Config, h *testHandler) { h.work = work })
				b.StartTimer()
				st, err := cli.SyncWith(context.Background(), srv.addrInfo())
				if err != nil {
					b.Fatal(err)
				}
				if st.Accepted != items {
					b.Fatalf("accepted %d of %d", st.Accepted, items)
				}
				summary, fetch = st.SummaryBytes, st.FetchBytes
				b.StopTimer()
				_ = cli.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(summary), "summary-bytes")
			b.ReportMetric(float64(fetch), "fetch-bytes")
		})
	}
}
