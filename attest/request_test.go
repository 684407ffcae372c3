package attest_test

import (
	"bytes"
	"math/rand"
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
	rng := rand.New(rand.NewSource(12))
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
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := attest.DecodeFailure(b)
		if err == nil && !bytes.Equal(r.Encode(), b) {
			t.Fatalf("accepted a non-canonical failure:\n%q", b)
		}
	})
}
