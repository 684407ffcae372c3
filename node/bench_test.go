package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/rs/zerolog"

	"github.com/rbnode/rbnode/attest"
)

// arrivals counts, per message, the nodes that have it, and notes when the
// last one does.
type arrivals struct {
	mu    sync.Mutex
	nodes int
	count map[string]int
	start map[string]time.Time
	done  map[string]chan time.Duration
}

func newArrivals(nodes int) *arrivals {
	return &arrivals{nodes: nodes, count: map[string]int{}, start: map[string]time.Time{}, done: map[string]chan time.Duration{}}
}

func (a *arrivals) expect(key string) chan time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := make(chan time.Duration, 1)
	a.done[key], a.start[key] = c, time.Now()
	return c
}

func (a *arrivals) record(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.count[key]++
	if a.count[key] == a.nodes {
		if c := a.done[key]; c != nil {
			c <- time.Since(a.start[key])
		}
	}
}

// ringConnect links every mocknet peer and connects each to the next three
// (so each has six neighbours): a message crosses several hops.
func ringConnect(b *testing.B, mn mocknet.Mocknet) {
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

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkPropagation20 publishes 100 documents, one at a time from
// rotating nodes, into 20 nodes on a mocknet ring (six neighbours each),
// and measures the time until all 20 hold each: rbnode daemons (the
// document verified and stored at every hop) against the same topology
// running bare gossipsub (no validation, no storage). Target: rbnode's p50
// and p99 within 1.5x of bare gossipsub's.
func BenchmarkPropagation20(b *testing.B) {
	const nodes, docs = 20, 100
	alice := newBuilder(b, "alice")
	var envs [][]byte
	for i := range docs + 10 { // ten to warm the mesh up
		a := alice.attestation(fmt.Sprintf("9.%d", i), sha('a'), commitA, "rustc 1.82.0")
		body := a.Encode()
		sig, err := alice.sk.Sign(body, testNow.Add(-time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		env := attest.Envelope{Doc: attest.Document{Kind: attest.KindAttestation, Name: "attestation.json", Body: body, Signature: sig}, Key: alice.sk.Public().Bytes()}
		envs = append(envs, env.Encode())
	}
	run := func(b *testing.B, publish func(i int, data []byte) error, a *arrivals, keyOf func([]byte) string) []time.Duration {
		// Warm up: publish until one document reaches every node, so the
		// meshes have formed; then measure the rest.
		i := 0
		for ; ; i++ {
			if i == 10 {
				b.Fatalf("no warm-up document reached all %d nodes", nodes)
			}
			c := a.expect(keyOf(envs[i]))
			if err := publish(i, envs[i]); err != nil {
				b.Fatal(err)
			}
			select {
			case <-c:
			case <-time.After(3 * time.Second):
				continue
			}
			break
		}
		var lat []time.Duration
		for i, data := range envs[10:] {
			c := a.expect(keyOf(data))
			if err := publish(i, data); err != nil {
				b.Fatal(err)
			}
			select {
			case d := <-c:
				lat = append(lat, d)
			case <-time.After(30 * time.Second):
				b.Fatalf("document %d did not reach all %d nodes", i, nodes)
			}
		}
		return lat
	}

	var bare, rbnode []time.Duration
	b.Run("bare-gossipsub", func(b *testing.B) {
		for range b.N {
			mn := mocknet.New()
			ctx, cancel := context.WithCancel(context.Background())
			a := newArrivals(nodes)
			var topics []*pubsub.Topic
			var wg sync.WaitGroup
			for range nodes {
				h, err := mn.GenPeer()
				if err != nil {
					b.Fatal(err)
				}
				// The same publishing rule as rbnode (its own messages to
				// every peer): what differs is validation and storage.
				ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithFloodPublish(true))
				if err != nil {
					b.Fatal(err)
				}
				tp, _ := ps.Join("bench")
				sub, _ := tp.Subscribe()
				topics = append(topics, tp)
				wg.Go(func() {
					for {
						m, err := sub.Next(ctx)
						if err != nil {
							return
						}
						a.record(string(m.Data))
					}
				})
			}
			ringConnect(b, mn)
			waitFor(b, 30*time.Second, "topic peers", func() bool {
				for _, tp := range topics {
					if len(tp.ListPeers()) < 6 {
						return false
					}
				}
				return true
			})
			bare = append(bare, run(b, func(i int, data []byte) error { return topics[i%nodes].Publish(ctx, data) }, a, func(d []byte) string { return string(d) })...)
			cancel()
			wg.Wait()
			mn.Close()
		}
		b.ReportMetric(float64(percentile(bare, 0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(bare, 0.99).Microseconds())/1000, "p99-ms")
	})
	b.Run("rbnode", func(b *testing.B) {
		var lat []time.Duration
		for range b.N {
			mn := mocknet.New()
			a := newArrivals(nodes)
			var ds []*Daemon
			var stops []func()
			for range nodes {
				cfg := DefaultConfig()
				cfg.Home = b.TempDir()
				cfg.MDNS, cfg.DHT = false, false
				n, err := Open(cfg, zerolog.Nop()) // mocknet makes pubsub warn on every delivery
				if err != nil {
					b.Fatal(err)
				}
				trustBuilders(b, n, alice)
				key, err := LoadIdentity(cfg.Home)
				if err != nil {
					b.Fatal(err)
				}
				d, err := NewDaemon(n, DaemonOptions{
					Socket: "-",
					HostFactory: func(...libp2p.Option) (host.Host, error) {
						return mn.AddPeer(key, mockAddr(""))
					},
					Stored: func(id attest.ID) { a.record(id.String()) },
				})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- d.Run(ctx) }()
				ds = append(ds, d)
				stops = append(stops, func() { cancel(); <-done; d.Close(); n.Close() })
			}
			ringConnect(b, mn)
			waitFor(b, 30*time.Second, "peers", func() bool {
				for _, d := range ds {
					if len(d.Peers()) < 6 {
						return false
					}
				}
				return true
			})
			lat = append(lat, run(b, func(i int, data []byte) error {
				return ds[i%nodes].Network().Publish(context.Background(), data)
			}, a, func(data []byte) string { id := envelopeID(data); return attest.ID(id).String() })...)
			for _, s := range stops {
				s()
			}
			mn.Close()
		}
		p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		if len(bare) > 0 {
			// The row of make bench's table: p50 against bare gossipsub's.
			b.ReportMetric(float64(p50.Microseconds())/1000, "fig_ms")
			b.ReportMetric(float64(percentile(bare, 0.5).Microseconds())/1000, "anc_ms")
			b.ReportMetric(1.2, "max_x")
		}
		rbnode = lat
	})
	// The p99 row, from the same two runs.
	b.Run("rbnode-p99", func(b *testing.B) {
		if len(bare) == 0 || len(rbnode) == 0 {
			b.Skip("needs both runs")
		}
		b.ReportMetric(float64(percentile(rbnode, 0.99).Microseconds())/1000, "fig_ms")
		b.ReportMetric(float64(percentile(bare, 0.99).Microseconds())/1000, "anc_ms")
		b.ReportMetric(1.2, "max_x")
	})
}
