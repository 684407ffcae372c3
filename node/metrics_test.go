package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/builder"
)

// scrape fetches the daemon's metrics over HTTP as Prometheus would and
// parses the text format.
func scrape(t *testing.T, td *testDaemon) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(td.d.Gatherer(), promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the value of the sample of family name whose labels include
// want (name=value pairs), summed over matching samples; -1 if none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	total, found := 0.0, false
outer:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			ok := false
			for _, l := range m.GetLabel() {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					ok = true
				}
			}
			if !ok {
				continue outer
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	if !found {
		return -1
	}
	return total
}

// TestMetricsScrape: two daemons on loopback; what the second receives,
// stores, quarantines and rejects, its syncs, peers, releases and builds
// show in its /metrics, which parses as Prometheus text and follows the
// naming conventions.
func TestMetricsScrape(t *testing.T) {
	alice, bob := newBuilder(t, "alice"), newBuilder(t, "bob")
	a := startDaemon(t, t.TempDir(), nil, nil, alice, bob)
	b := startDaemon(t, t.TempDir(), nil, []string{a.addr(t)}, alice) // does not trust bob
	waitFor(t, 20*time.Second, "the daemons to connect", func() bool { return len(b.d.Peers()) > 0 })
	waitFor(t, 20*time.Second, "a first sync session", func() bool {
		return value(scrape(t, b), "rbnode_sync_sessions_total") >= 1
	})

	id := publishDoc(t, a, alice, "0.0.9", sha('a'))
	publishDoc(t, a, bob, "0.0.9", sha('a'))
	waitFor(t, 20*time.Second, "b to store alice's document", func() bool { return b.has(id) })
	// A peer sends garbage: the real gossip handler rejects it.
	b.d.handle(t.Context(), a.d.Network().ID(), []byte("not an envelope"))
	b.n.AddBuild(&builder.Record{Version: "0.0.9", Status: builder.StatusOK, StartedAt: testNow,
		Stages: []builder.StageRecord{{Stage: "build", DurationMS: 90_000}}})

	var fams map[string]*dto.MetricFamily
	waitFor(t, 20*time.Second, "the quarantine to show", func() bool {
		fams = scrape(t, b)
		return value(fams, "rbnode_documents_quarantined_total") == 1
	})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"rbnode_documents_stored_total", []string{"source", "network"}, 1},
		{"rbnode_documents_rejected_total", []string{"reason", "malformed"}, 1},
		{"rbnode_peers", nil, 1},
		{"rbnode_releases", []string{"verdict", string(attest.Pending)}, 1},
		{"rbnode_releases", []string{"verdict", string(attest.Consensus)}, 0},
		{"rbnode_builds_total", []string{"outcome", "ok"}, 1},
		{"rbnode_build_stage_duration_seconds", []string{"stage", "build"}, 1},
	} {
		if got := value(fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := value(fams, "rbnode_documents_received_total"); got < 3 {
		t.Errorf("rbnode_documents_received_total = %v, want at least 3", got)
	}
	// a published both documents: stored by import, not received.
	af := scrape(t, a)
	if got := value(af, "rbnode_documents_stored_total", "source", "import"); got != 2 {
		t.Errorf("a: rbnode_documents_stored_total{source=import} = %v, want 2", got)
	}
	if got := value(af, "rbnode_documents_received_total"); got != 0 {
		t.Errorf("a: rbnode_documents_received_total = %v, want 0 (its own documents are not received)", got)
	}
	if got := value(fams, "rbnode_store_size_bytes"); got <= 0 {
		t.Errorf("rbnode_store_size_bytes = %v", got)
	}
	if h := fams["rbnode_sync_session_duration_seconds"]; h == nil || h.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("no sync duration histogram")
	}
	// Conventions: rbnode_ prefix on our own, counters end in _total,
	// durations in seconds and sizes in bytes.
	for name, f := range fams {
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		if !strings.HasPrefix(name, "rbnode_") {
			t.Errorf("metric %s lacks the rbnode_ prefix", name)
		}
		if (f.GetType() == dto.MetricType_COUNTER) != strings.HasSuffix(name, "_total") {
			t.Errorf("metric %s: type %s and name disagree on _total", name, f.GetType())
		}
		if strings.Contains(name, "duration") && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("metric %s: a duration not in seconds", name)
		}
	}

	// bob is trusted in the store and the daemon reloads (as on SIGHUP)
	// with quorum 2: bob's document leaves the quarantine and the release
	// count follows (no stale cache).
	if err := b.n.Trust([]*attest.Key{bob.sk.Public()}, "bob"); err != nil {
		t.Fatal(err)
	}
	cfg := b.n.Config()
	cfg.Quorum = 2
	applied, _, err := b.d.Reload(t.Context(), cfg)
	if err != nil || len(applied) != 1 || applied[0] != "quorum" {
		t.Fatalf("reload: applied %v, %v", applied, err)
	}
	fams = scrape(t, b)
	if got := value(fams, "rbnode_releases", "verdict", string(attest.Consensus)); got != 1 {
		t.Errorf("after trusting bob at quorum 2: rbnode_releases{verdict=consensus} = %v, want 1", got)
	}
	if r, err := b.n.Status("", "0.0.9", 0); err != nil || r.Verdict != attest.Consensus || r.Quorum != 2 {
		t.Errorf("status after the reload: %v %+v", err, r)
	}
}

// TestHealthy: a daemon is healthy while its store answers and gossip
// runs, and says why not otherwise.
func TestHealthy(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Home = t.TempDir()
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.MDNS, cfg.DHT = false, false
	n, err := Open(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	d, err := NewDaemon(n, DaemonOptions{Socket: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Healthy(); err == nil || !strings.Contains(err.Error(), "gossip is not running") {
		t.Fatalf("before Run: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitFor(t, 10*time.Second, "the daemon to be healthy", func() bool { return d.Healthy() == nil })
	cancel()
	<-done
	if err := d.Healthy(); err == nil {
		t.Fatal("healthy after Run returned")
	}
}
