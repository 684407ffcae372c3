package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	ucli "github.com/urfave/cli/v2"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node"
	"github.com/rbnode/rbnode/node/store"
)

func statusCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "status",
		Usage:     "the verdict on a release (exit 0 consensus, 1 divergence, 3 pending), or one line per release",
		ArgsUsage: "[VERSION]",
		Flags: []ucli.Flag{
			quorumFlag(), projectFlag(),
			&ucli.StringSliceFlag{Name: "artifacts", Usage: "judge only artifacts whose name matches `GLOB` (repeatable)"},
			&ucli.StringSliceFlag{Name: "exclude", Usage: "leave out artifacts whose name matches `GLOB` (repeatable)"},
			&ucli.BoolFlag{Name: "wait", Usage: "wait until consensus or divergence (exit 0 or 1), or until --timeout (exit 3)"},
			&ucli.DurationFlag{Name: "timeout", Usage: "with --wait: how long to wait", Value: 30 * time.Minute},
			&ucli.IntFlag{Name: "limit", Usage: "without VERSION: only the N newest releases of each project"},
			wideFlag(), jsonFlag(),
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 1 {
				return usagef("status takes at most one VERSION")
			}
			if c.NArg() == 0 {
				for _, f := range []string{"artifacts", "exclude", "wait"} {
					if c.IsSet(f) {
						return usagef("--%s needs a VERSION", f)
					}
				}
				return withBackend(c, true, func(n backend) error { return releaseList(c, n) })
			}
			if c.Int("limit") != 0 {
				return usagef("--limit lists releases: give no VERSION")
			}
			if !c.Bool("wait") {
				return withBackend(c, true, func(n backend) error {
					r, err := judge(c, n)
					if err != nil {
						return err
					}
					return printVerdict(c, r)
				})
			}
			return waitForVerdict(c)
		},
	}
}

// judge computes the verdict on the command's VERSION, narrowed to the
// artifacts asked for.
func judge(c *ucli.Context, n backend) (*attest.Report, error) {
	r, err := n.Status(c.Context, c.String("project"), c.Args().First(), quorumArg(c))
	if err != nil {
		return nil, err
	}
	if err := r.Select(c.StringSlice("artifacts"), c.StringSlice("exclude")); err != nil {
		return nil, &usageError{err: err, hint: "patterns are globs like '*-linux-gnu.tar.gz'"}
	}
	return r, nil
}

// printVerdict prints the report and exits with its verdict's code; a
// quorum the trust set can never reach is a configuration error (exit 2),
// not "retry later".
func printVerdict(c *ucli.Context, r *attest.Report) error {
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, r); err != nil {
			return err
		}
	} else {
		printReport(c.App.Writer, r, c.Bool("wide"))
	}
	if r.Verdict == attest.Pending && r.Quorum > r.TrustedCount {
		return &exitError{code: ExitUsage, msg: fmt.Sprintf("error: quorum %d but only %d builder%s trusted\n"+
			"hint: trust the builders whose attestations count (rbnode trust add KEYFILE...), or lower --quorum", r.Quorum, r.TrustedCount, pluralVerb(r.TrustedCount))}
	}
	return exitWith(verdictCode(r.Verdict))
}

// waitPoll is how often status --wait asks again.
const waitPoll = time.Second

// waitForVerdict asks for the verdict until it is no longer pending or
// --timeout passes. Each round opens the store anew (or asks the daemon),
// so a daemon may start, and documents arrive, while it waits.
func waitForVerdict(c *ucli.Context) error {
	deadline := time.Now().Add(c.Duration("timeout"))
	var last *attest.Report
	said := ""
	for {
		err := withBackend(c, true, func(n backend) error {
			r, err := judge(c, n)
			last = r
			return err
		})
		switch {
		case errors.Is(err, node.ErrUnknownRelease), errors.Is(err, store.ErrLocked):
			// Not there yet, or a writer holds the store for a moment.
		case err != nil:
			return err
		case last.Verdict != attest.Pending || last.Quorum > last.TrustedCount:
			return printVerdict(c, last)
		case last.Request != nil && answerable(last.Request) < last.Quorum:
			// Every builder that could still attest the requested commit
			// would not make a quorum: waiting longer changes nothing.
			fmt.Fprintf(c.App.ErrWriter, "rbnode: no quorum of %d is possible for request %s: too many trusted builders failed it\n",
				last.Quorum, last.Request.Document[:12])
			return printVerdict(c, last)
		}
		if last != nil {
			if s := pendingLine(last); s != said {
				fmt.Fprintf(c.App.ErrWriter, "rbnode: waiting: %s\n", s)
				said = s
			}
		}
		if !time.Now().Before(deadline) {
			if last == nil {
				return err
			}
			fmt.Fprintf(c.App.ErrWriter, "rbnode: still pending after %s\n", c.Duration("timeout"))
			return printVerdict(c, last)
		}
		select {
		case <-c.Context.Done():
			return c.Context.Err()
		case <-time.After(min(waitPoll, time.Until(deadline))):
		}
	}
}

