package node

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// upstreamWithCommit makes a stand-in upstream repository without tags,
// a builder's clone of it, then a new commit upstream (cuprated 0.2.0)
// that the clone lacks; it returns the clone and the new commit.
func upstreamWithCommit(t *testing.T) (clone, commit string) {
	t.Helper()
	up := filepath.Join(t.TempDir(), "upstream")
	clone = filepath.Join(t.TempDir(), "cuprate")
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_AUTHOR_NAME=Stand-in", "GIT_AUTHOR_EMAIL=s@example.org", "GIT_COMMITTER_NAME=Stand-in", "GIT_COMMITTER_EMAIL=s@example.org",
			"GIT_AUTHOR_DATE=2025-07-01T12:00:00Z", "GIT_COMMITTER_DATE=2025-07-01T12:00:00Z")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out, err := exec.Command("../builder/testdata/make-standin", up).CombinedOutput(); err != nil {
		t.Fatalf("make-standin: %v\n%s", err, out)
	}
	git(up, "tag", "-d", "cuprated-0.0.9", "cuprated-0.1.0")
	git(filepath.Dir(clone), "clone", "-q", up, clone)
	cargo := filepath.Join(up, "binaries", "cuprated", "Cargo.toml")
	b, err := os.ReadFile(cargo)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cargo, []byte(strings.Replace(string(b), `version = "0.1.0"`, `version = "0.2.0"`, 1)))
	git(up, "commit", "-q", "-a", "-m", "cuprated 0.2.0 candidate")
	return clone, string([]byte(git(up, "rev-parse", "HEAD"))[:40])
}

