// Package benchfmt reads the output of `go test -bench`: each
// benchmark's results with their custom metrics (testing.B.ReportMetric),
// and the benchmarks reported as failed. contrib/benchtable makes make
// bench's table from it and contrib/propplot the propagation plot.
package benchfmt

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Sample is one result line of one benchmark: its custom metrics by unit.
type Sample struct {
	Metrics map[string]float64
}

// Bench is every result of one benchmark name in one package.
type Bench struct {
	Pkg, Name string
	Samples   []Sample
}

// Results is what a `go test -bench` output holds.
type Results struct {
	Benches []*Bench
	Failed  []string // names of benchmarks reported as FAIL
}

// Has reports whether a benchmark of that name has results.
func (r *Results) Has(name string) bool {
	for _, b := range r.Benches {
		if b.Name == name {
			return true
		}
	}
	return false
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// Name turns "BenchmarkX/sub-2" into "X/sub": the row name.
func Name(field string) string {
	return strings.TrimPrefix(procsSuffix.ReplaceAllString(field, ""), "Benchmark")
}

// Parse reads `go test -bench` output. A result is a benchmark name
// followed by an iteration count and value-unit pairs; when the benchmark
// logged something, the name stands alone on a line and the count and pairs
// come on a later one.
func Parse(in io.Reader) (*Results, error) {
	res := &Results{}
	byKey := map[string]*Bench{}
	pkg, pending := "", ""
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg, pending = strings.TrimSpace(p), ""
			continue
		}
		if f, ok := strings.CutPrefix(trimmed, "--- FAIL: "); ok {
			if name := strings.Fields(f); len(name) > 0 && strings.HasPrefix(name[0], "Benchmark") {
				res.Failed = append(res.Failed, Name(name[0]))
			}
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		name := ""
		if strings.HasPrefix(line, "Benchmark") {
			name, fields = fields[0], fields[1:]
			if len(fields) == 0 {
				pending = name
				continue
			}
		} else if pending != "" {
			name = pending
		} else {
			continue
		}
		m, ok := Metrics(fields)
		if !ok {
			continue
		}
		pending = ""
		n := Name(name)
		key := pkg + "\x00" + n
		b := byKey[key]
		if b == nil {
			b = &Bench{Pkg: pkg, Name: n}
			byKey[key] = b
			res.Benches = append(res.Benches, b)
		}
		b.Samples = append(b.Samples, Sample{Metrics: m})
	}
	return res, sc.Err()
}

// Metrics reads "N v1 u1 v2 u2 ..." (the iteration count first).
func Metrics(fields []string) (map[string]float64, bool) {
	if len(fields) < 3 || len(fields)%2 == 0 {
		return nil, false
	}
	if _, err := strconv.ParseInt(fields[0], 10, 64); err != nil {
		return nil, false
	}
	m := map[string]float64{}
	for i := 1; i+1 < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return nil, false
		}
		m[fields[i+1]] = v
	}
	return m, true
}

// Input opens the benchmark output named by args: standard input when
// there is none or it is "-". The caller closes it.
func Input(args []string, stdin io.Reader) (io.ReadCloser, error) {
	switch {
	case len(args) > 1:
		return nil, fmt.Errorf("one benchmark output at most, got %d", len(args))
	case len(args) == 0 || args[0] == "-":
		return io.NopCloser(stdin), nil
	}
	return os.Open(args[0])
}