// answerable counts the trusted builders that have attested the requested
// commit or still may: those whose answer is not a build failure. The
// requester is among them only once it has answered (a release manager's
// node rarely builds).
func answerable(rr *attest.RequestReport) int {
	n := 0
	for _, a := range rr.Answers {
		if a.State != attest.AnswerFailed {
			n++
		}
	}
	return n
}

// pendingLine says how far a pending release is from its quorum.
func pendingLine(r *attest.Report) string {
	short := 0
	for _, a := range r.Artifacts {
		if a.Verdict == attest.Pending {
			short++
		}
	}
	line := fmt.Sprintf("%s %s: %d of %d artifacts lack a quorum of %d (%d of %d trusted builders attested)",
		r.Project, r.Version, short, len(r.Artifacts), r.Quorum, len(r.Builders), r.TrustedCount)
	if rr := r.Request; rr != nil {
		count := map[string]int{}
		for _, a := range rr.Answers {
			count[a.State]++
		}
		line += fmt.Sprintf("; request %s: %d attested, %d failed, %d silent", rr.Document[:12],
			count[attest.AnswerAttested], count[attest.AnswerFailed], count[attest.AnswerSilent])
		if n := count[attest.AnswerDifferentCommit]; n > 0 {
			line += fmt.Sprintf(", %d built another commit", n)
		}
	}
	return line
}

// releaseList prints every release, oldest version first within each
// project, with a summary line.
func releaseList(c *ucli.Context, n backend) error {
	list, err := n.Releases(c.Context, c.String("project"), quorumArg(c))
	if err != nil {
		return err
	}
	if list == nil {
		list = []node.ReleaseSummary{}
	}
	if limit := c.Int("limit"); limit > 0 {
		list = newest(list, limit)
	} else if limit < 0 {
		return usagef("--limit %d: want a positive number", limit)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, list)
	}
	printReleases(c.App.Writer, list)
	return nil
}

// newest keeps the limit newest releases of each project; the list comes
// sorted by project, then version.
func newest(list []node.ReleaseSummary, limit int) []node.ReleaseSummary {
	var out []node.ReleaseSummary
	for i := 0; i < len(list); {
		j := i
		for j < len(list) && list[j].Project == list[i].Project {
			j++
		}
		out = append(out, list[max(i, j-limit):j]...)
		i = j
	}
	if out == nil {
		out = []node.ReleaseSummary{}
	}
	return out
}

// quorumArg is the --quorum flag when given: the daemon applies its own
// configured quorum otherwise, and a local node its config.
func quorumArg(c *ucli.Context) int {
	if isSet(c, "quorum") {
		return c.Int("quorum")
	}
	return 0
}

func verdictCode(v attest.Verdict) int {
	switch v {
	case attest.Consensus:
		return ExitOK
	case attest.Divergence:
		return ExitNegative
	}
	return ExitInconclusive
}

