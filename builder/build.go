package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// Result is the outcome of Build.
type Result struct {
	Record Record
	// Signed is the document written, nil when the build was not signed
	// or failed.
	Signed *Signed
}

// Build builds one release: it makes a clean, self-contained git clone of
// the release commit under req.WorkDir, runs the Cuprate Guix pipeline (guix-mk-distsrc,
// guix-build, guix-checksums) or req.Pipeline in it, moves the outputs to
// WorkDir/out, keeps what a failed build left in contrib/guix/.work as
// WorkDir/evidence, removes the clone, checks the outputs against the
// pipeline's contract and, if req.Sign is set, signs them.
//
// The Result is never nil: on failure its Record says what ran and why it
// stopped. Errors: ErrUsage (the request), ErrNoGuix, ErrUnknownRelease,
// ErrNoPipeline,
// *StageError (a subprocess; cancellation and timeouts included),
// *CheckError (the outputs; nothing signed), or an I/O error.
func Build(ctx context.Context, req Request) (*Result, error) {
	res := &Result{Record: Record{
		Kind: "guix", Pipeline: req.Pipeline, Repo: req.Repo, Version: req.Version,
		WorkDir: req.WorkDir, Status: StatusFailed, Stages: []StageRecord{},
	}}
	if req.Pipeline != "" {
		res.Record.Kind = "pipeline"
	}
	if req.Clock == nil {
		req.Clock = time.Now
	}
	res.Record.StartedAt = req.Clock().UTC()
	err := req.normalize()
	if err == nil {
		res.Record.Repo, res.Record.WorkDir = req.Repo, req.WorkDir
		if req.Sign != nil {
			res.Record.BuilderID = req.Sign.BuilderID
		}
		b := &build{req: &req, res: res, r: &runner{
			env: req.Env, logDir: req.LogDir, grace: req.Timeouts.Grace,
			progress: req.Progress, clock: req.Clock,
		}}
		err = b.run(ctx)
		res.Record.Stages = b.r.stages
	}
	res.Record.FinishedAt = req.Clock().UTC()
	var ce *CheckError
	switch {
	case err == nil:
		res.Record.Status = StatusOK
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		res.Record.Status = StatusCancelled
	case errors.As(err, &ce):
		res.Record.Check = ce
	}
	if err != nil {
		res.Record.Error = err.Error()
		res.Signed = nil
	}
	return res, err
}

// build is one run of Build.
type build struct {
	req    *Request
	res    *Result
	r      *runner
	commit string
	time   string // the commit's time, seconds since the epoch
	src    string // the build's clone
	out    string // WorkDir/out
}

func (b *build) run(ctx context.Context) (err error) {
	req := b.req
	if err := b.checkRepo(ctx); err != nil {
		return err
	}
	if req.Pipeline == "" {
		if _, err := lookPath("guix", req.Env); err != nil {
			return fmt.Errorf("build %s: %w", req.Version, ErrNoGuix)
		}
	}
	for _, d := range []string{req.WorkDir, req.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", Printable(d), err)
		}
	}
	b.src = filepath.Join(req.WorkDir, "src")
	b.out = filepath.Join(req.WorkDir, "out")
	if err := b.resolve(ctx); err != nil {
		return err
	}
	err = b.clone(ctx)
	if err == nil {
		if req.Pipeline == "" {
			err = b.guix(ctx)
		} else {
			err = b.pipeline(ctx)
		}
	}
	if _, serr := os.Lstat(b.src); serr == nil {
		if err != nil {
			b.keepEvidence()
		}
		if cerr := b.removeClone(ctx); err == nil {
			err = cerr
		}
	}
	if _, serr := os.Lstat(b.out); serr == nil {
		b.res.Record.OutDir = b.out // also after a failure, for inspection
	}
	if err != nil {
		return err
	}
	r := b.r
	r.report(Progress{Stage: StageCheck})
	var (
		a    *attest.Attestation
		body []byte
	)
	if req.Pipeline == "" {
		a, b.res.Record.Artifacts, err = checkGuix(ctx, b.out, want{version: req.Version, commit: b.commit})
	} else {
		body, b.res.Record.Artifacts, err = checkManifest(ctx, b.out, req.Version, req.Project)
	}
	if err != nil || req.Sign == nil {
		return err
	}
	r.report(Progress{Stage: StageSign})
	id, _ := req.Sign.check() // checked by normalize
	now := req.Clock()
	var s *Signed
	if a != nil {
		s, err = signAttestation(ctx, a, *req.Sign, id, now)
	} else {
		s, err = signManifest(ctx, body, req.Version, *req.Sign, id, now)
	}
	if err != nil {
		return err
	}
	b.res.Signed = s
	b.res.Record.DocumentKind = s.Document.Kind
	b.res.Record.DocumentPath, b.res.Record.SignaturePath = s.Path, s.SigPath
	return nil
}

