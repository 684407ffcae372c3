package cli

import (
	"fmt"
	"io"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node"
)

func requestCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "request",
		Usage:     "ask builders to build a commit as VERSION before any tag exists (a signed build request)",
		ArgsUsage: "VERSION",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "commit", Usage: "the commit to build, 40 hex digits", Required: true},
			&ucli.StringFlag{Name: "project", Usage: "the project (default: the configured project, else auto_build.project, else cuprated)", EnvVars: []string{"RBNODE_PROJECT"}},
			&ucli.StringFlag{Name: "note", Usage: "a line for the builders and status (at most 1024 bytes)"},
			jsonFlag(),
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usagef("request takes one VERSION")
			}
			return withBackend(c, false, func(n backend) error {
				sum, err := n.Request(c.Context, node.RequestOptions{
					Project: c.String("project"), Version: c.Args().First(), Commit: c.String("commit"), Note: c.String("note"),
				})
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, sum)
				}
				printRequest(c.App.Writer, sum)
				return nil
			})
		},
	}
}

func printRequest(w io.Writer, s *node.RequestSummary) {
	fmt.Fprintf(w, "requested %s %s at commit %s\n", s.Project, s.Version, s.GitCommit)
	fmt.Fprintf(w, "document %s, signed by %s (%s)\n", s.Document, s.Requester, s.Fingerprint)
	if len(s.Supersedes) > 0 {
		fmt.Fprintf(w, "supersedes %d earlier request%s\n", len(s.Supersedes), plural(len(s.Supersedes)))
	}
	if s.Published > 0 {
		fmt.Fprintln(w, "published through the daemon")
	} else {
		fmt.Fprintln(w, "stored; no daemon runs, so builders get it when `rbnode daemon` starts")
	}
	fmt.Fprintf(w, "follow it: rbnode status %s --project %s --wait\n", s.Version, s.Project)
}

// printRequestReport shows the request a release is judged against and
// each trusted builder's answer.
func printRequestReport(w io.Writer, rr *attest.RequestReport, wide bool) {
	fmt.Fprintf(w, "\nrequest %s: build %s\n", rr.Document[:12], rr.GitCommit)
	fmt.Fprintf(w, "  by %s (%s) at %s\n", rr.Requester.Name, shortFP(rr.Requester.Fingerprint, wide), rr.RequestedAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	if rr.Note != "" {
		fmt.Fprintf(w, "  note: %s\n", rr.Note)
	}
	if n := len(rr.Superseded); n > 0 {
		fmt.Fprintf(w, "  supersedes %d earlier request%s\n", n, plural(n))
	}
	if len(rr.Answers) > 0 {
		fmt.Fprintln(w, "answers:")
	}
	for _, a := range rr.Answers {
		state := a.State
		switch a.State {
		case attest.AnswerFailed:
			f := a.Failure
			state = fmt.Sprintf("failed at %s (exit %d)", f.Stage, f.ExitCode)
		case attest.AnswerDifferentCommit:
			state = "attested a different commit (not counted)"
		case attest.AnswerSilent:
			state = "silent so far"
		}
		fmt.Fprintf(w, "  %-24s %s\n", middle(a.Name, 24, wide), state)
		if a.Failure != nil {
			if a.Failure.Error != "" {
				fmt.Fprintf(w, "    %s\n", a.Failure.Error)
			}
			for _, l := range a.Failure.LogTail[max(len(a.Failure.LogTail)-5, 0):] {
				fmt.Fprintf(w, "    | %s\n", l)
			}
		}
	}
	if len(rr.DifferentCommit) > 0 {
		fmt.Fprintf(w, "different commit (%d, not counted while this request stands):\n", len(rr.DifferentCommit))
		for _, d := range rr.DifferentCommit {
			fmt.Fprintf(w, "  %s/%s: %s\n", d.Signer, d.File, strings.TrimSuffix(d.Detail, "; the request is for "+rr.GitCommit))
		}
	}
}

// shortFP is a fingerprint as the text output shows it: the long key id
// unless wide.
func shortFP(fp string, wide bool) string {
	if wide {
		return fp
	}
	return fp[max(len(fp)-16, 0):]
}
