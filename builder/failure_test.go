package builder

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// signing returns a Signing into a fresh directory.
func signing(t *testing.T) *Signing {
	return &Signing{Signer: testKey(t, "Test Builder"), BuilderID: "test", Dest: t.TempDir()}
}

// TestBuildStageFails: a script that exits 1 fails its stage; the error
// names the stage and its log, the log holds the script's error, and
// nothing is signed.
func TestBuildStageFails(t *testing.T) {
	t.Parallel()
	repo, _ := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	work := filepath.Join(t.TempDir(), "work")
	sig := signing(t)
	res, err := Build(t.Context(), Request{Repo: repo, Version: version009, WorkDir: work,
		Env: buildEnv("STANDIN_FAIL=checksums"), Clock: testClock, Sign: sig})
	log := filepath.Join(work, "logs", "guix-checksums.log")
	want := `stage guix-checksums exited with status 1 (log: ` + log + `): "ERROR: stand-in checksums failed on purpose (STANDIN_FAIL=checksums)"`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n  %v\nwant\n  %s", err, want)
	}
	var se *StageError
	if !errors.As(err, &se) || se.Stage != StageChecksums || se.ExitCode != 1 || se.Log != log {
		t.Fatalf("stage error %+v", se)
	}
	if h := Hint(err); h != "read the stage's log: "+log {
		t.Errorf("hint %q", h)
	}
	b, rerr := os.ReadFile(log)
	if rerr != nil || !strings.Contains(string(b), "failed on purpose") {
		t.Errorf("log %s: %v\n%s", log, rerr, b)
	}
	rec := res.Record
	last := rec.Stages[len(rec.Stages)-2] // then cleanup
	if rec.Status != StatusFailed || rec.Error != want || last.Stage != StageChecksums || last.ExitCode != 1 || res.Signed != nil {
		t.Errorf("record %+v", rec)
	}
	// The partial outputs stay for inspection; the clone does not.
	if rec.OutDir != filepath.Join(work, "out") {
		t.Errorf("record's out dir %q", rec.OutDir)
	}
	if _, err := os.Stat(filepath.Join(work, "out", artifact009)); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(work, "src")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("clone left: %v", err)
	}
	noFiles(t, sig.Dest)
}

// TestBuildNoGuix: without guix on PATH nothing runs and the error is
// ErrNoGuix with a hint.
func TestBuildNoGuix(t *testing.T) {
	t.Parallel()
	repo, _ := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	work := filepath.Join(t.TempDir(), "work")
	res, err := Build(t.Context(), Request{Repo: repo, Version: version009, WorkDir: work, Env: withoutGuix(t)})
	if !errors.Is(err, ErrNoGuix) || err.Error() != "build 0.0.9: guix is not on PATH" {
		t.Fatalf("error %v, want ErrNoGuix", err)
	}
	if !strings.Contains(Hint(err), "install GNU Guix") {
		t.Errorf("hint %q", Hint(err))
	}
	if len(res.Record.Stages) != 0 || res.Record.Status != StatusFailed {
		t.Errorf("record %+v", res.Record)
	}
	if _, err := os.Stat(work); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("work directory made: %v", err)
	}
}

