package cli_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rbnode/rbnode/cli"
)

// gitIn runs git in dir with the stand-in's fixed author.
func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestBuildCommand drives rbnode build against the stand-in pipeline with
// the fake guix: a release without the pipeline, a wrong call, a failed
// build and its kept evidence, and the stage summary.
func TestBuildCommand(t *testing.T) {
	home := t.TempDir()
	repo := filepath.Join(t.TempDir(), "cuprate")
	if out, err := exec.Command("../builder/testdata/make-standin", repo).CombinedOutput(); err != nil {
		t.Fatalf("make-standin: %v\n%s", err, out)
	}
	fake, _ := filepath.Abs("../builder/testdata/fakeguix")
	t.Setenv("PATH", fake+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
	if code, _, stderr := run(t, home, "key", "generate", "--name", "kim", "--email", "kim@example.org"); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}

	// A release whose commit has no contrib/guix.
	gitIn(t, repo, "rm", "-q", "-r", "contrib/guix")
	gitIn(t, repo, "commit", "-q", "-m", "no pipeline")
	gitIn(t, repo, "tag", "cuprated-0.2.0")
	commit := gitIn(t, repo, "rev-parse", "HEAD")
	code, stdout, stderr := run(t, home, "build", "0.2.0", "--repo", repo)
	want := "rbnode: error: " + commit + " has no contrib/guix/guix-build: this release predates the pipeline\n" +
		"hint: build a commit that has the pipeline (--commit COMMIT), or give the build command with --pipeline COMMAND\n"
	if code != cli.ExitUsage || !strings.HasSuffix(stderr, want) {
		t.Errorf("no pipeline: exit %d, stderr\n%s\nwant it to end with\n%s", code, stderr, want)
	}
	if !strings.Contains(stdout, "build 0.2.0 ("+commit[:12]+") failed") {
		t.Errorf("no pipeline: stdout %q", stdout)
	}

	// A wrong call is not a build: nothing printed, nothing recorded.
	code, stdout, stderr = run(t, home, "build", "0.0.9", "--repo", repo, "--project", "x")
	if code != cli.ExitUsage || stdout != "" || !strings.Contains(stderr, "a project applies to a --pipeline build only") {
		t.Errorf("usage: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// A failed guix-build keeps its build tree, and says where.
	t.Setenv("STANDIN_FAIL", "build")
	code, stdout, _ = run(t, home, "build", "0.0.9", "--repo", repo)
	if code != cli.ExitInternal || !strings.Contains(stdout, "kept for inspection: "+filepath.Join(home, "builds")) {
		t.Errorf("failed build: exit %d, stdout\n%s", code, stdout)
	}
	t.Setenv("STANDIN_FAIL", "")

	// A good build: each stage once in the summary.
	code, stdout, stderr = run(t, home, "build", "0.0.9", "--repo", repo)
	if code != cli.ExitOK {
		t.Fatalf("build: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, stage := range []string{"source", "guix-mk-distsrc", "guix-build", "guix-checksums", "cleanup"} {
		if n := len(regexp.MustCompile(`(?m)^  `+stage+` +exit `).FindAllString(stdout, -1)); n != 1 {
			t.Errorf("stage %s is listed %d times:\n%s", stage, n, stdout)
		}
	}

	_, js, _ := run(t, home, "builds", "--json")
	var recs []struct {
		Version, Status, Evidence string
		StartedAt                 time.Time `json:"started_at"`
	}
	if err := json.Unmarshal([]byte(js), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0].Version != "0.2.0" || recs[1].Status != "failed" || recs[1].Evidence == "" || recs[2].Status != "ok" {
		t.Fatalf("records %+v", recs)
	}
	_, table, _ := run(t, home, "builds")
	if !strings.Contains(table, recs[1].Evidence) {
		t.Errorf("builds does not show the kept evidence %s:\n%s", recs[1].Evidence, table)
	}
	// Times in the user's own zone, the zone named.
	if local := recs[0].StartedAt.Local().Format("2006-01-02 15:04 MST"); !strings.Contains(table, local) {
		t.Errorf("builds does not show the start %s in local time:\n%s", local, table)
	}
	if _, out, _ := run(t, home, "builds", "--follow"); out != "no build is running (rbnode builds lists the finished ones)\n" {
		t.Errorf("builds --follow with nothing running: %q", out)
	}
}