// checkRepo makes sure Repo is a git repository and that the work and log
// directories lie outside both its working tree (found from its top level,
// Repo may be a subdirectory) and its git directory.
func (b *build) checkRepo(ctx context.Context) error {
	req := b.req
	gitPath, err := lookPath("git", req.Env)
	if err != nil {
		return fmt.Errorf("find git: %w", err)
	}
	revParse := func(args ...string) ([]string, error) {
		ctx, cancel := context.WithTimeout(ctx, req.Timeouts.Git)
		defer cancel()
		cmd := exec.CommandContext(ctx, gitPath, append([]string{"-C", req.Repo, "rev-parse", "--path-format=absolute"}, args...)...)
		cmd.Env = req.Env
		out, err := cmd.Output()
		return strings.Split(strings.TrimSpace(string(out)), "\n"), err
	}
	dirs, err := revParse("--is-bare-repository", "--git-common-dir")
	if err != nil || len(dirs) != 2 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return usagef("%s is not a git repository", Printable(req.Repo))
	}
	bare, roots := dirs[0] == "true", dirs[1:]
	if !bare {
		top, err := revParse("--show-toplevel")
		if err != nil {
			return fmt.Errorf("find the top of %s: %w", Printable(req.Repo), err)
		}
		roots = append(top, roots...)
	}
	for _, root := range roots {
		for _, d := range []struct{ what, path string }{{"work", req.WorkDir}, {"log", req.LogDir}} {
			if within(d.path, root) {
				return usagef("%s directory %s is inside the repository %s, which a build never writes to", d.what, Printable(d.path), Printable(root))
			}
		}
	}
	return nil
}

