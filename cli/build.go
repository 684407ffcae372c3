package cli

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/builder"
	"github.com/rbnode/rbnode/node"
)

func buildCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "build",
		Usage:     "build a release through the Guix pipeline (or --pipeline), check it, sign the attestation, store and publish it",
		ArgsUsage: "VERSION",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "repo", Usage: "the Cuprate checkout (never modified: the build uses a separate worktree)", Value: "."},
			&ucli.StringFlag{Name: "commit", Usage: "build this commit instead of the release tag"},
			&ucli.StringFlag{Name: "tag-pattern", Usage: "how release tags are named", Value: builder.DefaultTagPattern},
			&ucli.StringFlag{Name: "pipeline", Usage: "run `COMMAND` (sh -c, with OUT_DIR, VERSION, COMMIT) instead of the Guix scripts, for another project"},
			&ucli.StringFlag{Name: "project", Usage: "with --pipeline: the project name the artifacts must carry"},
			&ucli.StringFlag{Name: "builder-id", Usage: "builder_id to attest (default: the builder key's name)"},
			&ucli.StringFlag{Name: "sigs", Usage: "where to write the signed document (default HOME/sigs)"},
			jsonFlag,
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usagef("build takes one VERSION")
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			repo, _ := filepath.Abs(c.String("repo"))
			prog := newBuildProgress(c.App.ErrWriter)
			res, err := node.RunBuild(c.Context, cfg.Home, node.BuildRequest{
				Repo: repo, Version: c.Args().First(), Commit: c.String("commit"),
				TagPattern: c.String("tag-pattern"), Pipeline: c.String("pipeline"), Project: c.String("project"),
				BuilderID: c.String("builder-id"), Dest: c.String("sigs"), Progress: prog.update,
			}, time.Now)
			prog.done()
			return finishSigned(c, res, err)
		},
	}
}

// finishSigned records a build (also a failed one), then stores the signed
// document and, when a daemon runs, publishes it.
func finishSigned(c *ucli.Context, res *builder.Result, buildErr error) error {
	return withBackend(c, false, func(n backend) error {
		if res != nil && !res.Record.StartedAt.IsZero() {
			if err := n.AddBuild(c.Context, &res.Record); err != nil {
				return err
			}
		}
		if buildErr != nil {
			if res != nil && !res.Record.StartedAt.IsZero() && !c.Bool("json") {
				printBuild(c.App.Writer, &res.Record)
			}
			return buildErr
		}
		return storeSigned(c, n, res.Signed, &res.Record)
	})
}

func storeSigned(c *ucli.Context, n backend, s *builder.Signed, rec *builder.Record) error {
	sum, err := n.Import(c.Context, node.ImportRequest{Path: s.Path, Version: s.Document.Version, Signer: s.Document.Signer})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, map[string]any{"record": rec, "document": s.Path, "signature": s.SigPath, "import": sum})
	}
	if rec != nil {
		printBuild(c.App.Writer, rec)
	}
	fmt.Fprintf(c.App.Writer, "signed: %s\n        %s\n", s.Path, s.SigPath)
	if _, ok := n.(local); ok {
		fmt.Fprintln(c.App.Writer, "stored; no daemon is running, so it is not gossiped yet (start rbnode daemon)")
	} else {
		fmt.Fprintln(c.App.Writer, "stored and published through the daemon")
	}
	return nil
}

