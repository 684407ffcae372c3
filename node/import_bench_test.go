package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// BenchmarkImport imports a tree of 20,000 signed manifests (1,000
// releases by 20 builders, all trusted beforehand, not timed) into an
// empty node: verification, the batched store writes with their change
// markers, and the release summaries judged at the end. It reports
// documents a second. No target: it compares a change against the code
// before it (docs/performance.md).
func BenchmarkImport(b *testing.B) {
	const releases, builders = 1000, 20
	var bs []builderKey
	for i := range builders {
		bs = append(bs, newBuilder(b, fmt.Sprintf("builder%02d", i)))
	}
	tree := b.TempDir()
	for r := range releases {
		v := fmt.Sprintf("1.%d", r)
		m := &attest.Manifest{Entries: []attest.Entry{
			{SHA256: fmt.Sprintf("%064x", r), Name: "proj-" + v + "-x86_64.tar.gz"},
			{SHA256: fmt.Sprintf("%064x", r+1), Name: "proj-" + v + ".tar.gz"},
		}}
		for _, k := range bs {
			k.writeManifest(b, tree, v, "all.SHA256SUMS", m)
		}
	}
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		n := openTestNode(b)
		trustBuilders(b, n, bs...)
		b.StartTimer()
		start := time.Now()
		s := mustImport(b, n, tree)
		total += time.Since(start)
		if s.Stored != releases*builders {
			b.Fatalf("stored %d documents, want %d", s.Stored, releases*builders)
		}
		b.StopTimer()
		n.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(releases*builders*b.N)/total.Seconds(), "docs/s")
}
