package attest_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

func sampleRequest() *attest.BuildRequest {
	return &attest.BuildRequest{Project: "cuprated", Version: "0.2.0", GitCommit: strings.Repeat("ab", 20),
		Requester: "rm", RequestedAt: time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC), Note: "rc1"}
}

func TestRequestRoundTrip(t *testing.T) {
	t.Parallel()
	b := sampleRequest().Encode()
	r, err := attest.DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Encode(), b) {
		t.Fatalf("re-encoding differs:\n%s", b)
	}
	for name, bad := range map[string][]byte{
		"spaces":           bytes.Replace(b, []byte(`,"note"`), []byte(`, "note"`), 1),
		"short sha":        bytes.Replace(b, []byte(strings.Repeat("ab", 20)), []byte("abab"), 1),
		"unknown":          bytes.Replace(b, []byte(`{"git_commit"`), []byte(`{"extra":1,"git_commit"`), 1),
		"no final newline": bytes.TrimSuffix(b, []byte("\n")),
	} {
		if _, err := attest.DecodeRequest(bad); err == nil {
			t.Errorf("%s: accepted\n%s", name, bad)
		}
	}
	f := &attest.BuildFailure{Project: "cuprated", Version: "0.2.0", GitCommit: strings.Repeat("ab", 20), BuilderID: "carol",
		Stage: "guix-build", ExitCode: 1, Error: "stage guix-build exited with status 1",
		LogTail: attest.LogTail([]string{"ok", "ERROR: \x1b[31mboom"}), FailedAt: time.Date(2026, 12, 1, 22, 5, 0, 0, time.UTC)}
	fb := f.Encode()
	g, err := attest.DecodeFailure(fb)
	if err != nil || !bytes.Equal(g.Encode(), fb) {
		t.Fatalf("failure round trip: %v\n%s", err, fb)
	}
}

