package builder

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// The stand-in repository's two releases: 0.0.9, and 0.1.0 a day later.
const (
	version009   = "0.0.9"
	version010   = "0.1.0"
	date009      = "2025-06-01T12:00:00Z"
	date010      = "2025-06-02T12:00:00Z"
	epoch009     = 1748779200
	artifact009  = "cuprated-0.0.9-x86_64-unknown-linux-gnu.tar.gz"
	buildLog     = "build-x86_64-unknown-linux-gnu.log"
	channelGuix  = "4c2a0e5b0dd45a6bd62bb9fd8a88f40a8a4db2f6" // testdata/standin/contrib/guix/channels.scm
	rustcLine    = "rustc 1.88.0 (6b00bc388 2025-06-23)"
	rustcNightly = "rustc 1.89.0-nightly (0123456789 2025-07-01)"
	cargoLine    = "cargo 1.88.0 (873a06493 2025-05-10)"
)

// testTime is the clock of every signature the tests make.
var testTime = time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)

func testClock() time.Time { return testTime }

// fixture is one good build of the stand-in, made once and copied by the
// tests that tamper with outputs.
var fixture struct {
	once   sync.Once
	root   string
	repo   string
	out    string
	commit string
	err    error
}

func TestMain(m *testing.M) {
	root, err := os.MkdirTemp("", "rbnode-builder-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixture.root = root
	// The fake guix runs from a copy, executable whatever the checkout of
	// testdata kept of its mode.
	fakeGuix = filepath.Join(root, "bin")
	err = os.CopyFS(fakeGuix, os.DirFS("testdata/fakeguix"))
	if err == nil {
		err = os.Chmod(filepath.Join(fakeGuix, "guix"), 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(root)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(root)
	os.Exit(code)
}

// goodOutput returns a copy of a checked Guix output directory of the
// stand-in's 0.0.9, and that release's commit.
func goodOutput(t *testing.T) (string, string) {
	t.Helper()
	fixture.once.Do(func() {
		repo, commits, err := makeStandin(filepath.Join(fixture.root, "fixture"))
		if err != nil {
			fixture.err = err
			return
		}
		res, err := Build(context.Background(), Request{
			Repo: repo, Version: version009, WorkDir: filepath.Join(fixture.root, "build"),
			Env: buildEnv(), Clock: testClock,
		})
		if err != nil {
			fixture.err = fmt.Errorf("fixture build: %w", err)
			return
		}
		fixture.repo, fixture.out, fixture.commit = repo, res.Record.OutDir, commits[version009]
	})
	if fixture.err != nil {
		t.Fatal(fixture.err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.CopyFS(dir, os.DirFS(fixture.out)); err != nil {
		t.Fatal(err)
	}
	return dir, fixture.commit
}

// gitEnv is a git environment free of the machine's configuration, with a
// fixed author.
func gitEnv(date string) []string {
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Stand-in", "GIT_AUTHOR_EMAIL=standin@example.org", "GIT_AUTHOR_DATE="+date,
		"GIT_COMMITTER_NAME=Stand-in", "GIT_COMMITTER_EMAIL=standin@example.org", "GIT_COMMITTER_DATE="+date,
	)
}

func git(dir, date string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = gitEnv(date)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(out.String()), nil
}

// makeStandin makes the stand-in Cuprate repository at dir: testdata/standin
// committed as cuprated 0.0.9 (tag cuprated-0.0.9) and then bumped to 0.1.0
// (tag cuprated-0.1.0), both with fixed dates, so that every copy has the
// same commits. It returns the commit of each version.
func makeStandin(dir string) (string, map[string]string, error) {
	if err := os.CopyFS(dir, os.DirFS("testdata/standin")); err != nil {
		return "", nil, err
	}
	// The scripts must be executable whatever the copy of testdata lost.
	err := filepath.WalkDir(filepath.Join(dir, "contrib", "guix"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".scm") || strings.HasSuffix(p, ".md") {
			return err
		}
		return os.Chmod(p, 0o755)
	})
	if err != nil {
		return "", nil, err
	}
	commits := map[string]string{}
	steps := [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "cuprated 0.0.9"}, {"tag", "cuprated-0.0.9"}}
	for _, s := range steps {
		if _, err := git(dir, date009, s...); err != nil {
			return "", nil, err
		}
	}
	if commits[version009], err = git(dir, date009, "rev-parse", "HEAD"); err != nil {
		return "", nil, err
	}
	toml := filepath.Join(dir, "binaries", "cuprated", "Cargo.toml")
	b, err := os.ReadFile(toml)
	if err != nil {
		return "", nil, err
	}
	b = bytes.Replace(b, []byte(`version = "0.0.9"`), []byte(`version = "0.1.0"`), 1)
	if err := os.WriteFile(toml, b, 0o644); err != nil {
		return "", nil, err
	}
	for _, s := range [][]string{{"commit", "-q", "-a", "-m", "cuprated 0.1.0"}, {"tag", "cuprated-0.1.0"}} {
		if _, err := git(dir, date010, s...); err != nil {
			return "", nil, err
		}
	}
	if commits[version010], err = git(dir, date010, "rev-parse", "HEAD"); err != nil {
		return "", nil, err
	}
	return dir, commits, nil
}

func standin(t *testing.T, dir string) (string, map[string]string) {
	t.Helper()
	repo, commits, err := makeStandin(dir)
	if err != nil {
		t.Fatal(err)
	}
	return repo, commits
}

// fakeGuix is the directory of the fake guix (a copy of testdata/fakeguix).
var fakeGuix string

// buildEnv is the environment of a stand-in build: the fake guix first on
// PATH, no machine git configuration, and extra.
func buildEnv(extra ...string) []string {
	env := append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"PATH="+fakeGuix+string(os.PathListSeparator)+os.Getenv("PATH"))
	return append(env, extra...)
}

// withoutGuix is an environment whose PATH lacks the fake guix and any
// real one.
func withoutGuix(t *testing.T) []string {
	t.Helper()
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(d, "guix")); err != nil {
			dirs = append(dirs, d)
		}
	}
	return append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"PATH="+strings.Join(dirs, string(os.PathListSeparator)))
}