// resolve finds the commit to build: the explicit one, or the tag's.
func (b *build) resolve(ctx context.Context) error {
	req := b.req
	rev := req.Commit
	if rev == "" {
		tag := strings.ReplaceAll(req.TagPattern, "{version}", req.Version)
		b.res.Record.Tag = tag
		rev = "refs/tags/" + tag
	}
	out, err := b.gitOut(ctx, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if errExit(err, 1) {
		if req.Commit != "" {
			return fmt.Errorf("commit %s in %s: %w", req.Commit, Printable(req.Repo), ErrUnknownRelease)
		}
		return fmt.Errorf("tag %s in %s: %w", Printable(b.res.Record.Tag), Printable(req.Repo), ErrUnknownRelease)
	}
	if err != nil {
		return err
	}
	if !isLowerHex(out, 40) {
		return fmt.Errorf("resolve %s: git printed %q, not a commit", rev, out)
	}
	b.commit = out
	b.res.Record.Commit = out
	if b.time, err = b.gitOut(ctx, "show", "-s", "--format=%ct", out); err != nil {
		return err
	}
	if req.Pipeline == "" {
		// Cuprate's releases up to 0.0.9 have no pipeline (PR 615 was
		// closed): say so rather than fail to exec a missing script.
		has, err := b.gitOut(ctx, "ls-tree", "--name-only", out, "--", pipelineScript)
		if err != nil {
			return err
		}
		if has != pipelineScript {
			return fmt.Errorf("%s has no %s: %w", out, pipelineScript, ErrNoPipeline)
		}
	}
	return nil
}

// pipelineScript is the script whose presence marks a commit that has
// Cuprate's Guix pipeline.
const pipelineScript = "contrib/guix/guix-build"

func (b *build) gitOut(ctx context.Context, args ...string) (string, error) {
	return b.r.run(ctx, command{
		stage:   StageSource,
		argv:    append([]string{"git", "-C", b.req.Repo}, args...),
		dir:     b.req.Repo,
		timeout: b.req.Timeouts.Git,
	})
}

// clone makes the build's own clone of the release commit at b.src. Its
// .git lies inside it, so git works in a container that sees only b.src
// (a worktree's .git would point into the user's repository). --no-local
// copies the objects instead of borrowing them through alternates, for the
// same reason. Hooks never run in it, and the user's repository is only
// read.
func (b *build) clone(ctx context.Context) error {
	src := func(args ...string) error {
		_, err := b.r.run(ctx, command{
			stage: StageSource, argv: append([]string{"git", "-C", b.src, "-c", "core.hooksPath=/dev/null"}, args...),
			dir: b.req.WorkDir, timeout: b.req.Timeouts.Git,
		})
		return err
	}
	_, err := b.r.run(ctx, command{
		stage: StageSource,
		argv: []string{"git", "clone", "--quiet", "--no-local", "--no-checkout", "--template=",
			"--config", "core.hooksPath=/dev/null", "--", b.req.Repo, b.src},
		dir: b.req.WorkDir, timeout: b.req.Timeouts.Git,
	})
	if err != nil {
		return err
	}
	if errExit(src("rev-parse", "--quiet", "--verify", b.commit+"^{commit}"), 1) {
		// Not reachable from the repository's refs (a commit given by
		// hash that no branch or tag holds): fetch it by name.
		err = src("fetch", "--quiet", "--no-tags",
			"--upload-pack=git -c uploadpack.allowAnySHA1InWant=true upload-pack", "origin", b.commit)
		if err != nil {
			return err
		}
	}
	return src("-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", b.commit)
}

// removeClone deletes the build's clone even when ctx is done.
func (b *build) removeClone(ctx context.Context) error {
	_, err := b.r.run(context.WithoutCancel(ctx), command{
		stage: StageCleanup, argv: []string{"rm", "-rf", "--", b.src},
		dir: b.req.WorkDir, timeout: b.req.Timeouts.Git,
	})
	if err == nil {
		return nil
	}
	if rerr := os.RemoveAll(b.src); rerr != nil {
		return fmt.Errorf("remove the build's clone %s: %w", Printable(b.src), rerr)
	}
	return nil
}

// keepEvidence moves what a failed Guix build left in the clone's
// contrib/guix/.work (the scripts keep their build trees there on failure)
// to WorkDir/evidence, before the clone is deleted.
func (b *build) keepEvidence() {
	work := filepath.Join(b.src, "contrib", "guix", ".work")
	entries, err := os.ReadDir(work)
	if err != nil || len(entries) == 0 {
		return
	}
	dst := filepath.Join(b.req.WorkDir, EvidenceDir)
	if err := os.Rename(work, dst); err == nil {
		b.res.Record.Evidence = dst
	}
}

// guix runs the three Cuprate scripts in the clone. Their output
// directory must lie inside the repository (the scripts refuse anything
// else), so it is the clone's contrib/guix/out, moved to WorkDir/out
// afterwards, also when a stage failed, for inspection.
func (b *build) guix(ctx context.Context) (err error) {
	req := b.req
	script := func(name string) string { return filepath.Join(b.src, "contrib", "guix", name) }
	out := filepath.Join(b.src, "contrib", "guix", "out")
	defer func() {
		if _, serr := os.Lstat(out); serr == nil {
			if rerr := os.Rename(out, b.out); err == nil && rerr != nil {
				err = fmt.Errorf("move outputs: %w", rerr)
			}
		}
	}()
	env := []string{"GUIX_ALLOW_COMMIT_MISMATCH=0"}
	argv := []string{script("guix-mk-distsrc"), "--out-dir", out}
	if req.GuixSystem != "" {
		// Positional, not after "--": Cuprate's script drops what follows
		// "--". normalize refused a leading '-'.
		argv = append(argv, req.GuixSystem)
	}
	distsrc, err := b.r.run(ctx, command{stage: StageDistsrc, argv: argv, dir: b.src, env: env, timeout: req.Timeouts.Distsrc})
	if err != nil {
		return err
	}
	if err := distsrcIn(distsrc, out); err != nil {
		return err
	}
	argv = []string{script("guix-build"), "--distsrc", distsrc, "--out-dir", out}
	if req.GuixSystem != "" {
		argv = append(argv, "--guix-system", req.GuixSystem)
	}
	if req.Target != "" {
		argv = append(argv, "--target", req.Target)
	}
	if _, err := b.r.run(ctx, command{stage: StageBuild, argv: argv, dir: b.src, env: env, timeout: req.Timeouts.Build}); err != nil {
		return err
	}
	_, err = b.r.run(ctx, command{stage: StageChecksums, argv: []string{script("guix-checksums"), out}, dir: b.src, env: env, timeout: req.Timeouts.Checksums})
	return err
}

// distsrcIn checks that the last line guix-mk-distsrc printed is a file
// directly in the output directory.
func distsrcIn(path, out string) error {
	name := filepath.Base(path)
	realOut, err := filepath.EvalSymlinks(out)
	if err != nil {
		return fmt.Errorf("resolve output directory: %w", err)
	}
	realPath, err := filepath.EvalSymlinks(path)
	if err != nil || filepath.Dir(realPath) != realOut {
		return checkErr(name, RuleMissing, err, "guix-mk-distsrc printed %q as the distsrc (its last line of output), which is not a file in %s", path, Printable(out))
	}
	return nil
}

// pipeline runs the generic command in the clone, OUT_DIR outside it.
func (b *build) pipeline(ctx context.Context) error {
	if err := os.Mkdir(b.out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", Printable(b.out), err)
	}
	_, err := b.r.run(ctx, command{
		stage: StagePipeline,
		argv:  []string{"sh", "-c", b.req.Pipeline},
		dir:   b.src,
		env: []string{
			"OUT_DIR=" + b.out, "VERSION=" + b.req.Version, "COMMIT=" + b.commit,
			"SOURCE_DATE_EPOCH=" + b.time,
		},
		timeout: b.req.Timeouts.Pipeline,
	})
	return err
}
