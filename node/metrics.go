package node

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/builder"
	"github.com/rbnode/rbnode/gossip"
)

// metrics are the daemon's Prometheus metrics (docs/operator.md lists
// them). Counters count events since the daemon started; gauges and the
// build figures are read from the store and the network at each scrape.
type metrics struct {
	reg          *prometheus.Registry
	received     prometheus.Counter
	stored       *prometheus.CounterVec
	quarantined  prometheus.Counter
	rejected     *prometheus.CounterVec
	syncSessions *prometheus.CounterVec
	syncDuration prometheus.Histogram
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rbnode_documents_received_total",
			Help: "Documents received from peers, by gossip or sync, whatever their judgement (counted once judged).",
		}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rbnode_documents_stored_total",
			Help: "Documents newly written to the store, by source (network or import).",
		}, []string{"source"}),
		quarantined: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rbnode_documents_quarantined_total",
			Help: "Documents from peers signed by keys this node does not trust, kept within the untrusted budget and not relayed.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rbnode_documents_rejected_total",
			Help: "Documents from peers rejected or dropped, by reason.",
		}, []string{"reason"}),
		syncSessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rbnode_sync_sessions_total",
			Help: "Catch-up sync sessions this node asked for, by result (ok or error).",
		}, []string{"result"}),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rbnode_sync_session_duration_seconds",
			Help:    "Duration of the catch-up sync sessions this node asked for.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
		}),
	}
	m.reg.MustRegister(m.received, m.stored, m.quarantined, m.rejected, m.syncSessions, m.syncDuration,
		&stateCollector{d: d}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.stored.WithLabelValues("network")
	m.stored.WithLabelValues("import")
	m.syncSessions.WithLabelValues("ok")
	m.syncSessions.WithLabelValues("error")
	return m
}

func (m *metrics) syncDone(st gossip.SyncStats, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.syncSessions.WithLabelValues(result).Inc()
	m.syncDuration.Observe(st.Duration.Seconds())
}

// Gatherer returns the daemon's metrics registry, for /metrics.
func (d *Daemon) Gatherer() prometheus.Gatherer { return d.metrics.reg }

var (
	descPeers = prometheus.NewDesc("rbnode_peers", "Connected peers.", nil, nil)
	descStore = prometheus.NewDesc("rbnode_store_size_bytes", "Size of the Badger store on disk (LSM tree and value log).", nil, nil)
	descRel   = prometheus.NewDesc("rbnode_releases", "Releases in the store, by verdict at the configured quorum.", []string{"verdict"}, nil)
	descBuild = prometheus.NewDesc("rbnode_builds_total", "Builds recorded by this node, by outcome (ok, failed, cancelled).", []string{"outcome"}, nil)
	descStage = prometheus.NewDesc("rbnode_build_stage_duration_seconds", "Duration of the stages of recorded builds, by stage.", []string{"stage"}, nil)
)

// stageBuckets bound build stage durations: seconds to hours.
var stageBuckets = []float64{1, 10, 60, 300, 900, 1800, 3600, 7200, 14400}

// stateCollector reads what the store and the network hold at scrape time.
// The releases-by-verdict tally judges every release, so it is kept until
// the store or the trust set changes (generation).
type stateCollector struct {
	d *Daemon

	mu      sync.Mutex
	gen     uint64
	byVerd  map[attest.Verdict]int
	counted bool
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeers, descStore, descRel, descBuild, descStage} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(len(d.net.Peers())))
	ch <- prometheus.MustNewConstMetric(descStore, prometheus.GaugeValue, float64(d.n.store.Size()))
	if by, ok := c.releases(); ok {
		for _, v := range []attest.Verdict{attest.Consensus, attest.Divergence, attest.Pending} {
			ch <- prometheus.MustNewConstMetric(descRel, prometheus.GaugeValue, float64(by[v]), string(v))
		}
	}
	builds, err := d.n.Builds()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descBuild, err)
		return
	}
	outcomes := map[builder.Status]int{builder.StatusOK: 0, builder.StatusFailed: 0, builder.StatusCancelled: 0}
	type hist struct {
		n      uint64
		sum    float64
		counts map[float64]uint64
	}
	stages := map[builder.Stage]*hist{}
	for _, r := range builds {
		outcomes[r.Status]++
		for _, s := range r.Stages {
			h := stages[s.Stage]
			if h == nil {
				h = &hist{counts: map[float64]uint64{}}
				stages[s.Stage] = h
			}
			secs := s.Duration().Seconds()
			h.n++
			h.sum += secs
			for _, b := range stageBuckets {
				if secs <= b {
					h.counts[b]++
				}
			}
		}
	}
	for o, n := range outcomes {
		ch <- prometheus.MustNewConstMetric(descBuild, prometheus.CounterValue, float64(n), string(o))
	}
	for st, h := range stages {
		ch <- prometheus.MustNewConstHistogram(descStage, h.n, h.sum, h.counts, string(st))
	}
}

// releases counts releases by verdict, recomputed when the generation
// moved since the last count.
func (c *stateCollector) releases() (map[attest.Verdict]int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gen := c.d.gen.Load()
	if c.counted && gen == c.gen {
		return c.byVerd, true
	}
	list, err := c.d.n.Releases("", 0)
	if err != nil {
		c.d.log.Warn().Err(err).Msg("metrics: count releases")
		return nil, false
	}
	by := map[attest.Verdict]int{}
	for _, r := range list {
		by[r.Verdict]++
	}
	c.byVerd, c.gen, c.counted = by, gen, true
	return by, true
}

// changed marks that the store or the trust set changed: judgements
// computed before are stale.
func (d *Daemon) changed() { d.gen.Add(1) }

// Healthy reports whether the store answers and gossip is running: nil,
// or what is wrong.
func (d *Daemon) Healthy() error {
	if err := d.n.store.Check(); err != nil {
		return err
	}
	if !d.netUp.Load() {
		return errGossipDown
	}
	return nil
}

var errGossipDown = errors.New("gossip is not running")
