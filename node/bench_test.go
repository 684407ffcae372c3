package node

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	dto "github.com/prometheus/client_model/go"
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

// topology is a seeded random network of nodes: a ring (so it is
// connected) plus three chords from each node to random others, about
// eight connections a node, as a daemon that dials its way up to its
// minimum of eight peers would have. Its diameter grows with the log of
// the node count.
type topology struct {
	nodes int
	adj   [][]int
}

func newTopology(nodes int, seed uint64) topology {
	t := topology{nodes: nodes, adj: make([][]int, nodes)}
	rng := rand.New(rand.NewPCG(seed, uint64(nodes)))
	link := func(i, j int) {
		if i == j || slices.Contains(t.adj[i], j) {
			return
		}
		t.adj[i] = append(t.adj[i], j)
		t.adj[j] = append(t.adj[j], i)
	}
	for i := range nodes {
		link(i, (i+1)%nodes)
	}
	for i := range nodes {
		for range 3 {
			link(i, rng.IntN(nodes))
		}
	}
	return t
}

// eccentricity is the number of hops from node i to the node farthest
// from it.
func (t topology) eccentricity(i int) int {
	dist := make([]int, t.nodes)
	for k := range dist {
		dist[k] = -1
	}
	dist[i] = 0
	queue, far := []int{i}, 0
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range t.adj[v] {
			if dist[w] < 0 {
				dist[w] = dist[v] + 1
				far = max(far, dist[w])
				queue = append(queue, w)
			}
		}
	}
	return far
}

