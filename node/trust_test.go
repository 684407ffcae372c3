package node

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// TestUntrustedDocumentCannotPoisonTheGate: one untrusted attestation
// claiming another project's version does not make the version ambiguous
// nor change its report; it is listed under its own project.
func TestUntrustedDocumentCannotPoisonTheGate(t *testing.T) {
	n := openTestNode(t)
	mustImport(t, n, guixSigs)
	trustGuixSigsKeys(t, n)
	before, err := n.Status("", "24.0", 3)
	if err != nil {
		t.Fatal(err)
	}
	mallory := newBuilder(t, "mallory")
	tree := t.TempDir()
	mallory.writeAttestation(t, tree, mallory.attestation("24.0", sha('e'), commitA, "rustc"))
	if _, err := n.AddKeys([]*attest.Key{mallory.sk.Public()}); err != nil { // known, not trusted
		t.Fatal(err)
	}
	if s := mustImport(t, n, tree); s.Stored != 1 {
		t.Fatalf("import of mallory's attestation: %+v", s.ImportProgress)
	}
	after, err := n.Status("", "24.0", 3)
	if err != nil {
		t.Fatalf("status 24.0 with an untrusted cuprated 24.0 beside it: %v", err)
	}
	if b, a := mustJSON(t, before), mustJSON(t, after); b != a {
		t.Fatalf("the report of 24.0 changed:\n%s\n%s", b, a)
	}
	r, err := n.Status("cuprated", "24.0", 3)
	if err != nil || len(r.Untrusted) != 1 || r.Verdict != attest.Pending {
		t.Fatalf("cuprated 24.0: %v %+v", err, r)
	}
	// Trusted, mallory does make 24.0 ambiguous: a real second project.
	trustBuilders(t, n, mallory)
	if _, err := n.Status("", "24.0", 3); !errorsIs(err, ErrUsage) {
		t.Fatalf("24.0 in two projects with trusted documents: %v, want a usage error", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// guixSigsKeyFiles returns the bytes of every key file of the test data.
func guixSigsKeyFiles(t *testing.T) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(guixSigs, "builder-keys", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("key files: %v %v", files, err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// verdicts maps each release a node knows to its verdict and builders.
func verdicts(t *testing.T, n *Node) map[string]string {
	t.Helper()
	rels, err := n.Store().Releases()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range rels {
		r, err := n.Status(k.Project, k.Version, 0)
		if err != nil {
			t.Fatal(err)
		}
		out[k.Project+" "+k.Version] = string(r.Verdict) + " " + mustJSON(t, r.Builders)
	}
	return out
}

// TestTrustAfterSync: b catches up from a while trusting no one, keeping
// only part of what it fetched (its untrusted budget is small), then
// trusts a's builders: every release's verdict and builder set become a's,
// the held documents at once and the dropped ones by the sync round the
// trust change starts.
func TestTrustAfterSync(t *testing.T) {
	a := startDaemon(t, t.TempDir(), nil, nil)
	mustImport(t, a.n, guixSigs)
	trustGuixSigsKeys(t, a.n)
	if err := a.d.trustChanged(); err != nil {
		t.Fatal(err)
	}
	want := verdicts(t, a.n)
	served := 0
	a.n.Store().Range(nil, a.d.trusts, func(attest.ID) bool { served++; return true })

	const budget = 40
	b := startDaemonWith(t, t.TempDir(), nil, []string{a.addr(t)}, daemonSetup{opts: DaemonOptions{MaxUntrusted: budget}})
	waitFor(t, 30*time.Second, "b to fill its untrusted budget", func() bool {
		n, _ := b.n.Store().Untrusted()
		return n == budget
	})
	if budget >= served {
		t.Fatalf("a serves %d documents: the budget of %d drops none", served, budget)
	}

	start := time.Now()
	if _, err := b.n.ApplyTrust(TrustRequest{Keys: guixSigsKeyFiles(t)}); err != nil {
		t.Fatal(err)
	}
	if err := b.d.trustChanged(); err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	waitFor(t, 30*time.Second, "b's verdicts to equal a's", func() bool {
		got = verdicts(t, b.n)
		return len(got) == len(want) && !slices.ContainsFunc(keysOf(want), func(k string) bool { return got[k] != want[k] })
	})
	t.Logf("%d releases agree %v after trust add (%d documents, %d kept while untrusted)", len(got), time.Since(start).Round(time.Millisecond), served, budget)
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestTrustChangesTakeEffectAtOnce: on a running daemon, trust remove, a
// revocation and trust add change the very next report, and a restart
// changes nothing.
func TestTrustChangesTakeEffectAtOnce(t *testing.T) {
	alice, bob, carol := newBuilder(t, "alice"), newBuilder(t, "bob"), newBuilder(t, "carol")
	home := t.TempDir()
	td := startDaemon(t, home, nil, nil, alice, bob, carol)
	tree := t.TempDir()
	for _, b := range []builderKey{alice, bob, carol} {
		b.writeAttestation(t, tree, b.attestation("0.5.0", sha('a'), commitA, "rustc 1.82.0"))
	}
	mustImport(t, td.n, tree)
	report := func(n *Node) *attest.Report {
		t.Helper()
		r, err := n.Status("", "0.5.0", 2)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	names := func(r *attest.Report) (out []string) {
		for _, b := range r.Builders {
			out = append(out, b.Name)
		}
		return out
	}
	if r := report(td.n); r.Verdict != attest.Consensus || len(r.Builders) != 3 {
		t.Fatalf("all trusted: %s %v", r.Verdict, names(r))
	}

	api := func(method, path string, body []byte) {
		t.Helper()
		rec := httptest.NewRecorder()
		td.d.apiHandler().ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewReader(body)))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
	}
	api(http.MethodDelete, "/v1/trust/"+carol.sk.Public().Fingerprint, nil)
	if r := report(td.n); !slices.Equal(names(r), []string{"alice", "bob"}) || len(r.Untrusted) != 1 {
		t.Fatalf("after trust remove carol: %v, %d untrusted", names(r), len(r.Untrusted))
	}
	revoked, err := bob.sk.RevokedPublic(true, "stolen", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := td.n.AddKeys([]*attest.Key{revoked}); err != nil {
		t.Fatal(err)
	}
	r := report(td.n)
	if !slices.Equal(names(r), []string{"alice"}) || r.Verdict != attest.Pending ||
		!slices.ContainsFunc(r.Rejected, func(d attest.DocRef) bool { return d.Reason == string(attest.StatusRevokedKey) }) {
		t.Fatalf("after bob's revocation: %s %v, rejected %+v", r.Verdict, names(r), r.Rejected)
	}
	apiTrust(t, td.d, carol.sk.Public().Bytes())
	before := report(td.n)
	if !slices.Equal(names(before), []string{"alice", "carol"}) || before.Verdict != attest.Consensus {
		t.Fatalf("after trust add carol: %s %v", before.Verdict, names(before))
	}

	td.shutdown()
	back := startDaemon(t, home, nil, nil)
	if a, b := mustJSON(t, before), mustJSON(t, report(back.n)); a != b {
		t.Fatalf("the report changed across a restart:\n%s\n%s", a, b)
	}
}
