package node

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rbnode/rbnode/attest"
)

// gnupg runs the real gpg in a fresh home.
type gnupg struct {
	t    *testing.T
	home string
}

func newGnupg(t *testing.T) *gnupg {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatal("these tests need gpg (apt-get install gnupg)")
	}
	g := &gnupg{t: t, home: t.TempDir()}
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", g.home, "--kill", "all").Run() })
	return g
}

func (g *gnupg) run(args ...string) (string, error) {
	out, err := exec.Command("gpg", append([]string{"--homedir", g.home, "--batch", "--no-tty"}, args...)...).CombinedOutput()
	return string(out), err
}

// TestExportGuixSigs: a release exported from the store is a guix.sigs
// tree: every file has the bytes of the original, gpg --verify passes on
// each signature with the exported keys, a second export changes nothing,
// and importing the export gives the same verdict.
func TestExportGuixSigs(t *testing.T) {
	n := openTestNode(t)
	mustImport(t, n, guixSigs)
	keys, _ := filepath.Glob(filepath.Join(guixSigs, "builder-keys", "*.gpg"))
	var ks []*attest.Key
	for _, k := range keys {
		b, _ := os.ReadFile(k)
		got, err := attest.ReadKeys(b)
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, got...)
	}
	held, err := n.AddKeys(ks)
	if err != nil {
		t.Fatal(err)
	}
	n.Trust(held, "")

	docs, err := n.ReleaseDocuments("", "26.0rc1")
	if err != nil || len(docs) == 0 {
		t.Fatalf("release documents: %d, %v", len(docs), err)
	}
	out := t.TempDir()
	sum, err := WriteGuixSigs(out, docs)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Documents) != len(docs) || len(sum.Keys) == 0 {
		t.Fatalf("exported %d of %d documents, %d keys", len(sum.Documents), len(docs), len(sum.Keys))
	}
	g := newGnupg(t)
	exported, _ := filepath.Glob(filepath.Join(out, "builder-keys", "*.gpg"))
	if o, err := g.run(append([]string{"--import"}, exported...)...); err != nil {
		t.Fatalf("gpg --import the exported keys: %v\n%s", err, o)
	}
	for _, rel := range sum.Documents {
		p := filepath.Join(out, rel)
		for _, f := range []string{p, p + ".asc"} {
			orig, err := os.ReadFile(filepath.Join(guixSigs, strings.TrimPrefix(f, out)))
			if err != nil {
				t.Fatalf("%s has no original: %v", rel, err)
			}
			if got, _ := os.ReadFile(f); !bytes.Equal(got, orig) {
				t.Errorf("%s differs from the original", f)
			}
		}
		if o, err := g.run("--verify", p+".asc", p); err != nil || !strings.Contains(o, "Good signature") {
			t.Errorf("gpg --verify %s: %v\n%s", rel, err, o)
		}
	}
	again, err := WriteGuixSigs(out, docs)
	if err != nil || again.Unchanged != 2*len(docs)+len(again.Keys) {
		t.Errorf("a second export: %v, %d unchanged of %d files", err, again.Unchanged, 2*len(docs)+len(again.Keys))
	}

	m := openTestNode(t)
	mustImport(t, m, out)
	held, _ = m.AddKeys(ks)
	m.Trust(held, "")
	r1, _ := n.Status("", "26.0rc1", 0)
	r2, err := m.Status("", "26.0rc1", 0)
	if err != nil || r1.Verdict != r2.Verdict || len(r1.Builders) != len(r2.Builders) || len(r1.Artifacts) != len(r2.Artifacts) {
		t.Errorf("the re-imported export judges differently: %v %+v", err, r2)
	}
}

