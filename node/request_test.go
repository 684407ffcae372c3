package node

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// giveKey makes b the builder key of home (as `rbnode key import` would).
func giveKey(t testing.TB, home string, b builderKey) {
	t.Helper()
	armored, err := b.sk.Armored()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(home, KeyFile), armored)
}

// TestRequestGossipedAndJudged: a request signed at the release manager's
// daemon reaches a peer, which judges the release against its commit:
// per builder silent, attested, or attested another commit; a second
// request supersedes the first; a request by an untrusted key is kept
// aside (listed untrusted) and judged by no one.
func TestRequestGossipedAndJudged(t *testing.T) {
	rm, alice, bob, eve := newBuilder(t, "rm"), newBuilder(t, "alice"), newBuilder(t, "bob"), newBuilder(t, "eve")
	rmHome, eveHome := t.TempDir(), t.TempDir()
	giveKey(t, rmHome, rm)
	giveKey(t, eveHome, eve)
	rmd := startDaemon(t, rmHome, nil, nil, rm, alice, bob)
	peer := startDaemon(t, t.TempDir(), nil, []string{rmd.addr(t)}, rm, alice, bob)
	eved := startDaemon(t, eveHome, nil, []string{peer.addr(t)}, eve)
	for _, td := range []*testDaemon{rmd, peer, eved} {
		waitFor(t, 20*time.Second, "peers", func() bool { return len(td.d.Peers()) > 0 })
	}

	// eve's request: stored at the peer, untrusted, judged by no one.
	evil, err := eved.d.Request(t.Context(), RequestOptions{Version: "0.2.0", Commit: commitB})
	if err != nil {
		t.Fatal(err)
	}
	evilID, _ := attest.ParseID(evil.Document)
	waitFor(t, 20*time.Second, "the peer to keep eve's request", func() bool { return peer.has(evilID) })

	first, err := rmd.d.Request(t.Context(), RequestOptions{Version: "0.2.0", Commit: commitA, Note: "rc1"})
	if err != nil {
		t.Fatal(err)
	}
	if first.Published != 1 || first.Project != "cuprated" || first.Requester != "rm" || len(first.Supersedes) != 0 {
		t.Fatalf("request summary %+v", first)
	}
	id, _ := attest.ParseID(first.Document)
	waitFor(t, 20*time.Second, "the peer to store the request", func() bool { return peer.has(id) })
	r, err := peer.n.Status("", "0.2.0", 2)
	if err != nil {
		t.Fatal(err)
	}
	rr := r.Request
	if rr == nil || rr.Document != first.Document || rr.GitCommit != commitA || rr.Requester.Name != "rm" || rr.Note != "rc1" {
		t.Fatalf("judged request %+v, want rm's for %s", rr, commitA)
	}
	if got := answers(rr); got != "alice=silent bob=silent" {
		t.Errorf("answers %s, want both silent", got)
	}
	if len(r.Untrusted) != 1 || r.Untrusted[0].Document != evil.Document {
		t.Errorf("untrusted %+v, want eve's request", r.Untrusted)
	}

	publishDoc(t, rmd, alice, "0.2.0", sha('a')) // commit A
	tree := t.TempDir()
	p := bob.writeAttestation(t, tree, bob.attestation("0.2.0", sha('a'), commitB, "rustc 1.82.0"))
	if _, err := rmd.d.Publish(t.Context(), p, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the peer to judge both answers", func() bool {
		r, err = peer.n.Status("", "0.2.0", 2)
		return err == nil && answers(r.Request) == "alice=attested bob=different_commit"
	})
	if r.Verdict != attest.Pending || len(r.Request.DifferentCommit) != 1 || len(r.Commits) != 1 {
		t.Fatalf("verdict %s, different commit %+v, commits %+v: want pending, bob's commit B set aside", r.Verdict, r.Request.DifferentCommit, r.Commits)
	}

	// rc2 for commit B supersedes: bob counts now, alice does not.
	second, err := rmd.d.Request(t.Context(), RequestOptions{Version: "0.2.0", Commit: commitB, Note: "rc2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Supersedes) != 1 || second.Supersedes[0] != first.Document || !second.RequestedAt.After(first.RequestedAt) {
		t.Fatalf("second request %+v, want it later than and superseding %s", second, first.Document)
	}
	waitFor(t, 20*time.Second, "the peer to judge rc2", func() bool {
		r, err = peer.n.Status("", "0.2.0", 2)
		return err == nil && r.Request.Document == second.Document
	})
	if got := answers(r.Request); got != "alice=different_commit bob=attested" {
		t.Errorf("answers to rc2 %s", got)
	}
	if len(r.Request.Superseded) != 1 || r.Request.Superseded[0].Document != first.Document {
		t.Errorf("superseded %+v, want rc1", r.Request.Superseded)
	}
}

