package cli

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
			&ucli.StringFlag{Name: "repo", Usage: "the Cuprate checkout (only read: the build clones it)", Value: "."},
			&ucli.StringFlag{Name: "commit", Usage: "build this commit instead of the release tag"},
			&ucli.StringFlag{Name: "tag-pattern", Usage: "how release tags are named", Value: builder.DefaultTagPattern},
			&ucli.StringFlag{Name: "pipeline", Usage: "run `COMMAND` (sh -c, with OUT_DIR, VERSION, COMMIT) instead of the Guix scripts, for another project"},
			&ucli.StringFlag{Name: "project", Usage: "with --pipeline: the project name the artifacts must carry"},
			&ucli.StringFlag{Name: "builder-id", Usage: "builder_id to attest (default: the builder key's name)"},
			&ucli.StringFlag{Name: "sigs", Usage: "where to write the signed document (default HOME/sigs)"},
			&ucli.DurationFlag{Name: "heartbeat", Usage: "without a terminal, say every `INTERVAL` that the build still runs (stage, time, last line)", Value: node.DefaultHeartbeat},
			jsonFlag(),
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
			req := node.BuildRequest{
				Repo: repo, Version: c.Args().First(), Commit: c.String("commit"),
				TagPattern: c.String("tag-pattern"), Pipeline: c.String("pipeline"), Project: c.String("project"),
				BuilderID: c.String("builder-id"), Dest: c.String("sigs"), Progress: prog.update,
			}
			if !prog.tty && c.Duration("heartbeat") > 0 {
				req.Heartbeat, req.HeartbeatEvery = prog.heartbeat, c.Duration("heartbeat")
			}
			res, err := node.RunBuild(c.Context, cfg.Home, req, time.Now)
			prog.done()
			return finishSigned(c, res, err)
		},
	}
}