// TestBuildCancel cancels a build while guix-build hangs with two
// children, one of which ignores SIGTERM: every process of the stage is
// gone afterwards, the clone is removed and nothing is signed.
func TestBuildCancel(t *testing.T) {
	t.Parallel()
	repo, _ := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	work := filepath.Join(t.TempDir(), "work")
	pids := filepath.Join(t.TempDir(), "pids")
	sig := signing(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	start := time.Now()
	res, err := Build(ctx, Request{
		Repo: repo, Version: version009, WorkDir: work, Clock: testClock, Sign: sig,
		Env:      buildEnv("STANDIN_HANG=build", "STANDIN_HANG_PIDS="+pids),
		Timeouts: Timeouts{Grace: 300 * time.Millisecond},
		Progress: func(p Progress) {
			if p.Stage == StageBuild && strings.HasPrefix(p.LastLine, "stand-in: build is hanging") {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("cancel took %s", time.Since(start))
	}
	var se *StageError
	if !errors.As(err, &se) || se.Stage != StageBuild || !strings.HasPrefix(err.Error(), "stage guix-build cancelled (log: ") {
		t.Fatalf("error %v", err)
	}
	b, rerr := os.ReadFile(pids)
	if rerr != nil {
		t.Fatal(rerr)
	}
	fields := strings.Fields(string(b))
	if len(fields) != 3 {
		t.Fatalf("pid file %q", b)
	}
	for _, f := range fields {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		processGone(t, pid)
	}
	if res.Record.Status != StatusCancelled || res.Signed != nil {
		t.Errorf("record %+v", res.Record)
	}
	if s := res.Record.Stages; len(s) < 2 || !s[len(s)-2].Cancelled || s[len(s)-2].Stage != StageBuild {
		t.Errorf("stages %+v", s)
	}
	if _, err := os.Stat(filepath.Join(work, "src")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("clone left: %v", err)
	}
	noFiles(t, sig.Dest)
}

// TestBuildTimeout: a stage that outlives its timeout is killed and the
// error says so.
func TestBuildTimeout(t *testing.T) {
	t.Parallel()
	repo, _ := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	res, err := Build(t.Context(), Request{
		Repo: repo, Version: version009, WorkDir: filepath.Join(t.TempDir(), "work"),
		Env:      buildEnv("STANDIN_HANG=mk-distsrc"),
		Timeouts: Timeouts{Distsrc: 300 * time.Millisecond, Grace: 100 * time.Millisecond},
	})
	var se *StageError
	if !errors.Is(err, ErrTimeout) || !errors.As(err, &se) || se.Stage != StageDistsrc {
		t.Fatalf("error %v, want a timeout of guix-mk-distsrc", err)
	}
	if !strings.HasPrefix(err.Error(), "stage guix-mk-distsrc timed out after 300ms (log: ") {
		t.Errorf("message %q", err)
	}
	if res.Record.Status != StatusFailed || !res.Record.Stages[len(res.Record.Stages)-2].TimedOut {
		t.Errorf("record %+v", res.Record)
	}
}

// TestBuildOtherRelease builds 0.1.0's commit as 0.0.9: build-metadata.json
// names another version and the build fails its check, signing nothing.
func TestBuildOtherRelease(t *testing.T) {
	t.Parallel()
	repo, commits := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	sig := signing(t)
	res, err := Build(t.Context(), Request{
		Repo: repo, Version: version009, Commit: commits[version010][:10], WorkDir: filepath.Join(t.TempDir(), "work"),
		Env: buildEnv(), Clock: testClock, Sign: sig,
	})
	wantCheck(t, err, CheckError{File: "build-metadata.json", Rule: RuleMetadata, Detail: `version is "0.1.0", but "0.0.9" was built`})
	if res.Record.Commit != commits[version010] || res.Record.Tag != "" || res.Record.Check == nil || res.Signed != nil {
		t.Errorf("record %+v", res.Record)
	}
	noFiles(t, sig.Dest)
}

// TestBuildNativeFlag: a build whose log shows -march=native is refused.
func TestBuildNativeFlag(t *testing.T) {
	t.Parallel()
	repo, _ := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	sig := signing(t)
	_, err := Build(t.Context(), Request{
		Repo: repo, Version: version009, WorkDir: filepath.Join(t.TempDir(), "work"),
		Env: buildEnv("STANDIN_MARCH_NATIVE=1"), Clock: testClock, Sign: sig,
	})
	wantCheck(t, err, CheckError{File: buildLog, Rule: RuleNativeFlags, Detail: "line 2 has -march=native: the build depends on the host CPU"})
	noFiles(t, sig.Dest)
}

// TestBuildLeavesCheckoutAlone builds 0.0.9 from a checkout of 0.1.0 with
// uncommitted, staged and untracked changes: the build succeeds from the
// release commit and the checkout is as it was.
func TestBuildLeavesCheckoutAlone(t *testing.T) {
	t.Parallel()
	repo, commits := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(repo, "LICENSE-AGPL"), []byte("edited, not committed\n"), 0o644))
	must(os.WriteFile(filepath.Join(repo, "notes.txt"), []byte("untracked\n"), 0o644))
	must(os.WriteFile(filepath.Join(repo, "binaries", "cuprated", "cuprated.service"), []byte("staged\n"), 0o644))
	_, err := git(repo, date010, "add", "binaries/cuprated/cuprated.service")
	must(err)
	before := snapshot(t, repo)

	res, err := Build(t.Context(), Request{Repo: repo, Version: version009, WorkDir: filepath.Join(t.TempDir(), "work"), Env: buildEnv()})
	must(err)
	if res.Record.Commit != commits[version009] {
		t.Errorf("built %s, want %s", res.Record.Commit, commits[version009])
	}
	if after := snapshot(t, repo); after != before {
		t.Errorf("the checkout changed:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// snapshot describes a checkout: HEAD, what is staged, what is changed,
// and every file outside .git with its mode, time and content.
func snapshot(t *testing.T, repo string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"rev-parse", "HEAD"}, {"diff", "--cached"}, {"diff"}, {"worktree", "list", "--porcelain"}} {
		out, err := git(repo, date010, args...)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(out + "\n")
	}
	err := filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		content := ""
		if fi.Mode().IsRegular() {
			content = sum(t, p)
		}
		b.WriteString(strings.Join([]string{p, fi.Mode().String(), fi.ModTime().String(), content}, " ") + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestBuildUnknownRelease: a version without a tag is ErrUnknownRelease.
func TestBuildUnknownRelease(t *testing.T) {
	t.Parallel()
	repo, _ := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	for _, c := range []struct{ version, commit, msg string }{
		{"9.9.9", "", "tag cuprated-9.9.9 in " + repo + ": release not found in the repository"},
		{version009, "abcdef12", "commit abcdef12 in " + repo + ": release not found in the repository"},
	} {
		_, err := Build(t.Context(), Request{Repo: repo, Version: c.version, Commit: c.commit, WorkDir: filepath.Join(t.TempDir(), "w"), Env: buildEnv()})
		if !errors.Is(err, ErrUnknownRelease) || err.Error() != c.msg {
			t.Errorf("error %v, want %s", err, c.msg)
		}
		if !strings.Contains(Hint(err), "git fetch --tags") {
			t.Errorf("hint %q", Hint(err))
		}
	}
}

// TestBuildUsage: malformed requests are ErrUsage and run nothing.
func TestBuildUsage(t *testing.T) {
	t.Parallel()
	repo := t.TempDir()
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sk := testKey(t, "Usage")
	work := func() string { return filepath.Join(t.TempDir(), "w") }
	for _, c := range []struct {
		name string
		req  Request
		msg  string
	}{
		{"no repo", Request{Version: "1", WorkDir: work()}, "a repository is required"},
		{"repo missing", Request{Repo: filepath.Join(repo, "nope"), Version: "1", WorkDir: work()}, "repository " + filepath.Join(repo, "nope") + " is not a directory"},
		{"bad version", Request{Repo: repo, Version: "../1", WorkDir: work()}, attest.CheckName("version", "../1").Error()},
		{"bad commit", Request{Repo: repo, Version: "1", Commit: "--help", WorkDir: work()}, `commit "--help" is not 4 to 40 hex digits`},
		{"no work dir", Request{Repo: repo, Version: "1"}, "a work directory is required"},
		{"work dir in use", Request{Repo: repo, Version: "1", WorkDir: busy}, "work directory " + busy + " is not empty; give each build its own"},
		{"option as target", Request{Repo: repo, Version: "1", WorkDir: work(), Target: "--help"}, `target "--help" starts with '-'`},
		{"tag pattern", Request{Repo: repo, Version: "1", WorkDir: work(), TagPattern: "v"}, `tag pattern "v" has no {version}`},
		{"target with pipeline", Request{Repo: repo, Version: "1", WorkDir: work(), Pipeline: "make", Target: "x"}, "--guix-system and --target apply to the Guix pipeline, not to a --pipeline command"},
		{"project without pipeline", Request{Repo: repo, Version: "1", WorkDir: work(), Project: "p"}, "a project applies to a --pipeline build only"},
		{"no signer", Request{Repo: repo, Version: "1", WorkDir: work(), Sign: &Signing{BuilderID: "b", Dest: repo}}, "signing needs a Signer"},
		{"bad builder id", Request{Repo: repo, Version: "1", WorkDir: work(), Sign: &Signing{Signer: sk, BuilderID: "..", Dest: repo}}, attest.CheckName("builder id", "..").Error()},
		{"no dest", Request{Repo: repo, Version: "1", WorkDir: work(), Sign: &Signing{Signer: sk, BuilderID: "b"}}, "signing needs a destination directory"},
		{"bad manifest name", Request{Repo: repo, Version: "1", WorkDir: work(), Pipeline: "make", Sign: &Signing{Signer: sk, BuilderID: "b", Dest: repo, Name: "a/b"}}, attest.CheckName("manifest name", "a/b").Error()},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.req.Env = []string{"PATH=/nonexistent"}
			res, err := Build(t.Context(), c.req)
			if !errors.Is(err, ErrUsage) || err.Error() != c.msg+": invalid build request" {
				t.Fatalf("error\n  %v\nwant\n  %s: invalid build request", err, c.msg)
			}
			if res == nil || res.Record.Status != StatusFailed || res.Record.Error != err.Error() {
				t.Errorf("record %+v", res)
			}
		})
	}
}

// TestBuildWorkDirInRepo: the work and log directories must lie outside
// the repository's working tree and git directory, whatever directory of
// it Repo names; the error names the repository, and a directory that is
// no repository is said to be none.
func TestBuildWorkDirInRepo(t *testing.T) {
	t.Parallel()
	repo, _ := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	sub := filepath.Join(repo, "binaries")
	plain := t.TempDir()
	work := func() string { return filepath.Join(t.TempDir(), "w") }
	for _, c := range []struct {
		name string
		req  Request
		msg  string
	}{
		{"in the working tree", Request{Repo: repo, WorkDir: filepath.Join(repo, "build")},
			"work directory " + filepath.Join(repo, "build") + " is inside the repository " + repo + ", which a build never writes to"},
		{"repo named by a subdirectory", Request{Repo: sub, WorkDir: filepath.Join(repo, "build")},
			"work directory " + filepath.Join(repo, "build") + " is inside the repository " + repo + ", which a build never writes to"},
		{"log dir in .git", Request{Repo: repo, WorkDir: work(), LogDir: filepath.Join(repo, ".git", "logs", "b")},
			"log directory " + filepath.Join(repo, ".git", "logs", "b") + " is inside the repository " + repo + ", which a build never writes to"},
		{"not a repository", Request{Repo: plain, WorkDir: filepath.Join(plain, "w")}, plain + " is not a git repository"},
		{"control characters", Request{Repo: repo, WorkDir: filepath.Join(repo, "b\x1b[2Jx\n")},
			"work directory " + strconv.Quote(filepath.Join(repo, "b\x1b[2Jx\n")) + " is inside the repository " + repo + ", which a build never writes to"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.req.Version, c.req.Env = version009, buildEnv()
			res, err := Build(t.Context(), c.req)
			if !errors.Is(err, ErrUsage) || err.Error() != c.msg+": invalid build request" {
				t.Fatalf("error\n  %v\nwant\n  %s: invalid build request", err, c.msg)
			}
			if len(res.Record.Stages) != 0 {
				t.Errorf("ran %+v", res.Record.Stages)
			}
			if _, err := os.Stat(c.req.WorkDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("work directory made: %v", err)
			}
		})
	}
}

// TestBuildPipeline runs a generic pipeline command in a clean clone
// and signs its SHA256SUMS in the guix.sigs layout.
func TestBuildPipeline(t *testing.T) {
	t.Parallel()
	repo, commits := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	const pipeline = `set -eu
test -z "$(git status --porcelain)"
printf '%s %s\n' "$VERSION" "$COMMIT" >"$OUT_DIR/demo-$VERSION-linux.txt"
git archive --format=tar --prefix="demo-$VERSION/" HEAD | gzip -n >"$OUT_DIR/demo-$VERSION.tar.gz"
echo "cc -O2 -o demo demo.c (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)" >"$OUT_DIR/build.log"
cd "$OUT_DIR" && sha256sum demo-* >SHA256SUMS`
	sk := testKey(t, "Pipeline Builder")
	dest := t.TempDir()
	res, err := Build(t.Context(), Request{
		Repo: repo, Version: version009, WorkDir: filepath.Join(t.TempDir(), "work"), Env: buildEnv(),
		Pipeline: pipeline, Project: "demo", Clock: testClock,
		Sign: &Signing{Signer: sk, BuilderID: "pipe builder", Dest: dest},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Signed
	want := filepath.Join(dest, version009, "pipe_builder", "all.SHA256SUMS")
	if s == nil || s.Path != want || s.Document.Kind != attest.KindManifest || s.Document.Name != "all.SHA256SUMS" {
		t.Fatalf("signed %+v, want %s", s, want)
	}
	sums, err := os.ReadFile(filepath.Join(res.Record.OutDir, "SHA256SUMS"))
	if err != nil || string(sums) != string(s.Document.Body) {
		t.Fatalf("signed body is not SHA256SUMS: %v", err)
	}
	checkSigned(t, s, sk)
	p, err := s.Document.Parse()
	if err != nil || p.Statement.Project != "demo" || p.Statement.Version != version009 || len(p.Statement.Artifacts) != 2 {
		t.Fatalf("parse: %v %+v", err, p)
	}
	txt, err := os.ReadFile(filepath.Join(res.Record.OutDir, "demo-0.0.9-linux.txt"))
	if err != nil || string(txt) != version009+" "+commits[version009]+"\n" {
		t.Errorf("the command saw %q, %v", txt, err)
	}
	log, _ := os.ReadFile(filepath.Join(res.Record.OutDir, "build.log"))
	if !strings.Contains(string(log), "SOURCE_DATE_EPOCH="+strconv.Itoa(epoch009)) {
		t.Errorf("log %q", log)
	}
	if rec := res.Record; rec.Kind != "pipeline" || len(rec.Artifacts) != 2 || rec.Stages[len(rec.Stages)-2].Stage != StagePipeline {
		t.Errorf("record %+v", rec)
	}
}

// TestBuildPipelineUnbound: a manifest whose artifacts do not carry the
// version cannot be bound to it and is not signed.
func TestBuildPipelineUnbound(t *testing.T) {
	t.Parallel()
	repo, _ := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	sig := signing(t)
	_, err := Build(t.Context(), Request{
		Repo: repo, Version: version009, WorkDir: filepath.Join(t.TempDir(), "work"), Env: buildEnv(),
		Pipeline: `echo x >"$OUT_DIR/demo-latest.tar.gz" && cd "$OUT_DIR" && sha256sum demo-latest.tar.gz >SHA256SUMS`,
		Sign:     sig,
	})
	wantCheck(t, err, CheckError{File: "SHA256SUMS", Rule: RuleManifestBound,
		Detail: `artifact "demo-latest.tar.gz" does not carry version "0.0.9" in its name, so the manifest cannot be bound to that version: context mismatch`})
	noFiles(t, sig.Dest)
}

// TestBuildPipelineFails: the command's exit status fails the stage.
func TestBuildPipelineFails(t *testing.T) {
	t.Parallel()
	repo, _ := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	_, err := Build(t.Context(), Request{
		Repo: repo, Version: version009, WorkDir: filepath.Join(t.TempDir(), "work"), Env: buildEnv(),
		Pipeline: `echo "make: *** no rule" >&2; exit 2`,
	})
	var se *StageError
	var ee *exec.ExitError
	if !errors.As(err, &se) || se.Stage != StagePipeline || se.ExitCode != 2 || se.LastLine != "make: *** no rule" || !errors.As(err, &ee) {
		t.Fatalf("error %v", err)
	}
}

// TestBuildTargetAndSystem passes --guix-system and --target through to
// the scripts; the outputs and the attestation carry them.
func TestBuildTargetAndSystem(t *testing.T) {
	t.Parallel()
	repo, _ := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	sig := signing(t)
	res, err := Build(t.Context(), Request{
		Repo: repo, Version: version009, WorkDir: filepath.Join(t.TempDir(), "work"), Env: buildEnv(), Clock: testClock,
		GuixSystem: "i686-linux", Target: "x86_64-unknown-linux-musl", Sign: sig,
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := attest.DecodeAttestation(res.Signed.Document.Body)
	if err != nil {
		t.Fatal(err)
	}
	if a.GuixSystem != "i686-linux" || a.RustTarget != "x86_64-unknown-linux-musl" || a.Artifact.Filename != "cuprated-0.0.9-x86_64-unknown-linux-musl.tar.gz" {
		t.Errorf("attestation %+v", a)
	}
	for _, s := range res.Record.Stages {
		if s.Stage == StageDistsrc && s.Command[len(s.Command)-1] != "i686-linux" {
			t.Errorf("guix-mk-distsrc ran as %v", s.Command)
		}
		if s.Stage == StageBuild && !strings.HasSuffix(strings.Join(s.Command, " "), "--guix-system i686-linux --target x86_64-unknown-linux-musl") {
			t.Errorf("guix-build ran as %v", s.Command)
		}
	}
}

// TestBuildNoPipeline: a commit without contrib/guix/guix-build (Cuprate's
// releases up to 0.0.9) is refused before anything but git runs, with a
// hint to pick a commit that has the pipeline or to give one.
func TestBuildNoPipeline(t *testing.T) {
	t.Parallel()
	repo, _ := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	for _, args := range [][]string{{"rm", "-q", "-r", "contrib/guix"}, {"commit", "-q", "-m", "no pipeline"}} {
		if _, err := git(repo, date010, args...); err != nil {
			t.Fatal(err)
		}
	}
	commit, err := git(repo, date010, "rev-parse", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(t.TempDir(), "work")
	res, err := Build(t.Context(), Request{Repo: repo, Version: version010, Commit: commit, WorkDir: work, Env: buildEnv()})
	want := commit + " has no contrib/guix/guix-build: this release predates the pipeline"
	if !errors.Is(err, ErrNoPipeline) || err.Error() != want {
		t.Fatalf("error\n  %v\nwant\n  %s", err, want)
	}
	if h := Hint(err); !strings.Contains(h, "--commit") || !strings.Contains(h, "--pipeline") {
		t.Errorf("hint %q", h)
	}
	for _, s := range res.Record.Stages {
		if s.Stage != StageSource || s.Command[0] != "git" || slices.Contains(s.Command, "clone") {
			t.Errorf("ran %v", s.Command)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "src")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a clone was made: %v", err)
	}
}

// TestBuildKeepsEvidence: when guix-build fails, the build tree it left in
// contrib/guix/.work is moved to the work directory's evidence/ before the
// clone is deleted, and the record names it.
func TestBuildKeepsEvidence(t *testing.T) {
	t.Parallel()
	repo, _ := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	work := filepath.Join(t.TempDir(), "work")
	res, err := Build(t.Context(), Request{Repo: repo, Version: version009, WorkDir: work, Env: buildEnv("STANDIN_FAIL=build")})
	var se *StageError
	if !errors.As(err, &se) || se.Stage != StageBuild {
		t.Fatalf("error %v, want guix-build to fail", err)
	}
	want := filepath.Join(work, EvidenceDir)
	if res.Record.Evidence != want {
		t.Fatalf("record's evidence %q, want %s", res.Record.Evidence, want)
	}
	trees, _ := filepath.Glob(filepath.Join(want, "guix-build-src.*", "src", "binaries", "cuprated", "src", "main.c"))
	if len(trees) != 1 {
		t.Errorf("evidence holds %v, want guix-build's source tree", trees)
	}
	if _, err := os.Stat(filepath.Join(work, "src")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("clone left: %v", err)
	}

	// A good build keeps none.
	ok, err := Build(t.Context(), Request{Repo: repo, Version: version009, WorkDir: filepath.Join(t.TempDir(), "work"), Env: buildEnv()})
	if err != nil || ok.Record.Evidence != "" {
		t.Errorf("good build: %v, evidence %q", err, ok.Record.Evidence)
	}
}