// answers summarises a request's answers: "name=state ...".
func answers(rr *attest.RequestReport) string {
	if rr == nil {
		return "no request"
	}
	s := ""
	for i, a := range rr.Answers {
		if i > 0 {
			s += " "
		}
		s += a.Name + "=" + a.State
	}
	return s
}

// TestRequestUsage: a request needs a full commit hash, a safe version
// and a builder key, and says so.
func TestRequestUsage(t *testing.T) {
	n := openTestNode(t)
	for name, o := range map[string]RequestOptions{
		"short commit": {Version: "0.2.0", Commit: "abc123"},
		"bad version":  {Version: "../0.2.0", Commit: commitA},
		"control note": {Version: "0.2.0", Commit: commitA, Note: "a\x1bb"},
	} {
		if _, _, err := n.Request(t.Context(), o); !errorsIs(err, ErrUsage) {
			t.Errorf("%s: %v, want a usage error", name, err)
		}
	}
	if _, _, err := n.Request(t.Context(), RequestOptions{Version: "0.2.0", Commit: commitA}); !errorsIs(err, ErrNoBuilderKey) {
		t.Errorf("without a builder key: %v, want ErrNoBuilderKey", err)
	}
}

// TestImportRequestLoopDocuments: request.json and build-failure.json
// with their .asc import from a tree like any document, and status
// judges them; one without its signature is rejected.
func TestImportRequestLoopDocuments(t *testing.T) {
	n := openTestNode(t)
	rm, carol := newBuilder(t, "rm"), newBuilder(t, "carol")
	trustBuilders(t, n, rm, carol)
	tree := t.TempDir()
	req := &attest.BuildRequest{Project: "cuprated", Version: "0.2.0", GitCommit: commitA, Requester: "rm", RequestedAt: testNow.Add(-2 * time.Hour)}
	fail := &attest.BuildFailure{Project: "cuprated", Version: "0.2.0", GitCommit: commitA, BuilderID: "carol", Stage: "guix-build",
		ExitCode: 1, Error: "stage guix-build exited with status 1", LogTail: []string{"error: boom"}, FailedAt: testNow.Add(-time.Hour)}
	rm.writeSigned(t, tree, "0.2.0", attest.RequestName, req.Encode())
	carol.writeSigned(t, tree, "0.2.0", attest.FailureName, fail.Encode())
	writeFile(t, filepath.Join(tree, "0.2.0", "rm", "build-failure.json"), fail.Encode()) // no .asc
	sum := mustImport(t, n, tree)
	if sum.Stored != 2 || sum.Rejected != 1 || sum.ByReason["missing_signature"] != 1 {
		t.Fatalf("import: %+v", sum)
	}
	r, err := n.Status("", "0.2.0", 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Request == nil || r.Request.GitCommit != commitA || answers(r.Request) != "carol=failed" {
		t.Fatalf("request %+v, want carol's failure on rm's request", r.Request)
	}
	if f := r.Request.Answers[0].Failure; f.Stage != "guix-build" || f.ExitCode != 1 || len(f.LogTail) != 1 {
		t.Errorf("failure %+v", f)
	}
}