// testKey is a fresh signing key.
func testKey(t *testing.T, name string) *attest.SecretKey {
	t.Helper()
	sk, err := attest.GenerateKey(name, strings.ToLower(strings.ReplaceAll(name, " ", "."))+"@example.org", testTime.Add(-time.Hour), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// checkSigned makes sure what s says was written is on disk and that its
// signature verifies with sk's public key.
func checkSigned(t *testing.T, s *Signed, sk *attest.SecretKey) {
	t.Helper()
	body, err := os.ReadFile(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	sigb, err := os.ReadFile(s.SigPath)
	if err != nil {
		t.Fatal(err)
	}
	if s.SigPath != s.Path+".asc" {
		t.Errorf("signature at %s, want %s.asc", s.SigPath, s.Path)
	}
	if !bytes.Equal(body, s.Document.Body) || !bytes.Equal(sigb, s.Document.Signature) {
		t.Error("the files on disk are not the document returned")
	}
	sig, err := attest.ParseSignature(sigb)
	if err != nil {
		t.Fatal(err)
	}
	if v := attest.NewKeyring(sk.Public()).Verify(body, sig, testTime); !v.OK() {
		t.Fatalf("signature does not verify: %s %s", v.Status, v.Detail)
	}
	if !sig.Created().Equal(testTime) {
		t.Errorf("signed at %s, want %s", sig.Created(), testTime)
	}
	entries, err := os.ReadDir(filepath.Dir(s.Path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// noFiles fails if anything but directories is under dir.
func noFiles(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil && !d.IsDir() {
			t.Errorf("%s was written", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// wantCheck fails unless err is a *CheckError equal to want.
func wantCheck(t *testing.T, err error, want CheckError) {
	t.Helper()
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T), want a *CheckError", err, err)
	}
	if ce.File != want.File || ce.Rule != want.Rule || ce.Detail != want.Detail {
		t.Fatalf("error\n  file %q\n  rule %q\n  detail %q\nwant\n  file %q\n  rule %q\n  detail %q",
			ce.File, ce.Rule, ce.Detail, want.File, want.Rule, want.Detail)
	}
}

// processGone waits until pid has exited (or is a zombie nobody reaped
// yet), failing after a deadline.
func processGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err == nil {
			// pid (comm) STATE ...; comm may hold spaces, so split after ')'.
			if i := bytes.LastIndexByte(b, ')'); i >= 0 && len(b) > i+2 && b[i+2] == 'Z' {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running: %s", pid, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
