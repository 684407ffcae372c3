// Command benchtable turns the output of `go test -bench` into the one
// table that `make bench` ends with: for each benchmark that reports a
// figure, the anchor measured in the same run, their ratio and a target,
// the verdict, and the note from notes.txt that says why a target is
// missed and what meeting it would take.
//
// A benchmark is a row when it reports, with testing.B.ReportMetric,
// exactly these custom metrics (see docs/performance.md):
//
//	<figure> fig_<unit>   what was measured, e.g. 12.3 fig_ms
//	<anchor> anc_<unit>   the anchor measured in the same run, same unit
//	<target> max_x        lower is better: fig/anc must be <= target
//	<target> min_x        higher is better: fig/anc must be >= target
//
// Other benchmarks are not rows. Usage:
//
//	benchtable [-notes contrib/benchtable/notes.txt] [-md] bench.out
//
// It exits 1 when a row misses its target and has no note, when a row's
// metrics are malformed, or when a benchmark failed; 2 on a usage error.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/rbnode/rbnode/contrib/benchfmt"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	fs.SetOutput(stderr)
	notesPath := fs.String("notes", "contrib/benchtable/notes.txt", "file of `RowName: why missed and what it would take` lines (a missing file is no notes)")
	md := fs.Bool("md", false, "print a Markdown table (for docs/performance.md)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: benchtable [-notes FILE] [-md] [BENCH_OUTPUT]")
		return 2
	}
	in, err := benchfmt.Input(fs.Args(), stdin)
	if err != nil {
		fmt.Fprintf(stderr, "benchtable: error: %v\n", err)
		return 2
	}
	defer in.Close()
	notes := map[string]string{}
	if data, err := os.ReadFile(*notesPath); err == nil {
		notes, err = parseNotes(string(data))
		if err != nil {
			fmt.Fprintf(stderr, "benchtable: error: %s: %v\n", *notesPath, err)
			return 2
		}
	} else if !os.IsNotExist(err) {
		fmt.Fprintf(stderr, "benchtable: error: %v\n", err)
		return 2
	}
	res, err := benchfmt.Parse(in)
	if err != nil {
		fmt.Fprintf(stderr, "benchtable: error: read benchmark output: %v\n", err)
		return 2
	}
	rows := judge(res, notes)
	if *md {
		writeMarkdown(stdout, rows)
	} else {
		writeText(stdout, rows)
	}
	bad := 0
	for _, r := range rows {
		if r.Verdict == verdictMiss || r.Verdict == verdictBroken || r.Verdict == verdictFailed {
			bad++
		}
	}
	for _, name := range res.Failed {
		if !res.Has(name) {
			fmt.Fprintf(stderr, "benchtable: benchmark failed: %s\n", name)
			bad++
		}
	}
	if len(rows) == 0 && len(res.Failed) == 0 {
		fmt.Fprintln(stderr, "benchtable: no benchmark reported fig_/anc_/max_x|min_x metrics")
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "benchtable: %d row(s) missed a target without a note, failed, or reported malformed metrics\n", bad)
		return 1
	}
	return 0
}
