package attest_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rbnode/rbnode/attest"
)

// Builders of the hand-made claims: fingerprints are 40 hex digits made
// from the name's first letter.
func fp(name string) string { return strings.Repeat(fmt.Sprintf("%02X", name[0]), 20) }

func hash(c byte) string { return strings.Repeat(string(c), 64) }

// tallyClaim builds a claim by builder over "name=hashchar" entries.
type tallyClaim struct {
	doc     byte // document id
	builder string
	status  attest.Status
	commit  string
	env     map[string]string
	entries []string
}

func (c tallyClaim) claim() attest.Claim {
	st := attest.Statement{Project: "bitcoin", Version: "1.0", GitCommit: c.commit, Env: c.env}
	for _, e := range c.entries {
		name, h, _ := strings.Cut(e, "=")
		st.Artifacts = append(st.Artifacts, attest.Entry{Name: name, SHA256: hash(h[0])})
	}
	status := c.status
	if status == "" {
		status = attest.StatusGood
	}
	return attest.Claim{
		Doc: attest.ID{c.doc}, Signer: c.builder, File: fmt.Sprintf("doc%d", c.doc), Statement: st,
		Verification: attest.Verification{Status: status, Fingerprint: fp(c.builder), KeyID: fp(c.builder)[24:], Detail: "detail of " + string(status)},
	}
}

func claims(cs ...tallyClaim) []attest.Claim {
	var out []attest.Claim
	for _, c := range cs {
		out = append(out, c.claim())
	}
	return out
}

func trust(names ...string) attest.TrustSet {
	ts := attest.TrustSet{}
	for _, n := range names {
		ts[fp(n)] = n
	}
	return ts
}

var everyone = trust("alice", "bob", "carol", "dave", "erin", "frank")

// groups summarises a report: artifact -> "hash:builder,builder" strings.
func groups(r *attest.Report) map[string][]string {
	out := map[string][]string{}
	for _, a := range r.Artifacts {
		for _, h := range a.Hashes {
			var names []string
			for _, b := range h.Builders {
				names = append(names, b.Name)
			}
			out[a.Name] = append(out[a.Name], h.SHA256[:1]+":"+strings.Join(names, ","))
		}
	}
	return out
}