func printReleases(out io.Writer, list []node.ReleaseSummary) {
	if len(list) == 0 {
		fmt.Fprintln(out, "no releases yet: import documents with `rbnode import PATH`")
		return
	}
	// Laid out as text/tabwriter would (columns two spaces apart), but in
	// two passes and one buffered write, with no string made per cell: a
	// list of ten thousand releases through tabwriter took longer than
	// the rest of the command.
	header := [4]string{"PROJECT", "VERSION", "VERDICT", "BUILDERS"}
	var width [4]int
	for i, h := range header {
		width[i] = len(h)
	}
	count := map[attest.Verdict]int{}
	for _, s := range list {
		width[0] = max(width[0], min(utf8.RuneCountInString(s.Project), 16))
		width[1] = max(width[1], min(utf8.RuneCountInString(s.Version), 16))
		width[2] = max(width[2], len(s.Verdict))
		width[3] = max(width[3], len(strconv.Itoa(s.BuilderCount)))
		count[s.Verdict]++
	}
	w := bufio.NewWriter(out)
	var b []byte
	cell := func(i int, v string) {
		b = append(b, v...)
		for range width[i] - utf8.RuneCountInString(v) + 2 {
			b = append(b, ' ')
		}
	}
	for i, h := range header {
		cell(i, h)
	}
	b = append(b, "ARTIFACTS\n"...)
	for _, s := range list {
		cell(0, truncate(s.Project, 16))
		cell(1, truncate(s.Version, 16))
		cell(2, string(s.Verdict))
		n := len(b)
		b = strconv.AppendInt(b, int64(s.BuilderCount), 10)
		for range width[3] - (len(b) - n) + 2 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, int64(s.Agreed), 10)
		b = append(b, '/')
		b = strconv.AppendInt(b, int64(s.Artifacts), 10)
		b = append(b, " agree"...)
		if s.Divergent > 0 {
			b = append(b, ", "...)
			b = strconv.AppendInt(b, int64(s.Divergent), 10)
			b = append(b, " diverge"...)
		}
		b = append(b, '\n')
		if len(b) > 32<<10 {
			w.Write(b)
			b = b[:0]
		}
	}
	w.Write(b)
	fmt.Fprintf(w, "%d release%s: %d consensus, %d divergence, %d pending\n", len(list), plural(len(list)),
		count[attest.Consensus], count[attest.Divergence], count[attest.Pending])
	w.Flush()
}

// tableWidth is the width text output keeps to unless --wide.
const tableWidth = 80

// printReport draws the release in the style of the guix.sigs pull-request
// summary: artifacts by builders, one mark for agreement, a letter per
// divergent hash, '-' for a builder that did not attest the artifact.
// Unless wide, it fits tableWidth columns: long names are shortened in the
// middle, hashes to their first 16 digits, and a matrix with many builders
// is printed in blocks of columns.
func printReport(out io.Writer, r *attest.Report, wide bool) {
	w := out
	if !wide {
		lw := &lineLimit{w: out, width: tableWidth}
		defer lw.flush()
		w = lw
	}
	hash := func(h string) string {
		if wide || len(h) <= 16 {
			return h
		}
		return h[:16] + "…"
	}
	fmt.Fprintf(w, "%s %s: %s (quorum %d, %d builder%s attested, %d trusted)\n", r.Project, r.Version, strings.ToUpper(string(r.Verdict)),
		r.Quorum, len(r.Builders), plural(len(r.Builders)), r.TrustedCount)
	if r.Request != nil {
		printRequestReport(w, r.Request, wide)
	}
	if len(r.Excluded) > 0 {
		fmt.Fprintf(w, "judged on %d artifact%s; left out (--artifacts, --exclude): %d\n", len(r.Artifacts), plural(len(r.Artifacts)), len(r.Excluded))
	}
	if len(r.Builders) > 0 {
		fmt.Fprintln(w, "\nbuilders:")
		for i, b := range r.Builders {
			fmt.Fprintf(w, "  %-3s %-24s %s\n", attest.ColumnLabel(i), middle(b.Name, 24, wide), b.Fingerprint)
		}
	}
	if len(r.Artifacts) > 0 {
		printMatrix(w, r, wide)
		fmt.Fprintln(w, "\n✓ agrees with the most common hash   A, B, ... other hashes (below)")
		fmt.Fprintln(w, "- not attested   ! equivocated")
	}
	for _, a := range r.Artifacts {
		if a.Verdict != attest.Divergence {
			continue
		}
		fmt.Fprintf(w, "\ndivergent: %s\n", a.Name)
		for gi, g := range a.Hashes {
			var names []string
			for _, b := range g.Builders {
				names = append(names, b.Name)
			}
			fmt.Fprintf(w, "  %s %s  %s\n", a.GroupMark(gi), hash(g.SHA256), strings.Join(names, ", "))
		}
		for _, f := range a.Differs {
			fmt.Fprintf(w, "  differs: %s:", f)
			for gi, g := range a.Hashes {
				fmt.Fprintf(w, " %s=%s", a.GroupMark(gi), strings.Join(g.Environment[f], "|"))
			}
			fmt.Fprintln(w)
		}
	}
	if len(r.Commits) > 1 {
		fmt.Fprintln(w, "\nsource disagreement: builders built different commits")
		for _, g := range r.Commits {
			var names []string
			for _, b := range g.Builders {
				names = append(names, b.Name)
			}
			fmt.Fprintf(w, "  %s  %s\n", g.GitCommit, strings.Join(names, ", "))
		}
	}
	if len(r.Equivocations) > 0 {
		fmt.Fprintf(w, "\nequivocations (%d): a trusted key signed different hashes for one\nartifact; its claims there are not counted\n", len(r.Equivocations))
		for _, e := range r.Equivocations {
			fmt.Fprintf(w, "  %s %s on %s:\n", e.Name, e.Fingerprint, e.Artifact)
			for _, d := range e.Documents {
				fmt.Fprintf(w, "    document %s (%s) says %s\n", d.Document[:12], d.File, hash(d.SHA256))
			}
		}
	}
	if len(r.Untrusted) > 0 {
		fmt.Fprintf(w, "\nuntrusted (%d, not counted):\n", len(r.Untrusted))
		for _, d := range r.Untrusted {
			fmt.Fprintf(w, "  %s/%s: key %s\n", d.Signer, d.File, shortFP(d.Fingerprint, wide))
		}
	}
	if len(r.Rejected) > 0 {
		fmt.Fprintf(w, "\nrejected (%d, not counted):\n", len(r.Rejected))
		for _, d := range r.Rejected {
			fmt.Fprintf(w, "  %s/%s: %s: %s\n", d.Signer, d.File, d.Reason, d.Detail)
		}
	}
	if r.Verdict == attest.Pending {
		fmt.Fprintf(w, "\npending: %s\n", strings.TrimPrefix(pendingLine(r), r.Project+" "+r.Version+": "))
	}
}

