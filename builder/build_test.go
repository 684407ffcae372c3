package builder

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rbnode/rbnode/attest"
)

// TestBuildReproducible builds the stand-in's 0.0.9 from two clones in two
// directories, as two builders, and gets the same artifact and two correct,
// verifiable attestations.
func TestBuildReproducible(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	type builderRun struct {
		name, id, repo string
		key            *attest.SecretKey
		res            *Result
		err            error
		stages         []Stage
	}
	runs := []*builderRun{
		{name: "Alice", id: "alice@example.org", repo: filepath.Join(base, "alice", "cuprate")},
		{name: "Bob", id: "Bob (second host)", repo: filepath.Join(base, "bob", "src", "deep", "cuprate-clone")},
	}
	var commits map[string]string
	for _, r := range runs {
		_, commits = standin(t, r.repo)
		r.key = testKey(t, r.name)
	}
	dest := filepath.Join(base, "sigs-root")
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Go(func() {
			r.res, r.err = Build(t.Context(), Request{
				Repo: r.repo, Version: version009, WorkDir: filepath.Join(base, "work", strconv.Itoa(i)),
				Env: buildEnv(), Clock: testClock,
				Progress: func(p Progress) {
					if len(r.stages) == 0 || r.stages[len(r.stages)-1] != p.Stage {
						r.stages = append(r.stages, p.Stage)
					}
				},
				Sign: &Signing{Signer: r.key, BuilderID: r.id, Dest: dest},
			})
		})
	}
	wg.Wait()

	for _, r := range runs {
		if r.err != nil {
			t.Fatalf("%s: %v", r.id, r.err)
		}
	}
	a0, a1 := runs[0].res.Record.Artifacts, runs[1].res.Record.Artifacts
	if len(a0) != 2 || !slices.Equal(a0, a1) {
		t.Fatalf("the two builds differ:\n%v\n%v", a0, a1)
	}
	commit := commits[version009]
	distsrc := "cuprate-0.0.9-" + commit[:12] + "-src.tar.gz"
	if a0[0].Name != distsrc || a0[1].Name != artifact009 {
		t.Fatalf("artifacts %v, want %s and %s", a0, distsrc, artifact009)
	}

	for _, r := range runs {
		rec := r.res.Record
		if rec.Status != StatusOK || rec.Error != "" || rec.Commit != commit || rec.Tag != "cuprated-0.0.9" || rec.Kind != "guix" {
			t.Errorf("%s: record %+v", r.id, rec)
		}
		// Every subprocess stage ran once with a log, in order.
		var ran []Stage
		for _, s := range rec.Stages {
			if len(ran) == 0 || ran[len(ran)-1] != s.Stage {
				ran = append(ran, s.Stage)
			}
			if s.ExitCode != 0 || s.Log != filepath.Join(rec.WorkDir, "logs", string(s.Stage)+".log") {
				t.Errorf("%s: stage %+v", r.id, s)
			}
			if _, err := os.Stat(s.Log); err != nil {
				t.Error(err)
			}
		}
		wantRan := []Stage{StageSource, StageDistsrc, StageBuild, StageChecksums, StageCleanup}
		if !slices.Equal(ran, wantRan) {
			t.Errorf("%s: stages %v, want %v", r.id, ran, wantRan)
		}
		if want := append(wantRan, StageCheck, StageSign); !slices.Equal(r.stages, want) {
			t.Errorf("%s: progress reported %v, want %v", r.id, r.stages, want)
		}

		// The attestation holds every field of the contract.
		id, _ := attest.SanitizeBuilderID(r.id)
		a := attest.Attestation{
			Schema: attest.AttestationSchema, Package: "cuprated", Version: version009,
			GitCommit: commit, SourceDateEpoch: epoch009, GuixSystem: "x86_64-linux",
			RustTarget:        "x86_64-unknown-linux-gnu",
			Artifact:          attest.File{Filename: artifact009, SHA256: a0[1].SHA256, Size: a0[1].Size},
			Distsrc:           attest.File{Filename: distsrc, SHA256: a0[0].SHA256, Size: -1},
			GuixChannelCommit: ptr(channelGuix), RustcVersion: ptr(rustcLine), CargoVersion: ptr(cargoLine),
			BuilderID: r.id, AttestedAt: testTime,
		}
		s := r.res.Signed
		wantPath := filepath.Join(dest, "contrib", "guix", "sigs", version009, id, "attestation.json")
		if s == nil || s.Path != wantPath {
			t.Fatalf("%s: signed %+v, want it at %s", r.id, s, wantPath)
		}
		if !bytes.Equal(s.Document.Body, a.Encode()) {
			t.Errorf("%s: attestation\n%s\nwant\n%s", r.id, s.Document.Body, a.Encode())
		}
		checkSigned(t, s, r.key)
		if rec.DocumentPath != s.Path || rec.SignaturePath != s.SigPath || rec.DocumentKind != attest.KindAttestation {
			t.Errorf("%s: record names %s %s %s", r.id, rec.DocumentKind, rec.DocumentPath, rec.SignaturePath)
		}
		p, err := s.Document.Parse()
		if err != nil || p.Statement.BuilderID != r.id || p.Doc.Signer != id {
			t.Errorf("%s: document parse: %v %+v", r.id, err, p)
		}

		// The clone is gone, the user's repository has no worktree or
		// remote added; the outputs stay.
		if _, err := os.Stat(filepath.Join(rec.WorkDir, "src")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: clone still on disk: %v", r.id, err)
		}
		if wt, _ := git(r.repo, date009, "worktree", "list", "--porcelain"); strings.Count(wt, "worktree ") != 1 {
			t.Errorf("%s: git lists a worktree:\n%s", r.id, wt)
		}
		if remotes, _ := git(r.repo, date009, "remote"); remotes != "" {
			t.Errorf("%s: the repository has remotes %q", r.id, remotes)
		}
		if _, err := os.Stat(filepath.Join(rec.OutDir, artifact009)); err != nil {
			t.Error(err)
		}
	}
}