// finishSigned records a build (also a failed one), then stores the signed
// document and, when a daemon runs, publishes it.
func finishSigned(c *ucli.Context, res *builder.Result, buildErr error) error {
	if buildErr != nil && !node.Recordable(res, buildErr) {
		return buildErr // a wrong call is no build
	}
	return withBackend(c, false, func(n backend) error {
		if err := n.AddBuild(c.Context, &res.Record); err != nil {
			return err
		}
		if buildErr != nil {
			if !c.Bool("json") {
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
	fmt.Fprintf(c.App.Writer, "signed: %s\n        %s\n", builder.Printable(s.Path), builder.Printable(s.SigPath))
	if _, ok := n.(local); ok {
		fmt.Fprintln(c.App.Writer, "stored; no daemon is running, so it is not gossiped yet (start rbnode daemon)")
	} else {
		fmt.Fprintln(c.App.Writer, "stored and published through the daemon")
	}
	return nil
}

// printBuild prints a build's summary: one line per stage (the commands
// of a stage together: their time summed, the last one's exit code),
// the artifacts and, after a failure, where its evidence is kept.
func printBuild(w io.Writer, r *builder.Record) {
	fmt.Fprintf(w, "build %s (%s) %s in %s\n", r.Version, short(r.Commit), r.Status, r.Duration().Round(time.Second))
	for i := 0; i < len(r.Stages); {
		s := r.Stages[i]
		var d time.Duration
		for ; i < len(r.Stages) && r.Stages[i].Stage == s.Stage; i++ {
			d += r.Stages[i].Duration()
			s = r.Stages[i]
		}
		fmt.Fprintf(w, "  %-16s exit %-3d %8s  %s\n", s.Stage, s.ExitCode, d.Round(time.Millisecond), builder.Printable(s.Log))
	}
	for _, a := range r.Artifacts {
		fmt.Fprintf(w, "  %s  %s\n", a.SHA256, builder.Printable(a.Name))
	}
	if r.Evidence != "" {
		fmt.Fprintf(w, "  kept for inspection: %s\n", builder.Printable(r.Evidence))
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
			jsonFlag(),
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
		Flags: []ucli.Flag{
			wideFlag(), jsonFlag(),
			&ucli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "follow the running build: its stage and the tail of its log, until it ends"},
		},
		Action: func(c *ucli.Context) error {
			if c.Bool("follow") {
				return followBuild(c)
			}
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
				wide := c.Bool("wide")
				var out io.Writer = c.App.Writer
				if !wide {
					lw := &lineLimit{w: c.App.Writer, width: tableWidth}
					defer lw.flush()
					out = lw
				}
				tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				if wide {
					fmt.Fprintln(tw, "STARTED\tVERSION\tCOMMIT\tSTATUS\tDURATION\tARTIFACT\tERROR\tKEPT")
				} else {
					fmt.Fprintln(tw, "STARTED\tVERSION\tCOMMIT\tSTATUS\tTOOK\tARTIFACT OR ERROR")
				}
				for _, r := range list {
					art, sum := "-", ""
					for _, a := range r.Artifacts {
						if !strings.Contains(a.Name, "-src.") {
							art, sum = a.SHA256[:16]+"  "+builder.Printable(a.Name), a.SHA256[:12]
						}
					}
					msg, _, _ := strings.Cut(r.Error, "\n")
					if msg == "" {
						msg = "-"
					}
					started := r.StartedAt.Local().Format("2006-01-02 15:04 MST")
					if wide {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", started, builder.Printable(r.Version),
							short(r.Commit), r.Status, r.Duration().Round(time.Second), art, builder.Printable(msg), kept(r.Evidence))
						continue
					}
					note := sum
					if r.Error != "" {
						note = builder.Printable(msg)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", started, truncate(builder.Printable(r.Version), 12),
						short(r.Commit), r.Status, r.Duration().Round(time.Second), note)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if !wide {
					fmt.Fprintln(out, "(times in your time zone; --wide for artifacts and errors in full)")
					// Paths are never shortened: they are to be copied.
					for _, r := range list {
						if r.Evidence != "" {
							fmt.Fprintf(c.App.Writer, "kept from the failed build of %s at %s: %s\n", builder.Printable(r.Version),
								r.StartedAt.Local().Format("15:04"), kept(r.Evidence))
						}
					}
				}
				return nil
			})
		},
	}
}

// kept describes a build's failure evidence for the builds table.
func kept(path string) string {
	switch {
	case path == "":
		return "-"
	case !exists(path):
		return "(pruned) " + builder.Printable(path)
	}
	return builder.Printable(path)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// followBuild prints the newest running build's stage and log as they go.
func followBuild(c *ucli.Context) error {
	if c.Bool("json") {
		return usagef("--follow prints the log as it comes; read HOME/builds/*.running.json for JSON")
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	running, err := node.RunningBuilds(cfg.Home)
	if err != nil {
		return err
	}
	var live *node.LiveBuild
	for i := range running {
		if !running[i].Gone {
			live = &running[i]
		}
	}
	w := c.App.Writer
	if live == nil {
		fmt.Fprintln(w, "no build is running (rbnode builds lists the finished ones)")
		return nil
	}
	// Main buffers stdout; a follower must show each line as it comes.
	flush := func() {
		if f, ok := w.(interface{ Flush() error }); ok {
			_ = f.Flush()
		}
	}
	fmt.Fprintf(w, "following build %s (pid %d) in %s\n", builder.Printable(live.Version), live.PID, builder.Printable(live.WorkDir))
	return node.FollowBuild(c.Context, live.WorkDir, 200*time.Millisecond, 10, func(e node.FollowEvent) {
		defer flush()
		now := time.Now()
		switch {
		case e.Done && e.State.Gone:
			fmt.Fprintf(w, "== the build's process (pid %d) is gone; it did not finish\n", e.State.PID)
		case e.Done:
			fmt.Fprintf(w, "== build %s ended after %s; rbnode builds shows how\n", builder.Printable(e.State.Version), e.State.Elapsed(now).Round(time.Second))
		case e.State != nil:
			fmt.Fprintf(w, "== %s, running for %s (build %s)", e.State.Stage, e.State.StageElapsed(now).Round(time.Second), e.State.Elapsed(now).Round(time.Second))
			if e.State.Log != "" {
				fmt.Fprintf(w, ", log %s", builder.Printable(e.State.Log))
			}
			fmt.Fprintln(w)
		default:
			fmt.Fprintln(w, builder.Printable(e.Line))
		}
	})
}

// buildProgress draws the live build line: stage, elapsed time and the
// stage's last log line (a plain line per stage when not on a terminal).
type buildProgress struct {
	mu    sync.Mutex // update and heartbeat run on different goroutines
	w     io.Writer
	tty   bool
	stage builder.Stage
	last  time.Time
	drawn bool
}

func newBuildProgress(w io.Writer) *buildProgress { return &buildProgress{w: w, tty: isTerminal(w)} }

func (p *buildProgress) update(pr builder.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
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
	line := fmt.Sprintf("%s %s  %s", pr.Stage, pr.Elapsed.Round(time.Second), builder.Printable(pr.LastLine))
	if len(line) > 100 {
		line = line[:100]
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.drawn = true
}

// heartbeat prints, without a terminal, that the build still runs.
func (p *buildProgress) heartbeat(l node.LiveBuild) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	fmt.Fprintf(p.w, "build: %s running for %s (build %s)", l.Stage, l.StageElapsed(now).Round(time.Second), l.Elapsed(now).Round(time.Second))
	if l.LastLine != "" {
		fmt.Fprintf(p.w, ": %s", builder.Printable(l.LastLine))
	}
	fmt.Fprintln(p.w)
}

func (p *buildProgress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