// printMatrix draws the artifact × builder matrix; unless wide, in blocks
// of as many builder columns as fit.
func printMatrix(w io.Writer, r *attest.Report, wide bool) {
	width := 0
	for _, a := range r.Artifacts {
		width = max(width, utf8.RuneCountInString(a.Name))
	}
	cw := len(attest.ColumnLabel(len(r.Builders)-1)) + 1
	perBlock := max(len(r.Builders), 1)
	name := func(s string) string { return s }
	header := "artifact"
	if !wide && width > 36 {
		// The names usually share a long prefix (the project and
		// version): say it once, show what differs.
		if p := sharedPrefix(r.Artifacts); len(p) > 3 {
			header = "artifact (" + p + "…)"
			name = func(s string) string { return "…" + strings.TrimPrefix(s, p) }
			width = max(width-len(p)+1, len(header))
		}
		width = min(width, 36)
		const verdictWidth = len(" divergence")
		perBlock = max((tableWidth-width-1-verdictWidth)/cw, 1)
	}
	for from := 0; from < len(r.Builders) || from == 0; from += perBlock {
		to := min(from+perBlock, len(r.Builders))
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%s ", padRight(middle(header, width, false), width))
		for i := from; i < to; i++ {
			fmt.Fprintf(w, "%-*s", cw, attest.ColumnLabel(i))
		}
		fmt.Fprintln(w, " verdict")
		for _, a := range r.Artifacts {
			marks := r.Marks(a)
			fmt.Fprintf(w, "%s ", padRight(middle(name(a.Name), width, wide), width))
			for _, m := range marks[from:to] {
				fmt.Fprintf(w, "%-*s", cw, m)
			}
			fmt.Fprintf(w, " %s\n", a.Verdict)
		}
		if to >= len(r.Builders) {
			break
		}
	}
}

// sharedPrefix is the longest prefix all artifact names share that ends,
// in each name, before a '-', '_', '.' or '/' (bitcoin-26.0rc1 of
// bitcoin-26.0rc1-win64.zip and bitcoin-26.0rc1.tar.gz).
func sharedPrefix(arts []attest.ArtifactReport) string {
	p := arts[0].Name
	for _, a := range arts[1:] {
		for !strings.HasPrefix(a.Name, p) {
			p = p[:len(p)-1]
		}
	}
	for ; p != ""; p = p[:len(p)-1] {
		if !slices.ContainsFunc(arts, func(a attest.ArtifactReport) bool {
			return len(a.Name) == len(p) || !strings.ContainsRune("-_./", rune(a.Name[len(p)]))
		}) {
			return p
		}
	}
	return ""
}