// connect links every mocknet peer (with the given latency each way) and
// connects them as the topology says; ps are the peers in node order.
func (t topology) connect(b *testing.B, mn mocknet.Mocknet, ps []peer.ID, latency time.Duration) {
	mn.SetLinkDefaults(mocknet.LinkOptions{Latency: latency})
	if err := mn.LinkAll(); err != nil {
		b.Fatal(err)
	}
	for i, adj := range t.adj {
		for _, j := range adj {
			if i < j {
				if _, err := mn.ConnectPeers(ps[i], ps[j]); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// propagationDocs is how many documents each run measures, after up to
// ten that warm the meshes up.
const propagationDocs = 100

// propagationSizes are the network sizes of BenchmarkPropagation.
var propagationSizes = []int{10, 20, 50, 100}

// propagationEnvelopes signs the documents a propagation run publishes.
func propagationEnvelopes(b *testing.B, alice builderKey) [][]byte {
	var envs [][]byte
	for i := range propagationDocs + 10 {
		a := alice.attestation(fmt.Sprintf("9.%d", i), sha('a'), commitA, "rustc 1.82.0")
		body := a.Encode()
		sig, err := alice.sk.Sign(body, testNow.Add(-time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		env := attest.Envelope{Doc: attest.Document{Kind: attest.KindAttestation, Name: "attestation.json", Body: body, Signature: sig}, Key: alice.sk.Public().Bytes()}
		envs = append(envs, env.Encode())
	}
	return envs
}

// propNet is one network of a propagation run, ready to publish into.
type propNet struct {
	nodes   int
	publish func(i int, data []byte) error // from node i mod nodes
	a       *arrivals
	keyOf   func(data []byte) string // the key a records a message under
}

// send publishes data from node i and returns the time until every node
// had it.
func (n propNet) send(b *testing.B, i int, data []byte, timeout time.Duration) (time.Duration, bool) {
	c := n.a.expect(n.keyOf(data))
	if err := n.publish(i, data); err != nil {
		b.Fatal(err)
	}
	select {
	case d := <-c:
		return d, true
	case <-time.After(timeout):
		return 0, false
	}
}

// warmUp publishes until one document reaches every node, so that the
// meshes have formed; it returns how many documents it used.
func (n propNet) warmUp(b *testing.B, envs [][]byte) int {
	for i := range 10 {
		if _, ok := n.send(b, i, envs[i], 5*time.Second); ok {
			return i + 1
		}
	}
	b.Fatalf("no warm-up document reached all %d nodes", n.nodes)
	return 0
}

// startBare runs the topology as bare gossipsub nodes: no validation, no
// storage, a message counted when a node's subscription delivers it. Its
// signing policy is rbnode's (StrictNoSign, no author, the message ID the
// sha256 of the data: a document carries its own signature), and it
// floods its own messages to every peer as rbnode does; every other
// option is gossipsub's default. The network lives until b's cleanup.
func startBare(b *testing.B, top topology, latency time.Duration) propNet {
	mn := mocknet.New()
	ctx, cancel := context.WithCancel(context.Background())
	a := newArrivals(top.nodes)
	var topics []*pubsub.Topic
	var ps []peer.ID
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait(); mn.Close() })
	for range top.nodes {
		h, err := mn.GenPeer()
		if err != nil {
			b.Fatal(err)
		}
		p, err := pubsub.NewGossipSub(ctx, h,
			pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
			pubsub.WithNoAuthor(),
			pubsub.WithMessageIdFn(func(m *pb.Message) string { h := sha256.Sum256(m.GetData()); return string(h[:]) }),
			pubsub.WithFloodPublish(true))
		if err != nil {
			b.Fatal(err)
		}
		tp, err := p.Join("bench")
		if err != nil {
			b.Fatal(err)
		}
		sub, err := tp.Subscribe()
		if err != nil {
			b.Fatal(err)
		}
		topics = append(topics, tp)
		ps = append(ps, h.ID())
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
	top.connect(b, mn, ps, latency)
	waitFor(b, time.Minute, "topic peers", func() bool {
		for i, tp := range topics {
			if len(tp.ListPeers()) < len(top.adj[i]) {
				return false
			}
		}
		return true
	})
	return propNet{
		nodes:   top.nodes,
		publish: func(i int, data []byte) error { return topics[i%top.nodes].Publish(ctx, data) },
		a:       a,
		keyOf:   func(d []byte) string { return string(d) },
	}
}

// startRbnode runs the topology as rbnode daemons, each with its own
// Badger store on disk, a document counted when a node has stored it
// (verified, judged against the trust set, written). The network lives
// until b's cleanup.
func startRbnode(b *testing.B, top topology, latency time.Duration, alice builderKey) propNet {
	mn := mocknet.New()
	b.Cleanup(func() { mn.Close() })
	a := newArrivals(top.nodes)
	var ds []*Daemon
	var ps []peer.ID
	for range top.nodes {
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
		ps = append(ps, d.Network().ID())
		b.Cleanup(func() { cancel(); <-done; d.Close(); n.Close() })
	}
	for _, d := range ds {
		<-d.Network().Ready()
	}
	top.connect(b, mn, ps, latency)
	// A daemon syncs with each new peer when it connects and again once
	// the mesh has settled (5 s later); in a running network that burst
	// is long over, so it is waited out: the settling syncs are due and
	// no session has ended for two seconds.
	connected, last, changed := time.Now(), -1, time.Now()
	why := ""
	settled := func() bool {
		total := 0
		for i, d := range ds {
			if n := len(d.Network().TopicPeers()); n < len(top.adj[i]) {
				why = fmt.Sprintf("node %d has %d topic peers of %d", i, n, len(top.adj[i]))
				return false
			}
			total += syncSessions(d)
		}
		why = fmt.Sprintf("%d sync sessions, the last ended %v ago", total, time.Since(changed))
		if total != last {
			last, changed = total, time.Now()
			return false
		}
		return time.Since(connected) > 6*time.Second && time.Since(changed) > 2*time.Second
	}
	for deadline := time.Now().Add(2 * time.Minute); !settled(); {
		if time.Now().After(deadline) {
			b.Fatalf("the network did not settle within 2 minutes: %s", why)
		}
		<-time.After(25 * time.Millisecond) // polling
	}
	return propNet{
		nodes:   top.nodes,
		publish: func(i int, data []byte) error { return ds[i%top.nodes].Network().Publish(context.Background(), data) },
		a:       a,
		keyOf:   func(data []byte) string { id := envelopeID(data); return attest.ID(id).String() },
	}
}

// syncSessions is how many catch-up sessions d has asked for, ended well
// or not.
func syncSessions(d *Daemon) int {
	total := 0
	for _, r := range []string{"ok", "error"} {
		var m dto.Metric
		if err := d.metrics.syncSessions.WithLabelValues(r).Write(&m); err == nil {
			total += int(m.GetCounter().GetValue())
		}
	}
	return total
}

// propagation is what one network measured: per document, the time until
// every node had it, and the process's CPU time per document and node
// beyond what the two networks use while idle.
type propagation struct {
	lat []time.Duration
	cpu time.Duration
}

// propagate measures the networks side by side: each document is
// published into one, then into the other (in turns, which first), from
// rotating nodes, each waited for until every node has it. The load of a
// shared machine thus weighs on both alike.
func propagate(b *testing.B, envs [][]byte, nets ...propNet) []propagation {
	first := 0
	for _, n := range nets {
		first = max(first, n.warmUp(b, envs))
	}
	// The CPU time of the idle networks (heartbeats, score upkeep), over
	// a second, is taken off what each publication costs.
	idleStart, idleCPU := time.Now(), cpuTime()
	<-time.After(time.Second)
	idle := float64(cpuTime()-idleCPU) / float64(time.Since(idleStart))
	out := make([]propagation, len(nets))
	for i, data := range envs[first:] {
		for j := range nets {
			k := (i + j) % len(nets)
			n := nets[k]
			start, cpu := time.Now(), cpuTime()
			d, ok := n.send(b, i, data, 30*time.Second)
			if !ok {
				b.Fatalf("document %d did not reach all %d nodes", i, n.nodes)
			}
			out[k].lat = append(out[k].lat, d)
			out[k].cpu += cpuTime() - cpu - time.Duration(idle*float64(time.Since(start)))
		}
	}
	for k, n := range nets {
		out[k].cpu = max(out[k].cpu, 0) / time.Duration(len(out[k].lat)*n.nodes)
	}
	return out
}

// BenchmarkPropagation publishes 100 documents (Ed25519-signed
// attestations), one at a time from rotating nodes, into networks of 10,
// 20, 50 and 100 nodes on a mocknet, at 0 and 10 ms of latency each way on
// every link, and measures the time until the last node has each: rbnode
// daemons (the document verified, judged and stored at every hop) against
// bare gossipsub on the same topology, both networks up at once and the
// documents sent into them in turns. Rows: p50 and p99 of each size and
// latency, target at most 1.2x bare gossipsub's. hops is the topology's
// greatest distance between two nodes: p99 should follow it, not the node
// count.
func BenchmarkPropagation(b *testing.B) {
	alice := newBuilder(b, "alice")
	envs := propagationEnvelopes(b, alice)
	for _, latency := range []time.Duration{0, 10 * time.Millisecond} {
		for _, nodes := range propagationSizes {
			b.Run(fmt.Sprintf("nodes=%d/latency=%dms", nodes, latency.Milliseconds()), func(b *testing.B) {
				top := newTopology(nodes, 13)
				hops := 0
				for i := range nodes {
					hops = max(hops, top.eccentricity(i))
				}
				res := propagate(b, envs, startBare(b, top, latency), startRbnode(b, top, latency, alice))
				bare, rb := res[0], res[1]
				for _, q := range []struct {
					name string
					p    float64
				}{{"p50", 0.5}, {"p99", 0.99}} {
					b.Run(q.name, func(b *testing.B) {
						b.ReportMetric(ms(percentile(rb.lat, q.p)), "fig_ms")
						b.ReportMetric(ms(percentile(bare.lat, q.p)), "anc_ms")
						b.ReportMetric(1.2, "max_x")
						b.ReportMetric(float64(hops), "hops")
						b.ReportMetric(float64(rb.cpu.Microseconds()), "rbnode-cpu-us/delivery")
						b.ReportMetric(float64(bare.cpu.Microseconds()), "bare-cpu-us/delivery")
					})
				}
			})
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// sharedGuixSigs is the whole guix.sigs data when the shared test data is
// beside the clone (or beside the directory holding a worktree), else the
// repo's subset.
func sharedGuixSigs() string {
	for _, up := range []string{"../..", "../../.."} {
		dir := filepath.Join(up, "shared/testdata/guix.sigs")
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
	}
	return guixSigs
}

// BenchmarkStoreGrowth imports the guix.sigs data into an empty store and
// reports what a document costs on the wire and on disk: the envelope
// sizes (what gossip and sync carry: the document, its signature and its
// signer's key) and the store's bytes per document once closed (Badger's
// tables and value log; the keys are stored once). docs/scale.md builds
// on these figures.
func BenchmarkStoreGrowth(b *testing.B) {
	tree := sharedGuixSigs()
	for range b.N {
		cfg := DefaultConfig()
		cfg.Home = b.TempDir()
		n, err := Open(cfg, zerolog.Nop())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := n.Import(context.Background(), tree, ImportOptions{}); err != nil {
			b.Fatal(err)
		}
		var sizes []int
		err = n.store.Range(nil, func(string) bool { return true }, func(id attest.ID) bool {
			env, err := n.Envelope(id)
			if err != nil {
				b.Fatal(err)
			}
			sizes = append(sizes, len(env))
			return true
		})
		if err != nil || len(sizes) == 0 {
			b.Fatalf("range over the store: %d documents, %v", len(sizes), err)
		}
		if err := n.Close(); err != nil {
			b.Fatal(err)
		}
		var disk int64
		err = filepath.WalkDir(cfg.Home, func(_ string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				fi, err := e.Info()
				if err != nil {
					return err
				}
				disk += fi.Size()
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		slices.Sort(sizes)
		total := 0
		for _, s := range sizes {
			total += s
		}
		b.ReportMetric(float64(len(sizes)), "documents")
		b.ReportMetric(float64(total/len(sizes)), "envelope-mean-B")
		b.ReportMetric(float64(sizes[len(sizes)/2]), "envelope-p50-B")
		b.ReportMetric(float64(sizes[len(sizes)*9/10]), "envelope-p90-B")
		b.ReportMetric(float64(disk/int64(len(sizes))), "store-B/doc")
	}
}