func printBuild(w io.Writer, r *builder.Record) {
	fmt.Fprintf(w, "build %s (%s) %s in %s\n", r.Version, short(r.Commit), r.Status, r.Duration().Round(time.Second))
	for _, s := range r.Stages {
		fmt.Fprintf(w, "  %-16s exit %-3d %8s  %s\n", s.Stage, s.ExitCode, s.Duration().Round(time.Millisecond), s.Log)
	}
	for _, a := range r.Artifacts {
		fmt.Fprintf(w, "  %s  %s\n", a.SHA256, a.Name)
	}
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

func attestCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "attest",
		Usage:     "check and sign a pipeline output directory built by hand (what guix-attest does, with rbnode's key), then store and publish it",
		ArgsUsage: "OUTDIR",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "version", Usage: "the release version", Required: true},
			&ucli.StringFlag{Name: "commit", Usage: "the commit build-metadata.json must name"},
			&ucli.BoolFlag{Name: "manifest", Usage: "OUTDIR is a --pipeline output: sign its SHA256SUMS, guix.sigs style"},
			&ucli.StringFlag{Name: "project", Usage: "with --manifest: the project name the artifacts must carry"},
			&ucli.StringFlag{Name: "builder-id", Usage: "builder_id to attest (default: the builder key's name)"},
			&ucli.StringFlag{Name: "sigs", Usage: "where to write the signed document (default: the top of OUTDIR's git checkout, as guix-attest does; else HOME/sigs)"},
			jsonFlag,
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usagef("attest takes one OUTDIR")
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			sk, err := node.LoadBuilderKey(cfg.Home)
			if err != nil {
				return err
			}
			out, _ := filepath.Abs(c.Args().First())
			id := c.String("builder-id")
			if id == "" {
				id = sk.Public().Name()
			}
			dest := c.String("sigs")
			if dest == "" {
				if top, err := exec.Command("git", "-C", out, "rev-parse", "--show-toplevel").Output(); err == nil {
					dest = strings.TrimSpace(string(top))
				} else {
					dest = filepath.Join(cfg.Home, node.SigsDir)
				}
			}
			kind := attest.KindAttestation
			if c.Bool("manifest") {
				kind = attest.KindManifest
			}
			signed, err := builder.Attest(c.Context, out, builder.AttestRequest{
				Kind: kind, Version: c.String("version"), Commit: c.String("commit"), Project: c.String("project"),
				Sign: builder.Signing{Signer: sk, BuilderID: id, Dest: dest}, Now: time.Now(),
			})
			if err != nil {
				return err
			}
			return withBackend(c, false, func(n backend) error { return storeSigned(c, n, signed, nil) })
		},
	}
}

func buildsCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "builds",
		Usage: "list this node's builds: stages, durations, exit codes, logs, hashes",
		Flags: []ucli.Flag{jsonFlag},
		Action: func(c *ucli.Context) error {
			return withBackend(c, true, func(n backend) error {
				list, err := n.Builds(c.Context)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, list)
				}
				if len(list) == 0 {
					fmt.Fprintln(c.App.Writer, "no builds yet: rbnode build VERSION --repo DIR")
					return nil
				}
				tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "STARTED\tVERSION\tCOMMIT\tSTATUS\tDURATION\tARTIFACT\tERROR")
				for _, r := range list {
					art := "-"
					for _, a := range r.Artifacts {
						if !strings.Contains(a.Name, "-src.") {
							art = a.SHA256[:16] + "  " + a.Name
						}
					}
					msg, _, _ := strings.Cut(r.Error, "\n")
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.StartedAt.Local().Format("2006-01-02 15:04"), r.Version,
						short(r.Commit), r.Status, r.Duration().Round(time.Second), art, msg)
				}
				return tw.Flush()
			})
		},
	}
}

// buildProgress draws the live build line: stage, elapsed time and the
// stage's last log line (a plain line per stage when not on a terminal).
type buildProgress struct {
	w     io.Writer
	tty   bool
	stage builder.Stage
	last  time.Time
	drawn bool
}

func newBuildProgress(w io.Writer) *buildProgress { return &buildProgress{w: w, tty: isTerminal(w)} }

func (p *buildProgress) update(pr builder.Progress) {
	if !p.tty {
		if pr.Stage != p.stage {
			p.stage = pr.Stage
			fmt.Fprintf(p.w, "build: %s\n", pr.Stage)
		}
		return
	}
	if time.Since(p.last) < 100*time.Millisecond && pr.Stage == p.stage {
		return
	}
	p.stage, p.last = pr.Stage, time.Now()
	line := fmt.Sprintf("%s %s  %s", pr.Stage, pr.Elapsed.Round(time.Second), pr.LastLine)
	if len(line) > 100 {
		line = line[:100]
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.drawn = true
}

func (p *buildProgress) done() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
