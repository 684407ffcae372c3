package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node"
)

func statusCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "status",
		Usage:     "the verdict on a release (exit 0 consensus, 1 divergence, 3 pending), or one line per release",
		ArgsUsage: "[VERSION]",
		Flags:     []ucli.Flag{quorumFlag, projectFlag, jsonFlag},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 1 {
				return usagef("status takes at most one VERSION")
			}
			return withBackend(c, true, func(n backend) error {
				if c.NArg() == 0 {
					list, err := n.Releases(c.Context, c.String("project"), quorumArg(c))
					if err != nil {
						return err
					}
					if list == nil {
						list = []node.ReleaseSummary{}
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, list)
					}
					printReleases(c.App.Writer, list)
					return nil
				}
				r, err := n.Status(c.Context, c.String("project"), c.Args().First(), quorumArg(c))
				if err != nil {
					return err
				}
				if c.Bool("json") {
					if err := printJSON(c.App.Writer, r); err != nil {
						return err
					}
				} else {
					printReport(c.App.Writer, r)
				}
				return exitWith(verdictCode(r.Verdict))
			})
		},
	}
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

func printReleases(w io.Writer, list []node.ReleaseSummary) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no releases yet: import documents with `rbnode import PATH`")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tVERSION\tVERDICT\tBUILDERS\tARTIFACTS")
	for _, s := range list {
		arts := fmt.Sprintf("%d/%d agree", s.Agreed, s.Artifacts)
		if s.Divergent > 0 {
			arts += fmt.Sprintf(", %d diverge", s.Divergent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.Project, s.Version, s.Verdict, s.Builders, arts)
	}
	tw.Flush()
}

// printReport draws the release in the style of the guix.sigs pull-request
// summary: artifacts by builders, one mark for agreement, a letter per
// divergent hash, '-' for a builder that did not attest the artifact.
func printReport(w io.Writer, r *attest.Report) {
	fmt.Fprintf(w, "%s %s: %s (quorum %d, %d trusted builder%s)\n", r.Project, r.Version, strings.ToUpper(string(r.Verdict)), r.Quorum, len(r.Builders), plural(len(r.Builders)))
	if len(r.Builders) > 0 {
		fmt.Fprintln(w, "\nbuilders:")
		for i, b := range r.Builders {
			fmt.Fprintf(w, "  %-3s %-24s %s\n", attest.ColumnLabel(i), b.Name, b.Fingerprint)
		}
	}
	if len(r.Artifacts) > 0 {
		width := 0
		for _, a := range r.Artifacts {
			width = max(width, len(a.Name))
		}
		cw := len(attest.ColumnLabel(len(r.Builders)-1)) + 1
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%-*s ", width, "artifact")
		for i := range r.Builders {
			fmt.Fprintf(w, "%-*s", cw, attest.ColumnLabel(i))
		}
		fmt.Fprintln(w, " verdict")
		for _, a := range r.Artifacts {
			marks := r.Marks(a)
			fmt.Fprintf(w, "%-*s ", width, a.Name)
			for _, m := range marks {
				fmt.Fprintf(w, "%-*s", cw, m)
			}
			fmt.Fprintf(w, " %s\n", a.Verdict)
		}
		fmt.Fprintln(w, "\n✓ agrees with the most common hash   A, B, ... other hashes (below)   - not attested   ! equivocated")
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
			fmt.Fprintf(w, "  %s %s  %s\n", a.GroupMark(gi), g.SHA256, strings.Join(names, ", "))
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
		fmt.Fprintf(w, "\nequivocations (%d): a trusted key signed different hashes for one artifact; its claims there are not counted\n", len(r.Equivocations))
		for _, e := range r.Equivocations {
			fmt.Fprintf(w, "  %s %s on %s:\n", e.Name, e.Fingerprint, e.Artifact)
			for _, d := range e.Documents {
				fmt.Fprintf(w, "    document %s (%s) says %s\n", d.Document[:12], d.File, d.SHA256)
			}
		}
	}
	if len(r.Untrusted) > 0 {
		fmt.Fprintf(w, "\nuntrusted (%d, not counted):\n", len(r.Untrusted))
		for _, d := range r.Untrusted {
			fmt.Fprintf(w, "  %s/%s: key %s\n", d.Signer, d.File, d.Fingerprint)
		}
	}
	if len(r.Rejected) > 0 {
		fmt.Fprintf(w, "\nrejected (%d, not counted):\n", len(r.Rejected))
		for _, d := range r.Rejected {
			fmt.Fprintf(w, "  %s/%s: %s: %s\n", d.Signer, d.File, d.Reason, d.Detail)
		}
	}
	if r.Verdict == attest.Pending {
		short := 0
		for _, a := range r.Artifacts {
			if a.Verdict == attest.Pending {
				short++
			}
		}
		fmt.Fprintf(w, "\npending: %d of %d artifacts lack a quorum of %d trusted builders\n", short, len(r.Artifacts), r.Quorum)
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func verifyCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "verify",
		Usage:     "check downloaded files against the builders' consensus (exit 0 all match, 1 a mismatch, 3 no consensus yet)",
		ArgsUsage: "FILE...",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "version", Usage: "only consider this release version"},
			quorumFlag, projectFlag, jsonFlag,
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
					if errors.Is(err, node.ErrUnknownRelease) {
						return exitWith(ExitInconclusive)
					}
					return err
				}
				code := ExitOK
				for _, r := range res {
					switch r.Outcome {
					case node.FileMismatch:
						code = ExitNegative
					case node.FileNoConsensus:
						if code == ExitOK {
							code = ExitInconclusive
						}
					}
				}
				if c.Bool("json") {
					if err := printJSON(c.App.Writer, res); err != nil {
						return err
					}
					return exitWith(code)
				}
				for _, r := range res {
					word := map[node.FileOutcome]string{node.FileMatch: "OK", node.FileMismatch: "MISMATCH", node.FileNoConsensus: "UNKNOWN"}[r.Outcome]
					fmt.Fprintf(c.App.Writer, "%-8s %s\n         sha256 %s\n         %s\n", word, r.Path, r.SHA256, r.Detail)
					if r.Outcome == node.FileMismatch {
						fmt.Fprintf(c.App.Writer, "         consensus sha256 %s\n", r.Expected)
					}
				}
				return exitWith(code)
			})
		},
	}
}
