//go:build e2e

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node"
)

// daemonProc is a real `rbnode daemon` process.
type daemonProc struct {
	home string
	cmd  *exec.Cmd
	log  *logBuffer
}

// logBuffer collects a process's output; the test reads it while the
// process writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDaemonProc starts `rbnode daemon` on home (with env added to the
// environment) and waits for its API.
func startDaemonProc(t *testing.T, home string, env []string, bootstrap ...string) *daemonProc {
	t.Helper()
	args := []string{"--home", home, "daemon", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--no-dht", "--log-level", "info"}
	for _, b := range bootstrap {
		args = append(args, "--bootstrap", b)
	}
	p := &daemonProc{home: home, cmd: exec.Command(rbnodeBin, args...), log: &logBuffer{}}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon %s log:\n%s", filepath.Base(home), p.log)
		}
	})
	daemonAddr(t, home, 20*time.Second)
	return p
}

// addr is the daemon's loopback multiaddr, as `rbnode id` prints it.
func (p *daemonProc) addr(t *testing.T) string { return daemonAddr(t, p.home, 5*time.Second) }

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func must(t *testing.T, home string, args ...string) string {
	t.Helper()
	out, err := rbnode(t, home, args...)
	if err != nil {
		t.Fatalf("rbnode %v: %v\n%s", args, err, out)
	}
	return out
}

// TestThreeDaemons: three daemon processes bootstrapped from each other's
// `rbnode id`; what is imported at the first shows in `rbnode status` at
// the third; the second is killed, more is published, and when restarted
// it catches up.
func TestE2EThreeDaemons(t *testing.T) {
	guixSigs, _ := filepath.Abs("../../testdata/guix.sigs")
	keys, _ := filepath.Glob(filepath.Join(guixSigs, "builder-keys", "*.gpg"))
	homes := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	for _, h := range homes {
		must(t, h, append([]string{"trust", "add"}, keys...)...)
	}
	// h1 builds too: its key is trusted everywhere.
	must(t, homes[0], "key", "generate", "--name", "builder-one")
	pub := filepath.Join(t.TempDir(), "one.asc")
	os.WriteFile(pub, []byte(must(t, homes[0], "key", "export")), 0o644)
	for _, h := range homes[1:] {
		must(t, h, "trust", "add", pub)
	}

	d1 := startDaemonProc(t, homes[0], nil)
	d2 := startDaemonProc(t, homes[1], nil, d1.addr(t))
	d3 := startDaemonProc(t, homes[2], nil, d1.addr(t), d2.addr(t))
	eventually(t, 20*time.Second, "peers", func() bool {
		out, _ := rbnode(t, homes[2], "peers", "--json")
		return strings.Count(out, `"id"`) >= 2
	})

	// Imported at the first (through its daemon), shown at the third.
	must(t, homes[0], "import", guixSigs)
	want := verdicts(t, must(t, homes[0], "status", "--json"))
	var got string
	eventually(t, 30*time.Second, "the third node to have every release", func() bool {
		out, _ := rbnode(t, homes[2], "status", "--json")
		got = verdicts(t, out)
		return got == want
	})
	out, err := rbnode(t, homes[2], "status", "26.0rc1")
	if code := exitCode(err); code != 1 || !strings.Contains(out, "divergent: bitcoin-26.0rc1-arm64-apple-darwin.zip") {
		t.Fatalf("status 26.0rc1 at the third node: exit %d\n%s", code, out)
	}

	// The second dies; the first publishes a new release; the second comes
	// back and catches up.
	d2.cmd.Process.Kill()
	d2.cmd.Wait()
	tree := t.TempDir()
	dir := filepath.Join(tree, "1.0", "builder-one")
	os.MkdirAll(dir, 0o755)
	sums := filepath.Join(dir, "all.SHA256SUMS")
	os.WriteFile(sums, []byte(fmt.Sprintf("%064x  proj-1.0-linux.tar.gz\n", 42)), 0o644)
	must(t, homes[0], "sign", sums)
	must(t, homes[0], "publish", tree)
	eventually(t, 30*time.Second, "the third node to have release 1.0", func() bool {
		_, err := rbnode(t, homes[2], "status", "1.0", "--quorum", "1")
		return exitCode(err) == 0
	})
	startDaemonProc(t, homes[1], nil, d3.addr(t))
	eventually(t, 30*time.Second, "the restarted second node to catch up", func() bool {
		_, err := rbnode(t, homes[1], "status", "1.0", "--quorum", "1")
		return exitCode(err) == 0
	})
	out, _ = rbnode(t, homes[1], "status", "--json")
	if got, want := verdicts(t, out), verdicts(t, must(t, homes[0], "status", "--json")); got != want {
		t.Fatalf("the restarted node differs:\n%s\nwant\n%s", got, want)
	}
}