func artifact(t *testing.T, r *attest.Report, name string) attest.ArtifactReport {
	t.Helper()
	for _, a := range r.Artifacts {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("no artifact %s in the report", name)
	return attest.ArtifactReport{}
}

func TestTallyQuorum(t *testing.T) {
	t.Parallel()
	names := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	for quorum := 1; quorum <= 5; quorum++ {
		for _, n := range []int{quorum - 1, quorum, quorum + 1} {
			if n == 0 {
				continue
			}
			want := attest.Pending
			if n >= quorum {
				want = attest.Consensus
			}
			t.Run(fmt.Sprintf("quorum %d, %d agree", quorum, n), func(t *testing.T) {
				t.Parallel()
				var cs []tallyClaim
				for i := range n {
					cs = append(cs, tallyClaim{doc: byte(i), builder: names[i], entries: []string{"x-1.0.zip=a"}})
				}
				r := attest.Tally("bitcoin", "1.0", claims(cs...), everyone, quorum)
				if r.Verdict != want || r.Artifacts[0].Verdict != want {
					t.Errorf("release %s, artifact %s; want %s", r.Verdict, r.Artifacts[0].Verdict, want)
				}
				if r.Quorum != quorum || len(r.Builders) != n {
					t.Errorf("quorum %d, %d builders", r.Quorum, len(r.Builders))
				}
			})
		}
	}
	t.Run("quorum below 1 is 1", func(t *testing.T) {
		t.Parallel()
		r := attest.Tally("bitcoin", "1.0", claims(tallyClaim{doc: 1, builder: "alice", entries: []string{"x-1.0.zip=a"}}), everyone, 0)
		if r.Quorum != 1 || r.Verdict != attest.Consensus {
			t.Errorf("quorum %d, verdict %s", r.Quorum, r.Verdict)
		}
	})
	t.Run("no claims", func(t *testing.T) {
		t.Parallel()
		r := attest.Tally("bitcoin", "1.0", nil, everyone, 3)
		if r.Verdict != attest.Pending || len(r.Artifacts) != 0 {
			t.Errorf("verdict %s with %d artifacts, want pending with none", r.Verdict, len(r.Artifacts))
		}
	})
	t.Run("one artifact short of quorum keeps the release pending", func(t *testing.T) {
		t.Parallel()
		r := attest.Tally("bitcoin", "1.0", claims(
			tallyClaim{doc: 1, builder: "alice", entries: []string{"x-1.0.zip=a", "y-1.0.zip=b"}},
			tallyClaim{doc: 2, builder: "bob", entries: []string{"x-1.0.zip=a", "y-1.0.zip=b"}},
			tallyClaim{doc: 3, builder: "carol", entries: []string{"x-1.0.zip=a"}},
		), everyone, 3)
		if r.Verdict != attest.Pending || artifact(t, r, "x-1.0.zip").Verdict != attest.Consensus || artifact(t, r, "y-1.0.zip").Verdict != attest.Pending {
			t.Errorf("verdicts %s / %s / %s", r.Verdict, artifact(t, r, "x-1.0.zip").Verdict, artifact(t, r, "y-1.0.zip").Verdict)
		}
		if m := artifact(t, r, "y-1.0.zip").Missing; len(m) != 1 || m[0].Name != "carol" || m[0].Fingerprint != fp("carol") {
			t.Errorf("y-1.0.zip missing %+v, want carol", m)
		}
	})
}

// TestTallyCountsBuildersOnce: a builder's two manifests (noncodesigned
// and all) repeat artifacts; the builder counts once.
func TestTallyCountsBuildersOnce(t *testing.T) {
	t.Parallel()
	r := attest.Tally("bitcoin", "1.0", claims(
		tallyClaim{doc: 1, builder: "alice", entries: []string{"x-1.0.zip=a"}},
		tallyClaim{doc: 2, builder: "alice", entries: []string{"x-1.0.zip=a", "x-1.0.zip=a", "y-1.0.zip=b"}},
		tallyClaim{doc: 3, builder: "bob", entries: []string{"x-1.0.zip=a"}},
	), everyone, 3)
	if r.Verdict != attest.Pending || artifact(t, r, "x-1.0.zip").Verdict != attest.Pending {
		t.Errorf("two builders reach a quorum of 3: %s", r.Verdict)
	}
	if got, want := groups(r)["x-1.0.zip"], []string{"a:alice,bob"}; !slices.Equal(got, want) {
		t.Errorf("x-1.0.zip groups %q, want %q", got, want)
	}
	if len(r.Equivocations) != 0 {
		t.Errorf("repeating the same hash is not equivocation: %+v", r.Equivocations)
	}
}

// TestTallyUntrusted: a good signature by a key the node does not trust
// never counts toward quorum (Bitcoin's verify.py once counted them) and is
// listed with its reason.
func TestTallyUntrusted(t *testing.T) {
	t.Parallel()
	r := attest.Tally("bitcoin", "1.0", claims(
		tallyClaim{doc: 1, builder: "alice", entries: []string{"x-1.0.zip=a"}},
		tallyClaim{doc: 2, builder: "bob", entries: []string{"x-1.0.zip=a"}},
		tallyClaim{doc: 3, builder: "mallory", entries: []string{"x-1.0.zip=a"}},
		tallyClaim{doc: 4, builder: "oscar", entries: []string{"x-1.0.zip=b"}},
	), trust("alice", "bob"), 3)
	if r.Verdict != attest.Pending {
		t.Errorf("verdict %s: untrusted signatures reached quorum or caused divergence", r.Verdict)
	}
	if got, want := groups(r)["x-1.0.zip"], []string{"a:alice,bob"}; !slices.Equal(got, want) {
		t.Errorf("groups %q, want %q", got, want)
	}
	var untrusted []string
	for _, u := range r.Untrusted {
		untrusted = append(untrusted, u.Signer+"/"+u.Reason+"/"+u.Fingerprint)
	}
	if want := []string{"mallory/untrusted_key/" + fp("mallory"), "oscar/untrusted_key/" + fp("oscar")}; !slices.Equal(untrusted, want) {
		t.Errorf("untrusted %q, want %q", untrusted, want)
	}
	for _, b := range append(r.Builders, artifact(t, r, "x-1.0.zip").Missing...) {
		if b.Name == "mallory" || b.Name == "oscar" {
			t.Errorf("untrusted %s listed as a builder", b.Name)
		}
	}
}

// TestTallyRejected: every non-good status is listed with its reason and
// detail and never counts, even for a trusted key.
func TestTallyRejected(t *testing.T) {
	t.Parallel()
	statuses := []attest.Status{attest.StatusBadSignature, attest.StatusUnknownKey, attest.StatusExpiredKey,
		attest.StatusRevokedKey, attest.StatusInvalidKey, attest.StatusFuture, attest.StatusWeakHash}
	cs := []tallyClaim{{doc: 0, builder: "alice", entries: []string{"x-1.0.zip=a"}}}
	names := []string{"bob", "carol", "dave", "erin", "frank", "bob", "carol"}
	for i, s := range statuses {
		cs = append(cs, tallyClaim{doc: byte(i + 1), builder: names[i], status: s, entries: []string{"x-1.0.zip=b"}})
	}
	r := attest.Tally("bitcoin", "1.0", claims(cs...), everyone, 1)
	if r.Verdict != attest.Consensus || !slices.Equal(groups(r)["x-1.0.zip"], []string{"a:alice"}) {
		t.Errorf("verdict %s groups %q: a rejected claim counted", r.Verdict, groups(r)["x-1.0.zip"])
	}
	if len(r.Rejected) != len(statuses) {
		t.Fatalf("%d rejected, want %d", len(r.Rejected), len(statuses))
	}
	for i, ref := range r.Rejected { // ordered by document id
		if ref.Reason != string(statuses[i]) || ref.Detail != "detail of "+string(statuses[i]) || ref.Signer != names[i] || ref.File == "" {
			t.Errorf("rejected[%d] = %+v, want reason %s by %s", i, ref, statuses[i], names[i])
		}
	}
}

// TestTallyEquivocation: a trusted key that signs two hashes for one
// artifact in two documents is an equivocation: both documents are kept
// as proof, its claims on that artifact do not count, and the release
// diverges.
func TestTallyEquivocation(t *testing.T) {
	t.Parallel()
	r := attest.Tally("bitcoin", "1.0", claims(
		tallyClaim{doc: 1, builder: "alice", entries: []string{"x-1.0.zip=a", "y-1.0.zip=c"}},
		tallyClaim{doc: 2, builder: "alice", entries: []string{"x-1.0.zip=b"}},
		tallyClaim{doc: 3, builder: "bob", entries: []string{"x-1.0.zip=a", "y-1.0.zip=c"}},
		tallyClaim{doc: 4, builder: "carol", entries: []string{"x-1.0.zip=a", "y-1.0.zip=c"}},
		tallyClaim{doc: 5, builder: "dave", entries: []string{"x-1.0.zip=a"}},
	), everyone, 3)
	if r.Verdict != attest.Divergence {
		t.Errorf("release %s, want divergence", r.Verdict)
	}
	if len(r.Equivocations) != 1 {
		t.Fatalf("equivocations %+v, want alice's on x-1.0.zip", r.Equivocations)
	}
	eq := r.Equivocations[0]
	if eq.Fingerprint != fp("alice") || eq.Name != "alice" || eq.Artifact != "x-1.0.zip" {
		t.Errorf("equivocation by %s (%s) on %s", eq.Name, eq.Fingerprint, eq.Artifact)
	}
	want := []attest.EquivocatedDoc{
		{Document: attest.ID{1}.String(), File: "doc1", SHA256: hash('a')},
		{Document: attest.ID{2}.String(), File: "doc2", SHA256: hash('b')},
	}
	if !reflect.DeepEqual(eq.Documents, want) {
		t.Errorf("proof %+v, want %+v", eq.Documents, want)
	}
	if got := groups(r); !slices.Equal(got["x-1.0.zip"], []string{"a:bob,carol,dave"}) || !slices.Equal(got["y-1.0.zip"], []string{"c:alice,bob,carol"}) {
		t.Errorf("groups %q: alice must count on y but not on x", got)
	}
	if x := artifact(t, r, "x-1.0.zip"); x.Verdict != attest.Consensus || !slices.ContainsFunc(x.Missing, func(b attest.Builder) bool { return b.Name == "alice" }) {
		t.Errorf("x-1.0.zip: %s, missing %+v", x.Verdict, x.Missing)
	}

	// One document naming an artifact twice with two hashes is one claim
	// on both hashes, which no other builder can match.
	r = attest.Tally("bitcoin", "1.0", claims(
		tallyClaim{doc: 1, builder: "alice", entries: []string{"x-1.0.zip=b", "x-1.0.zip=a"}},
		tallyClaim{doc: 2, builder: "bob", entries: []string{"x-1.0.zip=a"}},
	), everyone, 1)
	if r.Verdict != attest.Divergence || !slices.Equal(groups(r)["x-1.0.zip"], []string{"a:bob", "a:alice"}) {
		t.Errorf("verdict %s groups %q", r.Verdict, groups(r)["x-1.0.zip"])
	}
	if got := artifact(t, r, "x-1.0.zip").Hashes[1].SHA256; got != hash('a')+" "+hash('b') {
		t.Errorf("the self-contradicting group's hash is %q, want both sorted", got)
	}
}

// TestTallyCommits: builders that built different source commits make the
// release diverge, each commit listed with its builders.
func TestTallyCommits(t *testing.T) {
	t.Parallel()
	c1, c2 := strings.Repeat("1", 40), strings.Repeat("2", 40)
	r := attest.Tally("cuprated", "0.0.9", claims(
		tallyClaim{doc: 1, builder: "alice", commit: c1, entries: []string{"x-0.0.9.tar.gz=a"}},
		tallyClaim{doc: 2, builder: "bob", commit: c1, entries: []string{"x-0.0.9.tar.gz=a"}},
		tallyClaim{doc: 3, builder: "carol", commit: c2, entries: []string{"x-0.0.9.tar.gz=a"}},
	), everyone, 3)
	if r.Verdict != attest.Divergence || r.Artifacts[0].Verdict != attest.Consensus {
		t.Errorf("release %s, artifact %s; want divergence over an agreeing artifact", r.Verdict, r.Artifacts[0].Verdict)
	}
	var got []string
	for _, g := range r.Commits {
		var names []string
		for _, b := range g.Builders {
			names = append(names, b.Name)
		}
		got = append(got, g.GitCommit[:1]+":"+strings.Join(names, ","))
	}
	if want := []string{"1:alice,bob", "2:carol"}; !slices.Equal(got, want) {
		t.Errorf("commits %q, want %q", got, want)
	}
}

// TestTallyDiffers: a divergent artifact names the build-environment
// fields whose values differ, and each group's values.
func TestTallyDiffers(t *testing.T) {
	t.Parallel()
	env := func(rustc, guix string) map[string]string {
		return map[string]string{"rustc_version": rustc, "guix_channel_commit": guix, "guix_system": "x86_64-linux", "cargo_version": "cargo 1.84.0"}
	}
	r := attest.Tally("cuprated", "0.0.9", claims(
		tallyClaim{doc: 1, builder: "alice", env: env("rustc 1.84.0", "g1"), entries: []string{"x-0.0.9.tar.gz=a", "src-0.0.9.tar.gz=s"}},
		tallyClaim{doc: 2, builder: "bob", env: env("rustc 1.84.0", "g1"), entries: []string{"x-0.0.9.tar.gz=a", "src-0.0.9.tar.gz=s"}},
		tallyClaim{doc: 3, builder: "carol", env: env("rustc 1.85.0", "g2"), entries: []string{"x-0.0.9.tar.gz=b", "src-0.0.9.tar.gz=s"}},
	), everyone, 2)
	x := artifact(t, r, "x-0.0.9.tar.gz")
	if x.Verdict != attest.Divergence || r.Verdict != attest.Divergence {
		t.Fatalf("x: %s, release %s", x.Verdict, r.Verdict)
	}
	if want := []string{"guix_channel_commit", "rustc_version"}; !slices.Equal(x.Differs, want) {
		t.Errorf("differs %q, want %q", x.Differs, want)
	}
	if len(x.Hashes) != 2 || x.Hashes[0].Environment["rustc_version"][0] != "rustc 1.84.0" || x.Hashes[1].Environment["rustc_version"][0] != "rustc 1.85.0" {
		t.Errorf("environments %+v", x.Hashes)
	}
	if src := artifact(t, r, "src-0.0.9.tar.gz"); src.Verdict != attest.Consensus || src.Differs == nil || len(src.Differs) != 0 {
		t.Errorf("agreeing artifact: %s, differs %#v (want an empty list)", src.Verdict, src.Differs)
	}
	// Manifests report no environment: a divergent artifact's differs is
	// an empty list in JSON, never null or absent.
	m := attest.Tally("bitcoin", "1.0", claims(
		tallyClaim{doc: 1, builder: "alice", entries: []string{"x-1.0.zip=a"}},
		tallyClaim{doc: 2, builder: "bob", entries: []string{"x-1.0.zip=b"}},
	), everyone, 2)
	if b, _ := json.Marshal(artifact(t, m, "x-1.0.zip")); !strings.Contains(string(b), `"differs":[]`) {
		t.Errorf("divergent manifest artifact: %s", b)
	}
}

// TestTallyDeterministic: the same claims in any order give the same
// report, byte for byte.
func TestTallyDeterministic(t *testing.T) {
	t.Parallel()
	env := map[string]string{"rustc_version": "1", "guix_channel_commit": "g"}
	env2 := map[string]string{"rustc_version": "2", "guix_channel_commit": "g"}
	cs := claims(
		tallyClaim{doc: 9, builder: "alice", env: env, commit: strings.Repeat("a", 40), entries: []string{"x-1.0.zip=a", "y-1.0.zip=c"}},
		tallyClaim{doc: 3, builder: "alice", env: env, entries: []string{"x-1.0.zip=b"}},
		tallyClaim{doc: 7, builder: "bob", env: env2, commit: strings.Repeat("b", 40), entries: []string{"x-1.0.zip=a", "y-1.0.zip=d"}},
		tallyClaim{doc: 1, builder: "carol", env: env, entries: []string{"y-1.0.zip=c", "z-1.0.zip=e"}},
		tallyClaim{doc: 5, builder: "dave", env: env2, entries: []string{"y-1.0.zip=d", "z-1.0.zip=e"}},
		tallyClaim{doc: 2, builder: "erin", status: attest.StatusRevokedKey, entries: []string{"z-1.0.zip=f"}},
		tallyClaim{doc: 4, builder: "mallory", entries: []string{"z-1.0.zip=f"}},
		tallyClaim{doc: 6, builder: "frank", env: env2, entries: []string{"y-1.0.zip=c", "z-1.0.zip=e"}},
	)
	ts := trust("alice", "bob", "carol", "dave", "erin", "frank")
	want, err := json.Marshal(attest.Tally("bitcoin", "1.0", cs, ts, 2))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		shuffled := slices.Clone(cs)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		got, err := json.Marshal(attest.Tally("bitcoin", "1.0", shuffled, ts, 2))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("shuffle %d gives a different report:\n%s\nwant:\n%s", i, got, want)
		}
	}
}