// TestExportHostileNames: names that would leave the directory are
// refused before anything is written, a symbolic link planted in the
// directory is not followed out of it, a directory-style artifact name
// stays inside, and a different file already there is not overwritten.
func TestExportHostileNames(t *testing.T) {
	doc := func(version, signer, name string) ExportDoc {
		return ExportDoc{ID: strings.Repeat("ab", 32), Version: version, Signer: signer, Name: name,
			Fingerprint: "F", Body: []byte("body"), Signature: []byte("sig"), Key: []byte("key")}
	}
	outside := t.TempDir()
	for _, d := range []ExportDoc{
		doc("1.0", "../../escape", "all.SHA256SUMS"),
		doc("1.0", "alice", "../../../escape"),
		doc("1.0", "alice", "/etc/passwd"),
		doc("..", "alice", "all.SHA256SUMS"),
		doc("1.0", "alice", "dir/../../x"),
		doc("1.0", "", "all.SHA256SUMS"),
		doc("1.0", "alice", "a\\..\\..\\x"),
		doc("1.0", "alice", "x\x00y"),
		doc("1.0", "alice", "dir//x"),
		doc("1.0", ".", "x"),
		doc("1.0", "alice", filepath.Join(outside, "abs")),
	} {
		dir := t.TempDir()
		_, err := WriteGuixSigs(filepath.Join(dir, "out"), []ExportDoc{d})
		if !errors.Is(err, ErrUnsafeName) {
			t.Errorf("%q/%q/%q: %v, want ErrUnsafeName", d.Version, d.Signer, d.Name, err)
		}
		if entries, _ := os.ReadDir(filepath.Join(dir, "out")); len(entries) != 0 {
			t.Errorf("%q/%q/%q: wrote %d entries", d.Version, d.Signer, d.Name, len(entries))
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("something was written outside: %v", entries)
	}

	// A link in the directory pointing out of it.
	out := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(out, "2.0")); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteGuixSigs(out, []ExportDoc{doc("2.0", "alice", "all.SHA256SUMS")}); err == nil {
		t.Error("the export followed a symbolic link out of the directory")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("a link led the export outside: %v", entries)
	}

	// A directory-style name is a path inside.
	sum, err := WriteGuixSigs(out, []ExportDoc{doc("3.0", "alice", "bin/all.SHA256SUMS")})
	if err != nil || sum.Documents[0] != "3.0/alice/bin/all.SHA256SUMS" {
		t.Fatalf("directory-style name: %v %+v", err, sum)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "3.0", "alice", "bin", "all.SHA256SUMS.asc")); string(b) != "sig" {
		t.Errorf("signature of the directory-style name: %q", b)
	}

	// A different file already there stays as it was.
	d := doc("3.0", "alice", "bin/all.SHA256SUMS")
	d.Body = []byte("another body")
	if _, err := WriteGuixSigs(out, []ExportDoc{d}); !errors.Is(err, ErrExists) {
		t.Errorf("overwriting a different file: %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "3.0", "alice", "bin", "all.SHA256SUMS")); string(b) != "body" {
		t.Errorf("the existing file was changed to %q", b)
	}
}

// dssePAE is DSSE's pre-authentication encoding, written here from the
// specification (not attest.PAE): "DSSEv1" SP LEN(type) SP type SP
// LEN(body) SP body, lengths as ASCII decimal.
func dssePAE(payloadType string, payload []byte) []byte {
	return append([]byte("DSSEv1 "+strconv.Itoa(len(payloadType))+" "+payloadType+" "+strconv.Itoa(len(payload))+" "), payload...)
}