// TestCurrentRequestOrder: the judged request is the latest by a trusted
// key whatever the order of the documents.
func TestCurrentRequestOrder(t *testing.T) {
	t.Parallel()
	ts := attest.TrustSet{"A": "rm"}
	var claims []attest.Claim
	for i := 0; i < 6; i++ {
		r := sampleRequest()
		r.RequestedAt = r.RequestedAt.Add(time.Duration(i%3) * time.Hour)
		fp := "A"
		if i == 5 {
			fp, r.RequestedAt = "B", r.RequestedAt.Add(10*time.Hour) // untrusted, latest
		}
		var id attest.ID
		id[0] = byte(i)
		claims = append(claims, attest.Claim{Doc: id, Statement: attest.Statement{Request: r},
			Verification: attest.Verification{Status: attest.StatusGood, Fingerprint: fp}})
	}
	want, _ := attest.CurrentRequest(claims, ts)
	if want == nil || want.Verification.Fingerprint != "A" || want.Doc[0] != 2 {
		t.Fatalf("picked %+v", want)
	}
	rng := rand.New(rand.NewPCG(12, 0))
	for i := 0; i < 50; i++ {
		rng.Shuffle(len(claims), func(i, j int) { claims[i], claims[j] = claims[j], claims[i] })
		if got, _ := attest.CurrentRequest(claims, ts); got.Doc != want.Doc {
			t.Fatalf("order changed the pick: %v, want %v", got.Doc, want.Doc)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(sampleRequest().Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := attest.DecodeRequest(b)
		if err == nil && !bytes.Equal(r.Encode(), b) {
			t.Fatalf("accepted a non-canonical request:\n%q", b)
		}
	})
}

func FuzzDecodeFailure(f *testing.F) {
	f.Add([]byte(`{"builder_id":"c"}`))
	f.Add((&attest.BuildFailure{Project: "p", Version: "1.0", GitCommit: strings.Repeat("0a", 20), BuilderID: "carol",
		Stage: "guix-build", ExitCode: 2, LogTail: []string{"x"}, FailedAt: time.Unix(1e9, 0)}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := attest.DecodeFailure(b)
		if err == nil && !bytes.Equal(r.Encode(), b) {
			t.Fatalf("accepted a non-canonical failure:\n%q", b)
		}
	})
}

// TestRequestDocumentsVerifyInGPG: the request loop's documents are
// canonical JSON with a detached OpenPGP signature, so what rbnode signs
// gpg --verify accepts, what gpg signs rbnode accepts, and one changed
// byte fails in both.
func TestRequestDocumentsVerifyInGPG(t *testing.T) {
	t.Parallel()
	req := sampleRequest()
	fail := &attest.BuildFailure{Project: req.Project, Version: req.Version, GitCommit: req.GitCommit, BuilderID: "carol",
		Stage: "guix-build", ExitCode: 1, Error: "stage guix-build exited with status 1",
		LogTail: attest.LogTail([]string{"building...", "error: boom"}), FailedAt: req.RequestedAt.Add(time.Minute)}
	docs := []struct {
		kind attest.Kind
		name string
		body []byte
	}{
		{attest.KindRequest, attest.RequestName, req.Encode()},
		{attest.KindBuildFailure, attest.FailureName, fail.Encode()},
	}
	now := time.Now()
	sk := testKey(t, "Release Manager")
	fpr := sk.Public().Fingerprint
	g := newGPG(t)
	g.importKey(sk.Public().Armored())
	gfpr := g.genKey("GPG Manager <gm@example.org>", "ed25519", "sign", "never", "")
	gkey := readKey(t, g.must(nil, "--armor", "--export", gfpr))
	for _, d := range docs {
		t.Run(string(d.kind), func(t *testing.T) {
			tampered := flipByte(d.body, len(d.body)/2)
			sig := mustSign(t, sk, d.body, now)
			for form, s := range map[string][]byte{"armoured": sig, "binary": dearmorSig(t, sig)} {
				if v := g.verify(s, d.body); !v.ok || !v.has("GOODSIG") || v.validFPR != fpr {
					t.Errorf("gpg --verify of rbnode's %s signature over %s: %+v, want GOODSIG by %s", form, d.name, v, fpr)
				}
				if v := g.verify(s, tampered); v.ok || !v.has("BADSIG") {
					t.Errorf("gpg accepts rbnode's %s signature over a changed %s: %+v", form, d.name, v)
				}
			}
			// Signed by gpg, read by rbnode as a document of its kind.
			gsig := g.sign(gfpr, d.body, "--armor")
			doc := &attest.Document{Kind: d.kind, Name: d.name, Body: d.body, Signature: gsig}
			p, err := doc.Parse()
			if err != nil {
				t.Fatalf("Parse of a gpg-signed %s: %v", d.name, err)
			}
			if p.Statement.GitCommit != req.GitCommit || p.Statement.Version != req.Version {
				t.Errorf("parsed %s says %s %s, want %s %s", d.name, p.Statement.Version, p.Statement.GitCommit, req.Version, req.GitCommit)
			}
			wantStatus(t, verify(t, d.body, gsig, now, gkey), attest.StatusGood, gfpr)
			wantStatus(t, verify(t, tampered, gsig, now, gkey), attest.StatusBadSignature, gfpr)
		})
	}
}

// requestClaim is a trusted-or-not request for commit, by signer, at hour
// h of a fixed day.
func requestClaim(doc byte, signer, commit string, h int) attest.Claim {
	r := sampleRequest()
	r.Project, r.Version, r.GitCommit, r.Requester = "bitcoin", "1.0", commit, signer
	r.RequestedAt = r.RequestedAt.Add(time.Duration(h) * time.Hour)
	return attest.Claim{Doc: attest.ID{doc}, Signer: signer, File: attest.RequestName,
		Statement:    attest.Statement{Project: r.Project, Version: r.Version, GitCommit: commit, Request: r},
		Verification: attest.Verification{Status: attest.StatusGood, Fingerprint: fp(signer)}}
}

func failureClaim(doc byte, builder, commit string) attest.Claim {
	f := &attest.BuildFailure{Project: "bitcoin", Version: "1.0", GitCommit: commit, BuilderID: builder,
		Stage: "guix-build", ExitCode: 1, Error: "stage guix-build exited with status 1", LogTail: []string{"boom"},
		FailedAt: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	return attest.Claim{Doc: attest.ID{doc}, Signer: builder, File: attest.FailureName,
		Statement:    attest.Statement{Project: f.Project, Version: f.Version, GitCommit: commit, BuilderID: builder, Failure: f},
		Verification: attest.Verification{Status: attest.StatusGood, Fingerprint: fp(builder)}}
}

// TestTallyRequest: with a trusted request, only attestations of its
// commit count; another commit is reported as such, a failure and
// silence per builder, a later request supersedes an earlier one, an
// untrusted request is not judged, and none of it depends on order.
func TestTallyRequest(t *testing.T) {
	t.Parallel()
	c1, c2 := strings.Repeat("c1", 20), strings.Repeat("c2", 20)
	ts := trust("alice", "bob", "carol", "dave", "erin", "rm")
	base := claims(
		tallyClaim{doc: 1, builder: "alice", commit: c2, entries: []string{"a.tar=x"}},
		tallyClaim{doc: 2, builder: "bob", commit: c2, entries: []string{"a.tar=x"}},
		tallyClaim{doc: 3, builder: "carol", commit: c1, entries: []string{"a.tar=y"}},
	)
	base = append(base, failureClaim(4, "dave", c2), failureClaim(5, "erin", c1),
		requestClaim(6, "rm", c1, 0), requestClaim(7, "rm", c2, 1), requestClaim(8, "mallory", c1, 5))

	check := func(t *testing.T, cs []attest.Claim) *attest.Report {
		r := attest.Tally("bitcoin", "1.0", cs, ts, 2)
		rr := r.Request
		if rr == nil || rr.GitCommit != c2 || rr.Document != (attest.ID{7}).String() || rr.Requester.Name != "rm" {
			t.Fatalf("judged request %+v, want rm's later one for %s", rr, c2)
		}
		if r.Verdict != attest.Consensus {
			t.Errorf("verdict %s, want consensus of alice and bob on %s (carol's %s not counted)", r.Verdict, c2, c1)
		}
		if len(rr.Superseded) != 1 || rr.Superseded[0].Document != (attest.ID{6}).String() {
			t.Errorf("superseded %+v, want the earlier request", rr.Superseded)
		}
		if len(rr.DifferentCommit) != 1 || rr.DifferentCommit[0].Signer != "carol" {
			t.Errorf("different commit %+v, want carol's", rr.DifferentCommit)
		}
		states := map[string]string{}
		for _, a := range rr.Answers {
			states[a.Name] = a.State
			if a.State == attest.AnswerFailed && (a.Failure == nil || a.Failure.Stage != "guix-build" || a.Failure.ExitCode != 1) {
				t.Errorf("%s's failure %+v, want guix-build exit 1", a.Name, a.Failure)
			}
		}
		want := map[string]string{"alice": "attested", "bob": "attested", "carol": "different_commit", "dave": "failed", "erin": "silent"}
		if !reflect.DeepEqual(states, want) {
			t.Errorf("answers %v, want %v (erin failed the superseded commit only; rm is the requester)", states, want)
		}
		if !slices.ContainsFunc(r.Untrusted, func(d attest.DocRef) bool { return d.Signer == "mallory" }) {
			t.Errorf("mallory's request is not listed as untrusted: %+v", r.Untrusted)
		}
		return r
	}
	want, _ := json.Marshal(check(t, base))
	rng := rand.New(rand.NewPCG(12, 0))
	for i := 0; i < 30; i++ {
		cs := slices.Clone(base)
		rng.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
		if got, _ := json.Marshal(check(t, cs)); string(got) != string(want) {
			t.Fatalf("order %d changed the report:\n%s\nwant\n%s", i, got, want)
		}
	}

	// Without a trusted request, every commit counts as before.
	r := attest.Tally("bitcoin", "1.0", base[:3], ts, 2)
	if r.Request != nil || r.Verdict != attest.Divergence {
		t.Errorf("without a request: request %+v, verdict %s, want none and divergence", r.Request, r.Verdict)
	}
}