// TestRequestBuilds: a builder daemon builds a request signed by a key
// of requests_from from its clone, fetching the commit (no tag), and
// publishes the attestation; a request by a trusted key it does not list
// builds nothing; a failing build publishes a build failure with its
// stage, exit code and log; after a restart nothing is built again.
func TestRequestBuilds(t *testing.T) {
	fake, _ := filepath.Abs("../builder/testdata/fakeguix")
	t.Setenv("PATH", fake+string(os.PathListSeparator)+os.Getenv("PATH"))
	clone, commit := upstreamWithCommit(t)
	rm, carol, eve := newBuilder(t, "rm"), newBuilder(t, "carol"), newBuilder(t, "eve")
	rmHome, carolHome := t.TempDir(), t.TempDir()
	giveKey(t, rmHome, rm)
	giveKey(t, carolHome, carol)
	builderSetup := daemonSetup{config: func(c *Config) {
		c.AutoBuild = AutoBuildConfig{Enabled: true, Repo: clone, Remote: "origin", FetchInterval: Duration{time.Hour},
			TagPattern: "cuprated-{version}", RequestsFrom: []string{rm.sk.Public().Fingerprint, carol.sk.Public().Fingerprint}, QueueLimit: 4}
	}}
	rmd := startDaemon(t, rmHome, nil, nil, rm, carol, eve)
	cd := startDaemonWith(t, carolHome, nil, []string{rmd.addr(t)}, builderSetup, rm, carol, eve)
	waitFor(t, 20*time.Second, "peers", func() bool { return len(cd.d.Peers()) > 0 && len(rmd.d.Peers()) > 0 })

	// eve is trusted but not listed: her request is stored, never built.
	tree := t.TempDir()
	evil := &attest.BuildRequest{Project: "cuprated", Version: "0.2.0", GitCommit: commit, Requester: "eve", RequestedAt: testNow.Add(-time.Hour)}
	eve.writeSigned(t, tree, "0.2.0", attest.RequestName, evil.Encode())
	var evilID attest.ID
	if _, err := rmd.d.Publish(t.Context(), tree, ImportOptions{Document: func(id attest.ID) { evilID = id }}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the builder to store eve's request", func() bool { return cd.has(evilID) })

	first, err := rmd.d.Request(t.Context(), RequestOptions{Version: "0.2.0", Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	var r *attest.Report
	waitFor(t, 2*time.Minute, "carol's attestation of the requested commit", func() bool {
		r, err = rmd.n.Status("", "0.2.0", 1)
		return err == nil && answers(r.Request) == "carol=attested eve=silent"
	})
	if r.Verdict != attest.Consensus || len(r.Commits) != 1 || r.Commits[0].GitCommit != commit {
		t.Fatalf("verdict %s, commits %+v: want consensus at quorum 1 on %s", r.Verdict, r.Commits, commit)
	}
	builds, _ := cd.n.Builds()
	if len(builds) != 1 || builds[0].Commit != commit || builds[0].Tag != "" {
		t.Fatalf("builds %+v, want one of %s without a tag", builds, commit)
	}
	if cd.n.requestAnswered(evilID) {
		t.Errorf("eve's request was answered")
	}

	// The next build fails in guix-build: the builder says so, signed.
	t.Setenv("STANDIN_FAIL", "build")
	second, err := rmd.d.Request(t.Context(), RequestOptions{Version: "0.2.0", Commit: commit, Note: "again"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "carol's build failure", func() bool {
		r, err = rmd.n.Status("", "0.2.0", 1)
		if err != nil || r.Request.Document != second.Document {
			return false
		}
		for _, a := range r.Request.Answers {
			// carol's attestation of the same commit still answers it:
			// a failure shows once her key has only failed.
			if a.Name == "carol" && a.State == attest.AnswerAttested {
				return true
			}
		}
		return false
	})
	var failed *attest.FailureReport
	waitFor(t, 2*time.Minute, "the build failure document at the release manager", func() bool {
		docs, _ := rmd.n.store.Release("cuprated", "0.2.0")
		for _, d := range docs {
			if d.Record.Kind == attest.KindBuildFailure {
				st, err := d.Record.Document().Statement()
				if err == nil {
					failed = &attest.FailureReport{Stage: st.Failure.Stage, ExitCode: st.Failure.ExitCode, LogTail: st.Failure.LogTail, Error: st.Failure.Error}
					return st.Failure.Request.String() == second.Document
				}
			}
		}
		return false
	})
	if failed.Stage != "guix-build" || failed.ExitCode != 1 || len(failed.LogTail) == 0 {
		t.Fatalf("failure %+v, want guix-build exit 1 with its log", failed)
	}
	if builds, _ := cd.n.Builds(); len(builds) != 2 {
		t.Fatalf("%d builds, want 2", len(builds))
	}
	_ = first

	// A commit the remote does not have: a failure at stage source.
	missing := strings.Repeat("de", 20)
	third, err := rmd.d.Request(t.Context(), RequestOptions{Version: "0.2.0", Commit: missing})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "carol's failure to fetch the commit", func() bool {
		r, err = rmd.n.Status("", "0.2.0", 1)
		return err == nil && r.Request.Document == third.Document && answers(r.Request) == "carol=failed eve=silent"
	})
	if f := r.Request.Answers[0].Failure; f.Stage != "source" || !strings.Contains(f.Error, "commit "+missing+" is not in") {
		t.Fatalf("failure %+v, want stage source naming the missing commit", f)
	}

	// A builder that lists its own key builds its own requests.
	t.Setenv("STANDIN_FAIL", "")
	own, err := cd.d.Request(t.Context(), RequestOptions{Version: "0.2.0", Commit: commit, Note: "own"})
	if err != nil {
		t.Fatal(err)
	}
	ownID, _ := attest.ParseID(own.Document)
	waitFor(t, 2*time.Minute, "carol to answer her own request", func() bool { return cd.n.requestAnswered(ownID) })
	if builds, _ := cd.n.Builds(); len(builds) != 3 {
		t.Fatalf("%d builds, want 3", len(builds))
	}

	// Restarted, the builder finds nothing left to build.
	cd.shutdown()
	cd = startDaemonWith(t, carolHome, nil, []string{rmd.addr(t)}, builderSetup, rm, carol, eve)
	if n, err := cd.d.scanRequests(); err != nil || n != 0 {
		t.Fatalf("after a restart %d requests left to build (%v), want 0", n, err)
	}
}

// TestDroppedRequestsBuiltWhenDrained: requests that found the queue full
// are queued again from the store once it has drained, without a restart,
// each once.
func TestDroppedRequestsBuiltWhenDrained(t *testing.T) {
	n := openTestNode(t)
	rm := newBuilder(t, "rm")
	trustBuilders(t, n, rm)
	n.cfg.AutoBuild = AutoBuildConfig{Enabled: true, RequestsFrom: []string{rm.sk.Public().Fingerprint}, QueueLimit: 1}
	tree := t.TempDir()
	for _, v := range []string{"0.2.0", "0.3.0", "0.4.0"} {
		req := &attest.BuildRequest{Project: "cuprated", Version: v, GitCommit: commitA, Requester: "rm", RequestedAt: testNow.Add(-time.Hour)}
		rm.writeSigned(t, tree, v, attest.RequestName, req.Encode())
	}
	mustImport(t, n, tree)
	d := &Daemon{n: n, log: testLogger(t), requests: newRequestQueue(1)}
	if found, err := d.scanRequests(); err != nil || found != 3 || len(d.requests.ch) != 1 {
		t.Fatalf("found %d (%v), queued %d: want 3 found, 1 queued", found, err, len(d.requests.ch))
	}
	var built []string
	for len(d.requests.ch) > 0 { // the worker's loop, the build stood in for
		it := <-d.requests.ch
		built = append(built, it.req.Version)
		if err := n.markRequest(it.id, "attested"); err != nil {
			t.Fatal(err)
		}
		d.requestDone(it)
	}
	slices.Sort(built)
	if !slices.Equal(built, []string{"0.2.0", "0.3.0", "0.4.0"}) {
		t.Fatalf("built %v, want each of the 3 requests once", built)
	}
}

// TestRequestQueueBounded: past queue_limit, requests are dropped (and
// logged), not held in memory; a request is queued once.
func TestRequestQueueBounded(t *testing.T) {
	n := openTestNode(t)
	rm := newBuilder(t, "rm")
	n.cfg.AutoBuild = AutoBuildConfig{Enabled: true, RequestsFrom: []string{rm.sk.Public().Fingerprint}, QueueLimit: 2}
	d := &Daemon{n: n, log: testLogger(t), requests: newRequestQueue(2)}
	v := attest.Verification{Status: attest.StatusGood, Fingerprint: rm.sk.Public().Fingerprint}
	for i := range 5 {
		st := &attest.Statement{Request: &attest.BuildRequest{Version: "0.2.0", GitCommit: commitA}}
		d.offerRequest(attest.ID{byte(i)}, st, v)
		d.offerRequest(attest.ID{byte(i)}, st, v) // twice: queued once
	}
	if len(d.requests.ch) != 2 || len(d.requests.pending) != 2 {
		t.Fatalf("queue holds %d (%d pending), want the limit of 2", len(d.requests.ch), len(d.requests.pending))
	}
	other := attest.Verification{Status: attest.StatusGood, Fingerprint: commitB + "AB"}
	d.requests = newRequestQueue(2)
	d.offerRequest(attest.ID{9}, &attest.Statement{Request: &attest.BuildRequest{}}, other)
	if len(d.requests.ch) != 0 {
		t.Fatal("a request by an unlisted key was queued")
	}
}
