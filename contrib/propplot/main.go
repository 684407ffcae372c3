// Command propplot draws the propagation sweep of `make bench`
// (BenchmarkPropagation in node/bench_test.go) from its output: the time
// until the last node has a document, p50 and p99, against the network
// size, for rbnode and for bare gossipsub on the same topology, one panel
// per link latency. Usage:
//
//	propplot [-o docs/propagation.png] [bench.out]
//
// It reads standard input when no file (or -) is given, and exits 1 when
// the output holds no propagation rows, 2 on a usage error.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"

	"github.com/rbnode/rbnode/contrib/benchfmt"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stderr))
}

func run(args []string, stdin io.Reader, stderr io.Writer) int {
	fs := flag.NewFlagSet("propplot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "docs/propagation.png", "the PNG to write")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: propplot [-o FILE.png] [BENCH_OUTPUT]")
		return 2
	}
	in, err := benchfmt.Input(fs.Args(), stdin)
	if err != nil {
		fmt.Fprintf(stderr, "propplot: error: %v\n", err)
		return 2
	}
	defer in.Close()
	pts, err := parse(in)
	if err != nil {
		fmt.Fprintf(stderr, "propplot: error: read benchmark output: %v\n", err)
		return 2
	}
	if len(pts) == 0 {
		fmt.Fprintln(stderr, "propplot: error: no BenchmarkPropagation rows in the input (run: make bench BENCH=Propagation)")
		return 1
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintf(stderr, "propplot: error: %v\n", err)
		return 2
	}
	if err := render(f, pts); err != nil {
		f.Close()
		fmt.Fprintf(stderr, "propplot: error: draw %s: %v\n", *out, err)
		return 1
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(stderr, "propplot: error: %v\n", err)
		return 1
	}
	return 0
}

// point is one row of the sweep: a size, a latency and a quantile, with
// rbnode's figure and bare gossipsub's (the anchor), in milliseconds.
type point struct {
	Nodes, LatencyMs int
	Quantile         string // "p50" or "p99"
	Rbnode, Bare     float64
	Hops             int
}

var rowName = regexp.MustCompile(`^Propagation/nodes=(\d+)/latency=(\d+)ms/(p50|p99)$`)

// parse reads `go test -bench` output and returns the propagation rows,
// sorted by latency, quantile and size. A row repeated (-count) stands
// for its result with the median rbnode figure.
func parse(in io.Reader) ([]point, error) {
	res, err := benchfmt.Parse(in)
	if err != nil {
		return nil, err
	}
	var pts []point
	for _, b := range res.Benches {
		m := rowName.FindStringSubmatch(b.Name)
		if m == nil {
			continue
		}
		nodes, err1 := strconv.Atoi(m[1])
		lat, err2 := strconv.Atoi(m[2])
		if err1 != nil || err2 != nil {
			continue
		}
		var ps []point
		for _, s := range b.Samples {
			fig, okf := s.Metrics["fig_ms"]
			anc, oka := s.Metrics["anc_ms"]
			if okf && oka {
				ps = append(ps, point{Nodes: nodes, LatencyMs: lat, Quantile: m[3], Rbnode: fig, Bare: anc, Hops: int(s.Metrics["hops"])})
			}
		}
		if len(ps) == 0 {
			continue
		}
		slices.SortFunc(ps, func(a, b point) int { return cmp.Compare(a.Rbnode, b.Rbnode) })
		pts = append(pts, ps[(len(ps)-1)/2])
	}
	slices.SortFunc(pts, func(a, b point) int {
		return cmp.Or(cmp.Compare(a.LatencyMs, b.LatencyMs), cmp.Compare(a.Quantile, b.Quantile), cmp.Compare(a.Nodes, b.Nodes))
	})
	return pts, nil
}

var (
	rbnodeColor = color.RGBA{R: 0xc0, G: 0x39, B: 0x2b, A: 0xff}
	bareColor   = color.RGBA{R: 0x29, G: 0x80, B: 0xb9, A: 0xff}
)

// render draws one panel per latency, side by side, as a PNG.
func render(w io.Writer, pts []point) error {
	var lats []int
	for _, p := range pts {
		if !slices.Contains(lats, p.LatencyMs) {
			lats = append(lats, p.LatencyMs)
		}
	}
	row := make([]*plot.Plot, len(lats))
	for i, lat := range lats {
		p, err := panel(pts, lat)
		if err != nil {
			return err
		}
		row[i] = p
	}
	const height = 4 * vg.Inch
	width := vg.Length(len(lats)) * 4.5 * vg.Inch
	img := vgimg.New(width, height)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(lats), PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{row}, tiles, dc)
	for i, p := range row {
		p.Draw(canvases[0][i])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

// panel is the plot of one latency: four lines over the network size.
func panel(pts []point, lat int) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("link latency %d ms", lat)
	p.X.Label.Text = "nodes"
	p.X.Scale = plot.LogScale{}
	p.Y.Label.Text = "ms until the last node has it"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = ticks125{}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	var ticks []plot.Tick
	for _, s := range []struct {
		q     string
		rb    bool
		label string
	}{{"p50", true, "rbnode p50"}, {"p99", true, "rbnode p99"}, {"p50", false, "bare gossipsub p50"}, {"p99", false, "bare gossipsub p99"}} {
		var xys plotter.XYs
		for _, pt := range pts {
			if pt.LatencyMs != lat || pt.Quantile != s.q {
				continue
			}
			y := pt.Bare
			if s.rb {
				y = pt.Rbnode
			}
			xys = append(xys, plotter.XY{X: float64(pt.Nodes), Y: max(y, 0.01)})
			if s.rb && s.q == "p50" {
				ticks = append(ticks, plot.Tick{Value: float64(pt.Nodes), Label: fmt.Sprintf("%d\n(%d hops)", pt.Nodes, pt.Hops)})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, dots, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		c := bareColor
		if s.rb {
			c = rbnodeColor
		}
		line.Color, dots.Color = c, c
		if s.q == "p99" {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			dots.Shape = draw.TriangleGlyph{}
		}
		p.Add(line, dots)
		p.Legend.Add(s.label, line, dots)
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	return p, nil
}

// ticks125 labels a log axis at 1, 2 and 5 times each power of ten, so
// that a range within one decade still has labels.
type ticks125 struct{}

func (ticks125) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for dec := math.Pow(10, math.Floor(math.Log10(lo))); dec <= hi; dec *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if v := m * dec; v >= lo && v <= hi {
				ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
			}
		}
	}
	return ts
}
