package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/rbnode/rbnode/contrib/benchfmt"
)

// Verdicts.
const (
	verdictOK     = "ok"
	verdictMiss   = "MISS"
	verdictNoted  = "missed (noted)"
	verdictBroken = "BROKEN"
	verdictFailed = "FAILED"
)

// row is one line of the table.
type row struct {
	Name          string
	Fig, Anc      float64
	Unit          string
	Ratio, Target float64
	Max           bool // lower is better
	Samples       int
	Verdict, Note string
	Problem       string // why a row is BROKEN
	bench         string // the benchmark's name, unqualified
}

// judge makes a row of every benchmark that reports fig_ metrics, in the
// order they ran. Of repeated results (-count, several packages' runs) the
// one with the median ratio stands for the row.
func judge(res *benchfmt.Results, notes map[string]string) []row {
	dup := map[string]int{}
	for _, b := range res.Benches {
		dup[b.Name]++
	}
	var rows []row
	for _, b := range res.Benches {
		name := b.Name
		if dup[name] > 1 {
			name = b.Pkg[strings.LastIndex(b.Pkg, "/")+1:] + "." + name
		}
		var cands []row
		broken := ""
		isRow := false
		for _, s := range b.Samples {
			r, ok, problem := rowOf(s)
			if !ok {
				continue
			}
			isRow = true
			if problem != "" {
				broken = problem
				continue
			}
			cands = append(cands, r)
		}
		if !isRow {
			continue
		}
		var r row
		if broken != "" {
			r = row{Verdict: verdictBroken, Problem: broken}
		} else {
			slices.SortFunc(cands, func(a, b row) int { return cmpFloat(a.Ratio, b.Ratio) })
			r = cands[(len(cands)-1)/2]
			r.Samples = len(cands)
			met := r.Ratio <= r.Target
			if !r.Max {
				met = r.Ratio >= r.Target
			}
			r.Verdict = verdictOK
			if !met {
				r.Verdict = verdictMiss
			}
		}
		r.Name, r.bench = name, b.Name
		r.Note = noteFor(notes, name, b.Name)
		if r.Verdict == verdictMiss && r.Note != "" {
			r.Verdict = verdictNoted
		}
		if r.Verdict == verdictBroken {
			r.Note = r.Problem
		}
		rows = append(rows, r)
	}
	for _, f := range res.Failed {
		for i := range rows {
			if rows[i].bench == f {
				rows[i].Verdict = verdictFailed
			}
		}
	}
	return rows
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rowOf reads one sample. isRow says whether it reports any of the table's
// metrics; problem says what is wrong with them, if anything.
func rowOf(s benchfmt.Sample) (r row, isRow bool, problem string) {
	var figUnit, ancUnit string
	nFig, nAnc, nTarget := 0, 0, 0
	for unit, v := range s.Metrics {
		switch {
		case strings.HasPrefix(unit, "fig_"):
			nFig++
			figUnit, r.Fig = strings.TrimPrefix(unit, "fig_"), v
		case strings.HasPrefix(unit, "anc_"):
			nAnc++
			ancUnit, r.Anc = strings.TrimPrefix(unit, "anc_"), v
		case unit == "max_x":
			nTarget++
			r.Max, r.Target = true, v
		case unit == "min_x":
			nTarget++
			r.Max, r.Target = false, v
		}
	}
	if nFig+nAnc+nTarget == 0 {
		return r, false, ""
	}
	switch {
	case nFig != 1 || nAnc != 1 || nTarget != 1:
		return r, true, fmt.Sprintf("needs one fig_<unit>, one anc_<unit> and one of max_x or min_x; has %d, %d and %d", nFig, nAnc, nTarget)
	case figUnit == "" || figUnit != ancUnit:
		return r, true, fmt.Sprintf("figure in %q but anchor in %q: they must share a unit", figUnit, ancUnit)
	case r.Anc <= 0 || math.IsNaN(r.Anc) || math.IsInf(r.Anc, 0):
		return r, true, fmt.Sprintf("anchor is %v: a ratio needs a positive anchor", r.Anc)
	case r.Target <= 0 || math.IsNaN(r.Fig) || math.IsInf(r.Fig, 0):
		return r, true, "target must be positive and the figure finite"
	}
	r.Unit = figUnit
	r.Ratio = r.Fig / r.Anc
	return r, true, ""
}

// parseNotes reads "RowName: text" lines; blank lines and lines starting
// with # are skipped.
func parseNotes(s string) (map[string]string, error) {
	notes := map[string]string{}
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, text, ok := strings.Cut(line, ": ")
		name, text = strings.TrimSpace(name), strings.TrimSpace(text)
		if !ok || name == "" || text == "" {
			return nil, fmt.Errorf("line %d: want `RowName: why missed and what it would take`", i+1)
		}
		if _, dup := notes[name]; dup {
			return nil, fmt.Errorf("line %d: a second note for %s", i+1, name)
		}
		notes[name] = text
	}
	return notes, nil
}

// noteFor finds a row's note under its name, with or without the
// Benchmark prefix.
func noteFor(notes map[string]string, names ...string) string {
	for _, n := range names {
		for _, k := range []string{n, "Benchmark" + n} {
			if t, ok := notes[k]; ok {
				return t
			}
		}
	}
	return ""
}

// num prints a figure with about three significant digits, never in
// exponent form.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func (r row) cells() []string {
	if r.Verdict == verdictBroken {
		return []string{r.Name, "-", "-", "-", "-", r.Verdict, r.Note}
	}
	op := ">="
	if r.Max {
		op = "<="
	}
	fig := num(r.Fig) + " " + r.Unit
	if r.Samples > 1 {
		fig += fmt.Sprintf(" (median of %d)", r.Samples)
	}
	return []string{r.Name, fig, num(r.Anc) + " " + r.Unit, num(r.Ratio) + "x", op + " " + num(r.Target) + "x", r.Verdict, r.Note}
}

var header = []string{"row", "figure", "anchor", "ratio", "target", "verdict", "note"}

func writeText(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t"))
	}
	tw.Flush()
}

func writeMarkdown(w io.Writer, rows []row) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat(" --- |", len(header)))
	for _, r := range rows {
		c := r.cells()
		for i := range c {
			c[i] = strings.ReplaceAll(c[i], "|", `\|`)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(c, " | "))
	}
}