func ptr(s string) *string { return &s }

// TestRecordJSON pins the record's JSON field names.
func TestRecordJSON(t *testing.T) {
	t.Parallel()
	rec := Record{
		Kind: "guix", Repo: "/r", Version: "0.0.9", Tag: "cuprated-0.0.9", Commit: "c", BuilderID: "b",
		WorkDir: "/w", OutDir: "/w/out", Status: StatusFailed,
		Stages:       []StageRecord{{Stage: StageBuild, Command: []string{"x"}, Dir: "/d", DurationMS: 5, ExitCode: 1, Signal: "killed", TimedOut: true, Cancelled: true, Log: "/l", LastLine: "e"}},
		Artifacts:    []Artifact{{Name: "n", SHA256: "h", Size: 1}},
		DocumentKind: attest.KindAttestation, DocumentPath: "/p", SignaturePath: "/p.asc",
		Error: "e", Check: &CheckError{File: "f", Rule: RuleSums, Detail: "d"},
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"artifacts", "builder_id", "check", "commit", "document", "document_kind", "error", "finished_at",
		"kind", "out_dir", "repo", "signature", "stages", "started_at", "status", "tag", "version", "work_dir"}
	if keys := slices.Sorted(mapKeys(got)); !slices.Equal(keys, want) {
		t.Errorf("record keys %v, want %v", keys, want)
	}
	stage := got["stages"].([]any)[0].(map[string]any)
	wantStage := []string{"cancelled", "command", "dir", "duration_ms", "exit_code", "last_line", "log", "signal", "stage", "started_at", "timed_out"}
	if keys := slices.Sorted(mapKeys(stage)); !slices.Equal(keys, wantStage) {
		t.Errorf("stage keys %v, want %v", keys, wantStage)
	}
	if c := got["check"].(map[string]any); c["rule"] != "sha256sums" || c["file"] != "f" || c["detail"] != "d" {
		t.Errorf("check %v", c)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, rec) {
		t.Errorf("round trip: %v %+v", err, back)
	}
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestBuildNondeterministic makes the stand-in embed a nonce and report
// another toolchain: the artifact differs, and the verdict over the two
// attestations names rustc_version as what differs.
func TestBuildNondeterministic(t *testing.T) {
	t.Parallel()
	good, _ := goodOutput(t)
	repo, _ := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	bad := testKey(t, "Flaky Builder")
	res, err := Build(t.Context(), Request{
		Repo: repo, Version: version009, WorkDir: filepath.Join(t.TempDir(), "work"),
		Env: buildEnv("STANDIN_NONDETERMINISTIC=1"), Clock: testClock,
		Sign: &Signing{Signer: bad, BuilderID: "flaky", Dest: t.TempDir()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Record.Artifacts[1]; got.Name != artifact009 {
		t.Fatalf("artifact %v", got)
	}

	honest := testKey(t, "Honest Builder")
	s, err := Attest(t.Context(), good, AttestRequest{Version: version009, Now: testTime,
		Sign: Signing{Signer: honest, BuilderID: "honest", Dest: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	var claims []attest.Claim
	trusted := attest.TrustSet{}
	for _, c := range []struct {
		s  *Signed
		sk *attest.SecretKey
	}{{s, honest}, {res.Signed, bad}} {
		p, err := c.s.Document.Parse()
		if err != nil {
			t.Fatal(err)
		}
		v := attest.NewKeyring(c.sk.Public()).Verify(p.Doc.Body, p.Sig, testTime)
		claims = append(claims, attest.Claim{Doc: p.ID, Signer: p.Doc.Signer, File: p.Doc.Name, Statement: p.Statement, Verification: v})
		trusted[v.Fingerprint] = p.Doc.Signer
	}
	if claims[0].Statement.Artifacts[0].SHA256 == claims[1].Statement.Artifacts[0].SHA256 {
		t.Fatal("the non-deterministic build gave the same artifact")
	}
	if claims[0].Statement.Artifacts[1] != claims[1].Statement.Artifacts[1] {
		t.Error("the distsrc differs too; only the build should")
	}
	if got := claims[1].Statement.Env["rustc_version"]; got != rustcNightly {
		t.Errorf("rustc_version %q, want %q", got, rustcNightly)
	}
	rep := attest.Tally("cuprated", version009, claims, trusted, 2)
	var art *attest.ArtifactReport
	for i := range rep.Artifacts {
		if rep.Artifacts[i].Name == artifact009 {
			art = &rep.Artifacts[i]
		}
	}
	if rep.Verdict != attest.Divergence || art == nil || art.Verdict != attest.Divergence || !slices.Equal(art.Differs, []string{"rustc_version"}) {
		t.Fatalf("verdict %s, artifact %+v; want a divergence on %s explained by rustc_version", rep.Verdict, art, artifact009)
	}
}
