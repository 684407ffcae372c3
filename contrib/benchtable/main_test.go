package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbnode/rbnode/contrib/benchfmt"
)

const sampleOutput = `goos: linux
goarch: amd64
pkg: github.com/rbnode/rbnode/node
cpu: some cpu
BenchmarkPropagation/nodes=10/latency=0-2         	       1	1234567 ns/op	  12.3 fig_ms	10.0 anc_ms	1.2 max_x
BenchmarkPropagation/nodes=20/latency=0-2
    bench_test.go:10: a log line between the name and the result
       1	1234567 ns/op	  14 fig_ms	10.0 anc_ms	1.2 max_x
BenchmarkOld-2  1  5 ns/op  3.1 p50-ms
PASS
pkg: github.com/rbnode/rbnode/cmd/rbnode
BenchmarkImport-2  1  5 ns/op  36 fig_x  1 anc_x 35 min_x
BenchmarkImport-2  1  5 ns/op  31 fig_x  1 anc_x 35 min_x
BenchmarkImport-2  1  5 ns/op  40 fig_x  1 anc_x 35 min_x
BenchmarkMemory-2  1  5 ns/op  180 fig_MB  256 anc_MB 1 max_x
PASS
`

func TestTable(t *testing.T) {
	tests := []struct {
		name, out, notes string
		code             int
		want, notWant    []string
	}{{
		name:    "a miss without a note fails",
		out:     sampleOutput,
		code:    1,
		want:    []string{"Propagation/nodes=10/latency=0  12.3 ms", "1.23x", "<= 1.20x", "MISS"},
		notWant: []string{"Old"},
	}, {
		name:  "every miss noted passes and shows its note",
		out:   sampleOutput,
		notes: "# misses\nPropagation/nodes=10/latency=0: the machine is shared\nBenchmarkPropagation/nodes=20/latency=0: twenty nodes on two cores\nImport: noted though met\n",
		code:  0,
		want: []string{
			"missed (noted)  the machine is shared",
			"twenty nodes on two cores",
			// the median of three runs stands for the row: 36x, between 31 and 40
			"Import                          36.0 x (median of 3)  1.00 x   36.0x   >= 35.0x  ok              noted though met",
			"Memory                          180 MB                256 MB   0.703x  <= 1.00x  ok",
		},
	}, {
		name: "a figure without an anchor is broken",
		out:  "BenchmarkX-2 1 5 ns/op 3 fig_ms 1.2 max_x\n",
		code: 1,
		want: []string{"BROKEN", "has 1, 0 and 1"},
	}, {
		name: "units must agree",
		out:  "BenchmarkX-2 1 5 ns/op 3 fig_ms 4 anc_s 1.2 max_x\n",
		code: 1,
		want: []string{"BROKEN", `figure in "ms" but anchor in "s"`},
	}, {
		name: "a zero anchor is broken",
		out:  "BenchmarkX-2 1 5 ns/op 3 fig_ms 0 anc_ms 1.2 max_x\n",
		code: 1,
		want: []string{"BROKEN", "positive anchor"},
	}, {
		name:  "a failed benchmark fails the table even when noted",
		out:   "BenchmarkX-2 1 5 ns/op 3 fig_ms 4 anc_ms 1.2 max_x\n--- FAIL: BenchmarkY\n    x_test.go:1: boom\n",
		notes: "Y: never mind\n",
		code:  1,
		want:  []string{"3.00 ms  4.00 ms  0.75x  <= 1.20x  ok"},
	}, {
		name: "names shared by two packages are qualified",
		out:  "pkg: a/gossip\nBenchmarkP-2 1 5 ns/op 1 fig_ms 1 anc_ms 2 max_x\npkg: a/node\nBenchmarkP-2 1 5 ns/op 1 fig_ms 1 anc_ms 2 max_x\n",
		code: 0,
		want: []string{"gossip.P", "node.P"},
	}, {
		name:  "a malformed notes file is a usage error",
		out:   sampleOutput,
		notes: "no colon here\n",
		code:  2,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			notes := filepath.Join(dir, "notes.txt")
			if tt.notes != "" {
				if err := os.WriteFile(notes, []byte(tt.notes), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			code := run([]string{"-notes", notes}, strings.NewReader(tt.out), &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("table lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(stdout.String(), w) {
					t.Errorf("table has %q:\n%s", w, stdout.String())
				}
			}
		})
	}
}

func TestMarkdown(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"-md", "-notes", filepath.Join(t.TempDir(), "none")}, strings.NewReader("BenchmarkX-2 1 5 ns/op 3 fig_ms 4 anc_ms 1.2 max_x\n"), &stdout, &stderr)
	want := "| row | figure | anchor | ratio | target | verdict | note |\n| --- | --- | --- | --- | --- | --- | --- |\n| X | 3.00 ms | 4.00 ms | 0.75x | <= 1.20x | ok |  |\n"
	if code != 0 || stdout.String() != want {
		t.Fatalf("exit %d, got\n%s\nwant\n%s", code, stdout.String(), want)
	}
}

// FuzzParse: any output, however mangled, gives a table or an error,
// never a panic.
func FuzzParse(f *testing.F) {
	f.Add(sampleOutput)
	f.Add("BenchmarkX\n 1 2 fig_ms 3 anc_ms 1 max_x\n")
	f.Fuzz(func(t *testing.T, s string) {
		res, err := benchfmt.Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		writeText(&buf, judge(res, nil))
	})
}