// middle shortens s to n runes by cutting out its middle ("…"), where
// names that share a prefix and a suffix differ least; wide keeps it whole.
func middle(s string, n int, wide bool) string {
	rs := []rune(s)
	if wide || len(rs) <= n {
		return s
	}
	head := (n - 1) / 2
	return string(rs[:head]) + "…" + string(rs[len(rs)-(n-1-head):])
}

// padRight pads s with spaces to n runes.
func padRight(s string, n int) string {
	return s + strings.Repeat(" ", max(n-utf8.RuneCountInString(s), 0))
}

// lineLimit writes lines of at most width runes, marking a cut with "…":
// the last guard that keeps text tables within 80 columns.
type lineLimit struct {
	w     io.Writer
	width int
	buf   []byte
}

func (l *lineLimit) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if _, err := io.WriteString(l.w, truncate(string(l.buf[:i]), l.width)+"\n"); err != nil {
			return 0, err
		}
		l.buf = l.buf[i+1:]
	}
}

func (l *lineLimit) flush() {
	if len(l.buf) > 0 {
		io.WriteString(l.w, truncate(string(l.buf), l.width))
		l.buf = nil
	}
}

// pluralVerb is "is" or "are" after a count.
func pluralVerb(n int) string {
	if n == 1 {
		return " is"
	}
	return "s are"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// verifyCode is verify's exit code over all files: a definite negative
// (a mismatch, a divergent artifact) first, then a file that could not be
// read, then one without a consensus yet.
func verifyCode(res []node.FileResult) int {
	code := ExitOK
	rank := map[int]int{ExitOK: 0, ExitInconclusive: 1, ExitUsage: 2, ExitNegative: 3}
	for _, r := range res {
		c := map[node.FileOutcome]int{node.FileMismatch: ExitNegative, node.FileDivergent: ExitNegative,
			node.FileUnreadable: ExitUsage, node.FileNoConsensus: ExitInconclusive}[r.Outcome]
		if rank[c] > rank[code] {
			code = c
		}
	}
	return code
}

func verifyCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "verify",
		Usage:     "check downloaded files against the builders' consensus (exit 0 all match, 1 a mismatch, 3 no consensus yet)",
		ArgsUsage: "FILE...",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "version", Usage: "only consider this release version"},
			quorumFlag(), projectFlag(), jsonFlag(),
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() == 0 {
				return usagef("verify needs at least one FILE")
			}
			files, err := node.HashFiles(c.Args().Slice())
			if err != nil {
				return err
			}
			return withBackend(c, true, func(n backend) error {
				res, err := n.VerifyHashes(c.Context, files, c.String("project"), c.String("version"), quorumArg(c))
				if err != nil {
					return err
				}
				code := verifyCode(res)
				if c.Bool("json") {
					if err := printJSON(c.App.Writer, res); err != nil {
						return err
					}
					res = slices.DeleteFunc(res, func(r node.FileResult) bool { return r.Outcome != node.FileUnreadable })
				}
				for _, r := range res {
					if c.Bool("json") {
						break
					}
					word := map[node.FileOutcome]string{node.FileMatch: "OK", node.FileMismatch: "MISMATCH", node.FileNoConsensus: "UNKNOWN",
						node.FileDivergent: "DIVERGES", node.FileUnreadable: "ERROR"}[r.Outcome]
					if r.Outcome == node.FileUnreadable {
						fmt.Fprintf(c.App.Writer, "%-8s %s\n         %s\n", word, r.Path, r.Detail)
						continue
					}
					fmt.Fprintf(c.App.Writer, "%-8s %s\n         sha256 %s\n         %s\n", word, r.Path, r.SHA256, r.Detail)
					switch {
					case r.Outcome == node.FileMismatch && len(r.ExpectedSet) > 1:
						fmt.Fprintf(c.App.Writer, "         consensus sha256 one of %s\n", strings.Join(r.ExpectedSet, ", "))
					case r.Outcome == node.FileMismatch:
						fmt.Fprintf(c.App.Writer, "         consensus sha256 %s\n", r.Expected)
					}
				}
				if code == ExitUsage {
					var msgs []string
					for _, r := range res {
						if r.Outcome == node.FileUnreadable {
							msgs = append(msgs, "error: "+r.Detail)
						}
					}
					return &exitError{code: code, msg: strings.Join(msgs, "\nrbnode: ")}
				}
				return exitWith(code)
			})
		},
	}
}
