package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `goos: linux
pkg: github.com/rbnode/rbnode/node
BenchmarkPropagation/nodes=10/latency=0ms/p50-2     	       1	     12240 ns/op	         0.7920 anc_ms	        16.68 fig_ms	         2.000 hops	         1.200 max_x
BenchmarkPropagation/nodes=10/latency=0ms/p99-2     	       1	     10184 ns/op	        42.15 anc_ms	        75.68 fig_ms	         2.000 hops	         1.200 max_x
BenchmarkPropagation/nodes=20/latency=0ms/p50-2
    bench_test.go:1: a log line
BenchmarkPropagation/nodes=20/latency=0ms/p50-2     	       1	     12806 ns/op	         3.082 anc_ms	        12.89 fig_ms	         3.000 hops	         1.200 max_x
BenchmarkPropagation/nodes=20/latency=0ms/p50-2     	       1	     12806 ns/op	         3.0 anc_ms	        20 fig_ms	         3.000 hops	         1.200 max_x
BenchmarkPropagation/nodes=20/latency=0ms/p50-2     	       1	     12806 ns/op	         3.0 anc_ms	        30 fig_ms	         3.000 hops	         1.200 max_x
BenchmarkPropagation/nodes=20/latency=0ms/p99-2     	       1	     12340 ns/op	        44.73 anc_ms	       286.8 fig_ms	         3.000 hops	         1.200 max_x
BenchmarkPropagation/nodes=10/latency=10ms/p50-2    	       1	     14973 ns/op	        22.47 anc_ms	        24.55 fig_ms	         2.000 hops	         1.200 max_x
BenchmarkPropagation/nodes=10/latency=10ms/p99-2    	       1	     12148 ns/op	       274.2 anc_ms	       186.0 fig_ms	         2.000 hops	         1.200 max_x
BenchmarkImportVsGPG-2   	       1	83681661770 ns/op	       176.4 anc_sigs/s	      1106 fig_sigs/s
PASS
`

func TestParse(t *testing.T) {
	pts, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := []point{
		{Nodes: 10, LatencyMs: 0, Quantile: "p50", Rbnode: 16.68, Bare: 0.792, Hops: 2},
		{Nodes: 20, LatencyMs: 0, Quantile: "p50", Rbnode: 20, Bare: 3.0, Hops: 3}, // the median of three
		{Nodes: 10, LatencyMs: 0, Quantile: "p99", Rbnode: 75.68, Bare: 42.15, Hops: 2},
		{Nodes: 20, LatencyMs: 0, Quantile: "p99", Rbnode: 286.8, Bare: 44.73, Hops: 3},
		{Nodes: 10, LatencyMs: 10, Quantile: "p50", Rbnode: 24.55, Bare: 22.47, Hops: 2},
		{Nodes: 10, LatencyMs: 10, Quantile: "p99", Rbnode: 186, Bare: 274.2, Hops: 2},
	}
	if len(pts) != len(want) {
		t.Fatalf("got %d points, want %d: %+v", len(pts), len(want), pts)
	}
	for i := range want {
		if pts[i] != want[i] {
			t.Errorf("point %d: got %+v, want %+v", i, pts[i], want[i])
		}
	}
}

func TestRunWritesPNG(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "bench.out")
	if err := os.WriteFile(in, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "p.png")
	var stderr bytes.Buffer
	if code := run([]string{"-o", out, in}, nil, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 10_000 {
		t.Fatalf("not a drawn PNG: %d bytes starting %q", len(b), b[:min(len(b), 8)])
	}
}

func TestRunWithoutRows(t *testing.T) {
	var stderr bytes.Buffer
	out := filepath.Join(t.TempDir(), "p.png")
	if code := run([]string{"-o", out}, strings.NewReader("PASS\n"), &stderr); code != 1 || !strings.Contains(stderr.String(), "no BenchmarkPropagation rows") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("wrote %s anyway", out)
	}
	if code := run([]string{"a", "b"}, nil, &stderr); code != 2 {
		t.Fatalf("two inputs: exit %d, want 2", code)
	}
}

// FuzzParse: no input makes the parser panic, and every point it returns
// is a propagation row with both figures.
func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("BenchmarkPropagation/nodes=1/latency=0ms/p50\n1 1 fig_ms 2 anc_ms\n")
	f.Fuzz(func(t *testing.T, s string) {
		pts, err := parse(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, p := range pts {
			if p.Quantile != "p50" && p.Quantile != "p99" {
				t.Fatalf("bad point %+v", p)
			}
		}
	})
}