// TestInTotoExport: the statement names the consensus artifacts with
// their sha256 and records the verdict, quorum and agreeing builders; the
// signed form is a DSSE envelope that a verifier written from the DSSE
// spec (PAE above, the signature checked by gpg) accepts, and that fails
// when the payload or its type is changed.
func TestInTotoExport(t *testing.T) {
	n := openTestNode(t)
	alice, bob, carol := newBuilder(t, "alice"), newBuilder(t, "bob"), newBuilder(t, "carol")
	tree := t.TempDir()
	for _, b := range []builderKey{alice, bob, carol} {
		b.writeAttestation(t, tree, b.attestation("0.1.0", sha('a'), commitA, "rustc 1.82.0"))
	}
	mustImport(t, n, tree)
	trustBuilders(t, n, alice, bob, carol)
	r, err := n.Status("", "0.1.0", 0)
	if err != nil || r.Verdict != attest.Consensus {
		t.Fatalf("status: %v %+v", err, r)
	}
	plain, err := InTotoExport(r, nil, testNow)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Type          string `json:"_type"`
		PredicateType string `json:"predicateType"`
		Subject       []struct {
			Name   string
			Digest map[string]string
		}
		Predicate struct {
			Verdict  string
			Quorum   int
			Agreeing []attest.Builder `json:"agreeing_builders"`
			Commits  []string         `json:"git_commits"`
		}
	}
	if err := json.Unmarshal(plain, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != "https://in-toto.io/Statement/v1" || st.PredicateType != attest.ConsensusPredicateType {
		t.Errorf("types %q %q", st.Type, st.PredicateType)
	}
	if len(st.Subject) != 2 || st.Subject[0].Digest["sha256"] == "" {
		t.Fatalf("subjects %+v, want the tarball and the source archive", st.Subject)
	}
	for _, s := range st.Subject {
		if strings.HasPrefix(s.Name, "cuprated-") && s.Digest["sha256"] != sha('a') {
			t.Errorf("subject %s digest %s", s.Name, s.Digest["sha256"])
		}
	}
	if st.Predicate.Verdict != "consensus" || st.Predicate.Quorum != 3 || len(st.Predicate.Agreeing) != 3 || st.Predicate.Commits[0] != commitA {
		t.Errorf("predicate %+v", st.Predicate)
	}

	signed, err := InTotoExport(r, alice.sk, testNow)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(signed, &env); err != nil {
		t.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil || !bytes.Equal(payload, plain) || env.PayloadType != "application/vnd.in-toto+json" {
		t.Fatalf("payload (%v) is not the statement, or type %q", err, env.PayloadType)
	}
	if len(env.Signatures) != 1 || env.Signatures[0].KeyID != alice.sk.Public().Fingerprint {
		t.Fatalf("signatures %+v", env.Signatures)
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	g := newGnupg(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "alice.asc"), alice.sk.Public().Armored(), 0o644)
	if o, err := g.run("--import", filepath.Join(dir, "alice.asc")); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, o)
	}
	verify := func(payloadType string, payload []byte) error {
		os.WriteFile(filepath.Join(dir, "pae"), dssePAE(payloadType, payload), 0o644)
		os.WriteFile(filepath.Join(dir, "sig"), sig, 0o644)
		o, err := g.run("--verify", filepath.Join(dir, "sig"), filepath.Join(dir, "pae"))
		if err == nil && !strings.Contains(o, "Good signature") {
			err = errors.New(o)
		}
		return err
	}
	if err := verify(env.PayloadType, payload); err != nil {
		t.Fatalf("the DSSE signature does not verify: %v", err)
	}
	if verify("application/json", payload) == nil {
		t.Error("the signature verifies under another payload type")
	}
	if verify(env.PayloadType, bytes.Replace(payload, []byte("consensus"), []byte("divergence"), 1)) == nil {
		t.Error("the signature verifies over a changed payload")
	}
}

// FuzzExportPath: whatever the names, a path the export accepts is local
// to the export directory, has no empty, "." or ".." component, and
// writing there creates nothing outside.
func FuzzExportPath(f *testing.F) {
	for _, s := range [][3]string{
		{"1.0", "alice", "all.SHA256SUMS"}, {"1.0", "..", "x"}, {"1.0", "a", "b/../../c"},
		{"/", "a", "b"}, {"1.0", "a\\b", "c"}, {"1.0", "a", "dir/name"}, {"", "", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, version, signer, name string) {
		rel, err := exportPath(version, signer, name)
		if err != nil {
			if !errors.Is(err, ErrUnsafeName) {
				t.Fatalf("error %v is not ErrUnsafeName", err)
			}
			return
		}
		if !filepath.IsLocal(rel) {
			t.Fatalf("%q is not local", rel)
		}
		for _, c := range strings.Split(rel, "/") {
			if c == "" || c == "." || c == ".." {
				t.Fatalf("%q has component %q", rel, c)
			}
		}
		parent := t.TempDir()
		if _, err := WriteGuixSigs(filepath.Join(parent, "out"), []ExportDoc{{ID: "x", Version: version, Signer: signer, Name: name, Body: []byte("b"), Signature: []byte("s")}}); err != nil {
			return // e.g. a name too long for the file system
		}
		entries, _ := os.ReadDir(parent)
		if len(entries) != 1 || entries[0].Name() != "out" {
			t.Fatalf("writing %q created %v beside the export directory", rel, entries)
		}
	})
}