// verdicts reduces `rbnode status --json` to what every node must agree
// on: each release's verdict, builders and artifacts. (Documents by keys
// nobody has stay with the node that imported them, so the rejected and
// untrusted counts may differ.)
func verdicts(t *testing.T, statusJSON string) string {
	t.Helper()
	var list []node.ReleaseSummary
	if err := json.Unmarshal([]byte(statusJSON), &list); err != nil {
		return "unreadable: " + err.Error()
	}
	var b strings.Builder
	for _, r := range list {
		fmt.Fprintf(&b, "%s %s %s builders=%d artifacts=%d agreed=%d divergent=%d\n",
			r.Project, r.Version, r.Verdict, r.Builders, r.Artifacts, r.Agreed, r.Divergent)
	}
	return b.String()
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// standin makes a stand-in Cuprate repository (builder/testdata) at dir.
func standin(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("../../builder/testdata/make-standin", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("make-standin: %v\n%s", err, out)
	}
	return dir
}

// fakeGuixPath is PATH with the stand-in's fake guix first.
func fakeGuixPath(t *testing.T) string {
	dir, err := filepath.Abs("../../builder/testdata/fakeguix")
	if err != nil {
		t.Fatal(err)
	}
	return "PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

func rbnodeEnv(t *testing.T, home string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(rbnodeBin, args...)
	cmd.Env = append(append(os.Environ(), "RBNODE_HOME="+home), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// threeBuilders gives each named builder a home with its own key and a
// stand-in Cuprate clone; every home trusts every builder's key, whose
// exported files are pubs.
func threeBuilders(t *testing.T, names []string) (homes, repos, pubs []string) {
	t.Helper()
	for _, name := range names {
		h := t.TempDir()
		homes = append(homes, h)
		repos = append(repos, standin(t, filepath.Join(t.TempDir(), "cuprate")))
		must(t, h, "key", "generate", "--name", name, "--email", name+"@example.org")
		p := filepath.Join(t.TempDir(), name+".asc")
		os.WriteFile(p, []byte(must(t, h, "key", "export")), 0o644)
		pubs = append(pubs, p)
	}
	for _, h := range homes {
		must(t, h, append([]string{"trust", "add"}, pubs...)...)
	}
	return homes, repos, pubs
}

// TestThreeBuilders: three daemons each build the stand-in release from
// their own clone and reach consensus, status naming all three; then one
// builder's build is not deterministic and the next release diverges,
// naming it and the toolchain field that differs.
func TestE2EThreeBuilders(t *testing.T) {
	names := []string{"builder-a", "builder-b", "builder-c"}
	homes, repos, pubs := threeBuilders(t, names)
	d1 := startDaemonProc(t, homes[0], nil)
	d2 := startDaemonProc(t, homes[1], nil, d1.addr(t))
	startDaemonProc(t, homes[2], nil, d1.addr(t), d2.addr(t))

	path := fakeGuixPath(t)
	for i, h := range homes {
		out, err := rbnodeEnv(t, h, []string{path}, "build", "0.0.9", "--repo", repos[i])
		if err != nil || !strings.Contains(out, "stored and published through the daemon") {
			t.Fatalf("%s build 0.0.9: %v\n%s", names[i], err, out)
		}
	}
	// The builds ran in the stand-in's container, which shows the
	// scripts nothing but their own clone.
	logs, _ := filepath.Glob(filepath.Join(homes[0], "builds", "0.0.9-*", "logs", "guix-build.log"))
	if len(logs) != 1 {
		t.Fatalf("guix-build logs %v", logs)
	}
	if b, err := os.ReadFile(logs[0]); err != nil || !strings.Contains(string(b), "guix shell: stand-in container (") {
		t.Fatalf("guix-build did not run in the stand-in's container: %v\n%s", err, b)
	}
	// What rbnode build signed, gpg accepts.
	gnupg := t.TempDir()
	gpg := func(args ...string) (string, error) {
		cmd := exec.Command("gpg", append([]string{"--homedir", gnupg, "--batch"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	defer exec.Command("gpgconf", "--homedir", gnupg, "--kill", "gpg-agent").Run()
	if out, err := gpg("--import", pubs[0]); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	att := filepath.Join(homes[0], "sigs", "contrib", "guix", "sigs", "0.0.9", names[0], "attestation.json")
	if out, err := gpg("--verify", att+".asc", att); err != nil || !strings.Contains(out, "Good signature") {
		t.Fatalf("gpg --verify of rbnode build's attestation: %v\n%s", err, out)
	}
	for i, h := range homes {
		var out string
		eventually(t, 30*time.Second, names[i]+" to see consensus on 0.0.9", func() bool {
			var err error
			out, err = rbnode(t, h, "status", "0.0.9")
			return err == nil
		})
		for _, name := range names {
			if !strings.Contains(out, name) {
				t.Fatalf("%s: status 0.0.9 does not name %s:\n%s", names[i], name, out)
			}
		}
		if !strings.Contains(out, "cuprated 0.0.9: CONSENSUS (quorum 3, 3 builders attested, 3 trusted)") {
			t.Fatalf("%s: status 0.0.9:\n%s", names[i], out)
		}
	}

	// 0.1.0: builder-c's toolchain is not deterministic.
	for i, h := range homes {
		env := []string{path}
		if i == 2 {
			env = append(env, "STANDIN_NONDETERMINISTIC=1")
		}
		if out, err := rbnodeEnv(t, h, env, "build", "0.1.0", "--repo", repos[i]); err != nil {
			t.Fatalf("%s build 0.1.0: %v\n%s", names[i], err, out)
		}
	}
	var out string
	eventually(t, 30*time.Second, "divergence on 0.1.0 at the first node", func() bool {
		var err error
		out, err = rbnode(t, homes[0], "status", "0.1.0")
		return exitCode(err) == 1 && strings.Count(out, "builder-") >= 3
	})
	for _, want := range []string{"DIVERGENCE", "divergent: cuprated-0.1.0-x86_64-unknown-linux-gnu.tar.gz", "builder-c", "differs: rustc_version"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status 0.1.0 lacks %q:\n%s", want, out)
		}
	}
	js, _ := rbnode(t, homes[0], "status", "0.1.0", "--json")
	var r struct {
		Artifacts []struct {
			Name    string
			Verdict string
			Differs []string
			Hashes  []struct{ Builders []struct{ Name string } }
		}
	}
	json.Unmarshal([]byte(js), &r)
	found := false
	for _, a := range r.Artifacts {
		if a.Verdict == "divergence" && len(a.Hashes) == 2 && len(a.Hashes[1].Builders) == 1 && a.Hashes[1].Builders[0].Name == "builder-c" {
			found = true
		}
	}
	if !found {
		t.Fatalf("the JSON does not single out builder-c:\n%s", js)
	}
}

// TestAutoBuild: a daemon with [auto_build] builds each release tag of its
// repository once and publishes it; restarted, it builds nothing again.
func TestE2EAutoBuild(t *testing.T) {
	home := t.TempDir()
	repo := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	must(t, home, "key", "generate", "--name", "auto")
	os.WriteFile(filepath.Join(home, "config.toml"), []byte(fmt.Sprintf(`
[auto_build]
enabled = true
repo = %q
remote = ""
fetch_interval = "10s"
`, repo)), 0o600)
	p := startDaemonProc(t, home, []string{fakeGuixPath(t)})
	eventually(t, 60*time.Second, "both releases built and published", func() bool {
		out, _ := rbnode(t, home, "builds", "--json")
		var recs []struct{ Version, Status string }
		json.Unmarshal([]byte(out), &recs)
		ok := 0
		for _, r := range recs {
			if r.Status == "ok" {
				ok++
			}
		}
		return ok == 2
	})
	for _, v := range []string{"0.0.9", "0.1.0"} {
		if _, err := rbnode(t, home, "status", v, "--quorum", "1"); err != nil {
			t.Fatalf("status %s after auto_build: %v", v, err)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()

	p = startDaemonProc(t, home, []string{fakeGuixPath(t)})
	eventually(t, 30*time.Second, "the restarted daemon to check the tags", func() bool {
		return strings.Contains(p.log.String(), "auto_build checked the release tags")
	})
	if !strings.Contains(p.log.String(), "new=0") {
		t.Fatalf("the restarted daemon found new releases:\n%s", p.log)
	}
	out, _ := rbnode(t, home, "builds", "--json")
	var recs []json.RawMessage
	json.Unmarshal([]byte(out), &recs)
	if len(recs) != 2 {
		t.Fatalf("%d build records after a restart, want 2:\n%s", len(recs), out)
	}
}

// TestOwnReleaseIsReproducible attests rbnode's own release build: two
// builders build this repository's HEAD with `make dist` through rbnode
// build --pipeline, each in its own work directory, and their signed
// manifests agree, so a node trusting both sees consensus.
func TestE2EOwnReleaseIsReproducible(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var homes, pubs []string
	for _, name := range []string{"self-a", "self-b"} {
		h := t.TempDir()
		must(t, h, "key", "generate", "--name", name)
		p := filepath.Join(t.TempDir(), name+".asc")
		os.WriteFile(p, []byte(must(t, h, "key", "export")), 0o644)
		homes, pubs = append(homes, h), append(pubs, p)
		if out, err := rbnode(t, h, "build", "0.0.0-test", "--repo", repo, "--commit", "HEAD", "--pipeline", "make dist", "--project", "rbnode"); err != nil {
			t.Fatalf("%s: rbnode build --pipeline 'make dist': %v\n%s", name, err, out)
		}
	}
	sums := func(h string) string {
		m, err := filepath.Glob(filepath.Join(h, "sigs", "0.0.0-test", "*", "all.SHA256SUMS"))
		if err != nil || len(m) != 1 {
			t.Fatalf("signed manifest in %s: %v %v", h, m, err)
		}
		b, _ := os.ReadFile(m[0])
		return string(b)
	}
	if a, b := sums(homes[0]), sums(homes[1]); a != b {
		t.Fatalf("two builds of the same commit differ:\n%s%s", a, b)
	}
	must(t, homes[0], append([]string{"trust", "add"}, pubs...)...)
	must(t, homes[0], "import", filepath.Join(homes[1], "sigs"))
	if out, err := rbnode(t, homes[0], "status", "0.0.0-test", "--quorum", "2"); err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
}

// TestE2EBuildFollow: a real `rbnode build` without a terminal says every
// --heartbeat which stage it is in and what it last wrote; a second
// process, `rbnode builds --follow`, shows that stage and its log as it
// grows, and ends when the build is interrupted.
func TestE2EBuildFollow(t *testing.T) {
	home := t.TempDir()
	repo := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	must(t, home, "key", "generate", "--name", "follower", "--email", "f@example.org")
	env := append(os.Environ(), "RBNODE_HOME="+home, fakeGuixPath(t), "STANDIN_HANG=build")

	build := exec.Command(rbnodeBin, "build", "0.0.9", "--repo", repo, "--heartbeat", "100ms")
	build.Env = env
	buildOut := &logBuffer{}
	build.Stdout, build.Stderr = buildOut, buildOut
	if err := build.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if build.ProcessState == nil {
			build.Process.Kill()
			build.Wait()
		}
	})
	eventually(t, time.Minute, "a heartbeat of the hanging guix-build", func() bool {
		return strings.Contains(buildOut.String(), "build: guix-build running for ") &&
			strings.Contains(buildOut.String(), "): stand-in: build is hanging")
	})

	follow := exec.Command(rbnodeBin, "builds", "--follow")
	follow.Env = env
	followOut := &logBuffer{}
	follow.Stdout, follow.Stderr = followOut, followOut
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if follow.ProcessState == nil {
			follow.Process.Kill()
			follow.Wait()
		}
	})
	defer func() {
		if t.Failed() {
			t.Logf("build:\n%s\nfollow:\n%s", buildOut, followOut)
		}
	}()
	eventually(t, time.Minute, "builds --follow to show the stage and the log", func() bool {
		out := followOut.String()
		return strings.Contains(out, "following build 0.0.9 (pid ") && strings.Contains(out, "== guix-build, running for ") &&
			strings.Contains(out, "\nstand-in: build is hanging")
	})

	build.Process.Signal(syscall.SIGINT)
	if err := build.Wait(); exitCode(err) != 3 {
		t.Fatalf("interrupted build: %v\n%s", err, buildOut)
	}
	if err := follow.Wait(); err != nil || !strings.Contains(followOut.String(), "== build 0.0.9 ended after ") {
		t.Fatalf("builds --follow: %v\n%s", err, followOut)
	}
}

// TestE2ETrustAfterCatchUp: b starts empty, catches up from a while
// trusting no one, then trusts a's builder keys on the running daemon.
// Every release's verdict and builder set become a's. It reads the full
// guix.sigs data set beside the repository when there is one (the
// figures in the log are then the ones docs/performance.md reports), else
// the repository's subset.
func TestE2ETrustAfterCatchUp(t *testing.T) {
	guixSigs, _ := filepath.Abs("../../../shared/testdata/guix.sigs")
	if _, err := os.Stat(guixSigs); err != nil {
		guixSigs, _ = filepath.Abs("../../testdata/guix.sigs")
	}
	keys, _ := filepath.Glob(filepath.Join(guixSigs, "builder-keys", "*.gpg"))
	a, b := t.TempDir(), t.TempDir()
	must(t, a, append([]string{"trust", "add"}, keys...)...)
	da := startDaemonProc(t, a, nil)
	var imported node.ImportSummary
	if err := json.Unmarshal([]byte(must(t, a, "import", guixSigs, "--json")), &imported); err != nil {
		t.Fatal(err)
	}
	// a shares every document but those whose key it lacks.
	shared := imported.Stored - imported.ByStatus[attest.StatusUnknownKey]
	want := verdicts(t, must(t, a, "status", "--json"))
	releases := strings.Count(want, "\n")

	startDaemonProc(t, b, nil, da.addr(t))
	// b keeps what a peer sends by keys it does not trust within that
	// peer's budget (untrusted_per_minute): it may hold all of a's
	// documents, or only the budget's worth; it waits until that settles.
	held, last, since := 0, -1, time.Now()
	eventually(t, 90*time.Second, "b to catch up, trusting no one", func() bool {
		var list []node.ReleaseSummary
		json.Unmarshal([]byte(must(t, b, "status", "--json")), &list)
		held = 0
		for _, r := range list {
			held += r.UntrustedCount
		}
		if held != last {
			last, since = held, time.Now()
		}
		return held == shared || held > 0 && time.Since(since) > 3*time.Second
	})
	start := time.Now()
	must(t, b, append([]string{"trust", "add"}, keys...)...)
	trustTook := time.Since(start)
	agreeing := func() int {
		out, _ := rbnode(t, b, "status", "--json")
		got := strings.Split(verdicts(t, out), "\n")
		n := 0
		for _, line := range strings.Split(want, "\n") {
			if line != "" && slices.Contains(got, line) {
				n++
			}
		}
		return n
	}
	atOnce := agreeing()
	eventually(t, 60*time.Second, "b's verdicts to equal a's", func() bool { return agreeing() == releases })
	took := time.Since(start)
	// The builder sets, release by release.
	var list []node.ReleaseSummary
	json.Unmarshal([]byte(must(t, a, "status", "--json")), &list)
	for _, r := range list {
		ra, rb := builderSet(t, a, r.Version, r.Project), builderSet(t, b, r.Version, r.Project)
		if ra != rb {
			t.Errorf("%s %s: builders at b %s, at a %s", r.Project, r.Version, rb, ra)
		}
	}
	t.Logf("%s: %d documents shared, %d held untrusted before trust add, %d releases; trust add of %d keys took %v; as it returned %d releases agreed, all %d within %v",
		guixSigs, shared, held, releases, len(keys), trustTook.Round(10*time.Millisecond), atOnce, releases, took.Round(10*time.Millisecond))
	if held == shared && atOnce != releases {
		t.Errorf("b held every document, yet only %d of %d releases agreed as soon as trust add returned", atOnce, releases)
	}
}

// builderSet is the builders of one release, as status --json lists them.
func builderSet(t *testing.T, home, version, project string) string {
	t.Helper()
	out, _ := rbnode(t, home, "status", version, "--project", project, "--json")
	var r struct {
		Verdict  string `json:"verdict"`
		Builders []struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"builders"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status %s at %s: %v\n%s", version, home, err, out)
	}
	return fmt.Sprint(r.Verdict, r.Builders)
}
