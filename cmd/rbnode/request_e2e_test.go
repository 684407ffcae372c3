//go:build e2e

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upstreamRepo is a stand-in Cuprate repository with no tag, which the
// builders clone; commit adds a commit to it (the builders' clones lack
// it until they fetch) and returns its hash.
type upstreamRepo struct {
	t   *testing.T
	dir string
	n   int
}

func newUpstream(t *testing.T) *upstreamRepo {
	u := &upstreamRepo{t: t, dir: standin(t, filepath.Join(t.TempDir(), "upstream"))}
	u.git("tag", "-d", "cuprated-0.0.9", "cuprated-0.1.0")
	return u
}

func (u *upstreamRepo) git(args ...string) string {
	u.t.Helper()
	at := fmt.Sprintf("2025-07-%02dT12:00:00Z", u.n+1)
	cmd := exec.Command("git", append([]string{"-C", u.dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Stand-in", "GIT_AUTHOR_EMAIL=standin@example.org", "GIT_COMMITTER_NAME=Stand-in",
		"GIT_COMMITTER_EMAIL=standin@example.org", "GIT_AUTHOR_DATE="+at, "GIT_COMMITTER_DATE="+at)
	out, err := cmd.CombinedOutput()
	if err != nil {
		u.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit makes the tree say version and commits it.
func (u *upstreamRepo) commit(version, msg string) string {
	u.t.Helper()
	u.n++
	cargo := filepath.Join(u.dir, "binaries", "cuprated", "Cargo.toml")
	b, err := os.ReadFile(cargo)
	if err != nil {
		u.t.Fatal(err)
	}
	s := regexp.MustCompile(`(?m)^version = "[^"]*"`).ReplaceAllString(string(b), `version = "`+version+`"`)
	s += "# " + msg + "\n"
	if err := os.WriteFile(cargo, []byte(s), 0o644); err != nil {
		u.t.Fatal(err)
	}
	u.git("commit", "-q", "-a", "-m", msg)
	return u.git("rev-parse", "HEAD")
}

// fingerprintOf reads the fingerprint `rbnode key generate` printed.
func fingerprintOf(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`key ([0-9A-F]{40}) for`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no fingerprint in %q", out)
	}
	return m[1]
}

// TestE2ERequest: a release manager's node and three builder daemons on
// 127.0.0.1, no tag anywhere. `rbnode request` alone leads to consensus
// (status --wait exits 0); an rc2 with one builder made non-deterministic
// ends in divergence (exit 1) naming it; an rc3 where one builder's
// pipeline fails shows its signed build failure in status.
func TestE2ERequest(t *testing.T) {
	up := newUpstream(t)
	rmHome := t.TempDir()
	rmFP := fingerprintOf(t, must(t, rmHome, "key", "generate", "--name", "rm", "--email", "rm@example.org"))

	names := []string{"builder-a", "builder-b", "builder-c"}
	var homes, pubs []string
	for _, name := range names {
		h := t.TempDir()
		homes = append(homes, h)
		must(t, h, "key", "generate", "--name", name, "--email", name+"@example.org")
		p := filepath.Join(t.TempDir(), name+".asc")
		os.WriteFile(p, []byte(must(t, h, "key", "export")), 0o644)
		pubs = append(pubs, p)
		clone := filepath.Join(t.TempDir(), "cuprate")
		if out, err := exec.Command("git", "clone", "-q", up.dir, clone).CombinedOutput(); err != nil {
			t.Fatalf("git clone: %v\n%s", err, out)
		}
		// The builders list the release manager's key; they need not
		// trust it.
		os.WriteFile(filepath.Join(h, "config.toml"), []byte(fmt.Sprintf(`
[auto_build]
enabled = true
repo = %q
remote = "origin"
fetch_interval = "1h"
requests_from = [%q]
`, clone, rmFP)), 0o600)
	}
	for _, h := range append([]string{rmHome}, homes...) {
		must(t, h, append([]string{"trust", "add"}, pubs...)...)
	}
	rm := startDaemonProc(t, rmHome, nil)
	path := fakeGuixPath(t)
	builders := make([]*daemonProc, len(homes))
	startBuilder := func(i int, env ...string) {
		builders[i] = startDaemonProc(t, homes[i], append([]string{path}, env...), rm.addr(t))
	}
	for i := range homes {
		startBuilder(i)
	}
	restartBuilder := func(i int, env ...string) {
		p := builders[i]
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
		startBuilder(i, env...)
	}
	status := func(args ...string) (string, int) {
		out, err := rbnode(t, rmHome, append([]string{"status", "0.2.0"}, args...)...)
		return out, exitCode(err)
	}

	// rc1: the request alone leads to consensus of all three.
	c1 := up.commit("0.2.0", "cuprated 0.2.0 rc1")
	out := must(t, rmHome, "request", "0.2.0", "--commit", c1, "--note", "rc1")
	if !strings.Contains(out, "published through the daemon") {
		t.Fatalf("rbnode request:\n%s", out)
	}
	out, code := status("--quorum", "3", "--wait", "--timeout", "3m")
	if code != 0 || !strings.Contains(out, "cuprated 0.2.0: CONSENSUS (quorum 3, 3 builders attested, 4 trusted)") ||
		!strings.Contains(out, "build "+c1) {
		t.Fatalf("status 0.2.0 --quorum 3 --wait after rc1: exit %d\n%s", code, out)
	}
	for _, name := range names {
		if !regexp.MustCompile(`(?m)` + name + ` +attested$`).MatchString(out) {
			t.Fatalf("status does not show %s attested:\n%s", name, out)
		}
	}
	out, _ = rbnode(t, homes[0], "builds", "--json")
	var recs []struct{ Version, Commit, Tag, Status string }
	json.Unmarshal([]byte(out), &recs)
	if len(recs) != 1 || recs[0].Commit != c1 || recs[0].Tag != "" || recs[0].Status != "ok" {
		t.Fatalf("builder-a's builds: %s", out)
	}

	t.Logf("rc1: status --wait exit %d\n%s", code, out)

	// rc2, with builder-c's toolchain not deterministic: divergence.
	restartBuilder(2, "STANDIN_NONDETERMINISTIC=1")
	c2 := up.commit("0.2.0", "cuprated 0.2.0 rc2")
	must(t, rmHome, "request", "0.2.0", "--commit", c2, "--note", "rc2")
	out, code = status("--quorum", "3", "--wait", "--timeout", "3m")
	if code != 1 {
		t.Fatalf("status --wait after rc2: exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"DIVERGENCE", "build " + c2, "supersedes 1 earlier request", "builder-c", "differs: rustc_version"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status after rc2 lacks %q:\n%s", want, out)
		}
	}

	t.Logf("rc2: status --wait exit %d\n%s", code, out)

	// rc3, where builder-c's pipeline fails: its failure shows.
	restartBuilder(2, "STANDIN_FAIL=build")
	c3 := up.commit("0.2.0", "cuprated 0.2.0 rc3")
	must(t, rmHome, "request", "0.2.0", "--commit", c3, "--note", "rc3")
	eventually(t, 3*time.Minute, "rc3's answers: two attested, builder-c failed", func() bool {
		out, code = status("--quorum", "3")
		return code == 3 && strings.Contains(out, "build "+c3) && strings.Contains(out, "failed at guix-build (exit 1)") &&
			regexp.MustCompile(`(?m)builder-a +attested$`).MatchString(out) && regexp.MustCompile(`(?m)builder-b +attested$`).MatchString(out)
	})
	if !strings.Contains(out, "builder-c") || !strings.Contains(out, "| ") {
		t.Fatalf("status does not show builder-c's failure with its log:\n%s", out)
	}
	t.Logf("rc3: status --quorum 3 exit %d\n%s", code, out)
	// With builder-c's failure, three can never agree: --wait says so at once.
	out, code = status("--quorum", "3", "--wait", "--timeout", "3m")
	if code != 3 || !strings.Contains(out, "no quorum of 3 is possible") {
		t.Fatalf("status --quorum 3 --wait after rc3's failure: exit %d\n%s", code, out)
	}
	js, _ := rbnode(t, rmHome, "status", "0.2.0", "--quorum", "2", "--json")
	var r struct {
		Verdict string
		Request struct {
			GitCommit string `json:"git_commit"`
			Answers   []struct {
				Name    string
				State   string
				Failure *struct {
					Stage    string
					ExitCode int      `json:"exit_code"`
					LogTail  []string `json:"log_tail"`
				}
			}
			Superseded []json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	if r.Verdict != "consensus" || r.Request.GitCommit != c3 || len(r.Request.Superseded) != 2 {
		t.Fatalf("status --quorum 2 --json after rc3:\n%s", js)
	}
	for _, a := range r.Request.Answers {
		if a.Name == "builder-c" && (a.State != "failed" || a.Failure == nil || a.Failure.Stage != "guix-build" || a.Failure.ExitCode != 1 || len(a.Failure.LogTail) == 0) {
			t.Fatalf("builder-c's answer: %+v\n%s", a, js)
		}
	}
}
