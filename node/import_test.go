package node

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node/store"
)

func trustGuixSigsKeys(t *testing.T, n *Node) {
	t.Helper()
	kr, err := n.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Trust(kr.Keys(), ""); err != nil {
		t.Fatal(err)
	}
}

func TestImportGuixSigsAndReimportChangesNothing(t *testing.T) {
	n := openTestNode(t)
	s := mustImport(t, n, guixSigs)
	// The subset: 24.0, 24.0.1, 26.0rc1, 29.2; every signature by a key
	// missing from builder-keys/ is kept as "unknown key", none rejected.
	if s.Rejected != 0 || s.Duplicate != 0 {
		t.Fatalf("first import: %+v", s.ImportProgress)
	}
	if s.Stored != s.Seen || s.ByStatus[attest.StatusGood]+s.ByStatus[attest.StatusUnknownKey] != s.Stored {
		t.Fatalf("first import: %+v %v", s.ImportProgress, s.ByStatus)
	}
	if s.ByStatus[attest.StatusUnknownKey] == 0 || s.Keys != 39 {
		t.Fatalf("want unknown-key documents and 39 keys, got %v, %d keys", s.ByStatus, s.Keys)
	}
	count, _ := n.Store().Count()
	rejBefore, _ := n.Store().Rejections("", "")

	again := mustImport(t, n, guixSigs)
	if again.Stored != 0 || again.Duplicate != s.Stored || again.Rejected != 0 {
		t.Fatalf("second import changed something: %+v", again.ImportProgress)
	}
	count2, _ := n.Store().Count()
	rejAfter, _ := n.Store().Rejections("", "")
	if count2 != count || len(rejAfter) != len(rejBefore) {
		t.Fatalf("store changed on re-import: %d -> %d documents, %d -> %d rejections", count, count2, len(rejBefore), len(rejAfter))
	}
}

func TestStatusGuixSigs(t *testing.T) {
	n := openTestNode(t)
	mustImport(t, n, guixSigs)

	// Nothing trusted yet: nothing counts, everything is listed untrusted.
	r, err := n.Status("", "29.2", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Verdict != attest.Pending || len(r.Builders) != 0 || len(r.Untrusted) == 0 {
		t.Fatalf("untrusted only: verdict %s, %d builders, %d untrusted", r.Verdict, len(r.Builders), len(r.Untrusted))
	}

	trustGuixSigsKeys(t, n)
	r, err = n.Status("", "29.2", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Verdict != attest.Consensus || r.Project != "bitcoin" || len(r.Untrusted) != 0 {
		t.Fatalf("29.2: verdict %s project %q untrusted %d", r.Verdict, r.Project, len(r.Untrusted))
	}

	r, err = n.Status("bitcoin", "26.0rc1", 3)
	if err != nil {
		t.Fatal(err)
	}
	var divergent []string
	for _, a := range r.Artifacts {
		if a.Verdict == attest.Divergence {
			divergent = append(divergent, a.Name)
			if len(a.Hashes) < 2 {
				t.Errorf("%s: divergence with %d hash groups", a.Name, len(a.Hashes))
			}
		}
	}
	want := []string{"bitcoin-26.0rc1-arm64-apple-darwin.zip", "bitcoin-26.0rc1-x86_64-apple-darwin.zip"}
	if r.Verdict != attest.Divergence || !slices.Equal(divergent, want) {
		t.Fatalf("26.0rc1: verdict %s, divergent %v, want %v", r.Verdict, divergent, want)
	}
	// svanstaa signed with a key missing from builder-keys/.
	if !slices.ContainsFunc(r.Rejected, func(d attest.DocRef) bool {
		return d.Signer == "svanstaa" && d.Reason == string(attest.StatusUnknownKey)
	}) {
		t.Fatalf("26.0rc1: svanstaa's unknown-key signature not reported: %+v", r.Rejected)
	}

	// A quorum above the number of builders leaves everything pending.
	r, _ = n.Status("", "29.2", 100)
	if r.Verdict != attest.Pending {
		t.Fatalf("quorum 100: %s", r.Verdict)
	}
	if _, err := n.Status("", "1.2.3", 0); !errorsIs(err, ErrUnknownRelease) {
		t.Fatalf("unknown version: %v", err)
	}
	if _, err := n.Status("", "../etc", 0); !errorsIs(err, ErrUsage) {
		t.Fatalf("unsafe version: %v", err)
	}
}

func TestKeyArrivingLaterVerifiesWaitingDocuments(t *testing.T) {
	tree := t.TempDir()
	alice, bob := newBuilder(t, "alice"), newBuilder(t, "bob")
	alice.writeAttestation(t, tree, alice.attestation("0.0.9", sha('a'), commitA, "rustc 1.82.0"))
	bob.writeAttestation(t, tree, bob.attestation("0.0.9", sha('a'), commitA, "rustc 1.82.0"))
	n := openTestNode(t)
	s := mustImport(t, n, tree)
	if s.ByStatus[attest.StatusUnknownKey] != 2 {
		t.Fatalf("before keys: %v", s.ByStatus)
	}
	trustBuilders(t, n, alice, bob)
	r, err := n.Status("", "0.0.9", 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Verdict != attest.Consensus || len(r.Builders) != 2 {
		t.Fatalf("after keys: %s with %d builders; rejected %+v", r.Verdict, len(r.Builders), r.Rejected)
	}
}

func TestAttestationTreeVerdicts(t *testing.T) {
	alice, bob, carol := newBuilder(t, "alice"), newBuilder(t, "bob"), newBuilder(t, "carol")
	tree := t.TempDir()
	// 0.0.9: all three agree.
	for _, b := range []builderKey{alice, bob, carol} {
		b.writeAttestation(t, tree, b.attestation("0.0.9", sha('a'), commitA, "rustc 1.82.0"))
	}
	// 0.1.0: carol's build differs, with another toolchain.
	alice.writeAttestation(t, tree, alice.attestation("0.1.0", sha('b'), commitA, "rustc 1.82.0"))
	bob.writeAttestation(t, tree, bob.attestation("0.1.0", sha('b'), commitA, "rustc 1.82.0"))
	carol.writeAttestation(t, tree, carol.attestation("0.1.0", sha('c'), commitA, "rustc 1.83.0"))
	// 0.2.0: same artifact hash, but bob built another commit.
	alice.writeAttestation(t, tree, alice.attestation("0.2.0", sha('e'), commitA, "rustc 1.82.0"))
	bob.writeAttestation(t, tree, bob.attestation("0.2.0", sha('e'), commitB, "rustc 1.82.0"))
	carol.writeAttestation(t, tree, carol.attestation("0.2.0", sha('e'), commitA, "rustc 1.82.0"))

	n := openTestNode(t)
	trustBuilders(t, n, alice, bob, carol)
	s := mustImport(t, n, tree)
	if s.Stored != 9 || s.ByStatus[attest.StatusGood] != 9 {
		t.Fatalf("import: %+v %v %+v", s.ImportProgress, s.ByStatus, s.Rejections)
	}

	r, _ := n.Status("", "0.0.9", 3)
	if r.Verdict != attest.Consensus || r.Project != "cuprated" {
		t.Fatalf("0.0.9: %s %s", r.Project, r.Verdict)
	}

	r, _ = n.Status("", "0.1.0", 2)
	if r.Verdict != attest.Divergence {
		t.Fatalf("0.1.0: %s", r.Verdict)
	}
	art := r.Artifacts[slices.IndexFunc(r.Artifacts, func(a attest.ArtifactReport) bool { return strings.HasPrefix(a.Name, "cuprated-") })]
	if art.Verdict != attest.Divergence || len(art.Hashes) != 2 || art.Hashes[1].Builders[0].Name != "carol" {
		t.Fatalf("0.1.0 artifact: %+v", art)
	}
	if !slices.Contains(art.Differs, "rustc_version") {
		t.Fatalf("0.1.0: differs %v lacks rustc_version", art.Differs)
	}

	r, _ = n.Status("", "0.2.0", 3)
	if r.Verdict != attest.Divergence || len(r.Commits) != 2 {
		t.Fatalf("0.2.0 (two commits): %s, commits %+v", r.Verdict, r.Commits)
	}
}

func TestEquivocationIsReportedWithBothDocuments(t *testing.T) {
	alice, bob, carol := newBuilder(t, "alice"), newBuilder(t, "bob"), newBuilder(t, "carol")
	tree1, tree2 := t.TempDir(), t.TempDir()
	for _, b := range []builderKey{alice, bob, carol} {
		b.writeAttestation(t, tree1, b.attestation("0.0.9", sha('a'), commitA, "rustc 1.82.0"))
	}
	// carol signs a second attestation with another hash for the same artifact.
	carol.writeAttestation(t, tree2, carol.attestation("0.0.9", sha('f'), commitA, "rustc 1.82.0"))
	n := openTestNode(t)
	trustBuilders(t, n, alice, bob, carol)
	mustImport(t, n, tree1)
	mustImport(t, n, tree2)
	r, _ := n.Status("", "0.0.9", 2)
	if len(r.Equivocations) != 1 || len(r.Equivocations[0].Documents) != 2 || r.Equivocations[0].Name != "carol" {
		t.Fatalf("equivocations: %+v", r.Equivocations)
	}
	if r.Verdict != attest.Divergence {
		t.Fatalf("verdict %s, want divergence for an equivocation", r.Verdict)
	}
	for _, a := range r.Artifacts {
		for _, g := range a.Hashes {
			for _, b := range g.Builders {
				if b.Name == "carol" && strings.HasPrefix(a.Name, "cuprated-") {
					t.Fatalf("carol's equivocated claim on %s was counted", a.Name)
				}
			}
		}
	}
}

func TestBadInputIsRejectedAndNothingStoredIsLost(t *testing.T) {
	alice, mallory := newBuilder(t, "alice"), newBuilder(t, "mallory")
	good := t.TempDir()
	alice.writeAttestation(t, good, alice.attestation("0.0.9", sha('a'), commitA, "rustc 1.82.0"))
	n := openTestNode(t)
	trustBuilders(t, n, alice)
	mustImport(t, n, good)
	before, _ := n.Status("", "0.0.9", 1)

	bad := t.TempDir()
	okManifest := &attest.Manifest{Entries: []attest.Entry{{SHA256: sha('1'), Name: "proj-1.0-x86_64.tar.gz"}}}
	cases := []struct {
		name, reason string
		make         func() // writes into bad
	}{
		{"flipped byte", string(attest.StatusBadSignature), func() {
			p := alice.writeManifest(t, bad, "1.0", "flip.SHA256SUMS", okManifest)
			b, _ := os.ReadFile(p)
			b[0] ^= 1
			writeFile(t, p, b)
		}},
		{"wrong schema", "malformed", func() {
			a := alice.attestation("2.0", sha('a'), commitA, "rustc")
			a.Schema = "cuprate-guix-attestation/v2"
			alice.writeAttestation(t, bad, a)
		}},
		{"unbound version", "context_mismatch", func() {
			alice.writeManifest(t, bad, "1.1", "ctx.SHA256SUMS", okManifest) // names say 1.0
		}},
		{"unsafe signer directory", "malformed", func() {
			d := filepath.Join(bad, "1.0", "bad signer")
			os.MkdirAll(d, 0o755)
			body := okManifest.Encode()
			sig, _ := alice.sk.Sign(body, testNow)
			writeFile(t, filepath.Join(d, "x.SHA256SUMS"), body)
			writeFile(t, filepath.Join(d, "x.SHA256SUMS.asc"), sig)
		}},
		{"missing signature", "missing_signature", func() {
			d := filepath.Join(bad, "1.0", "nosig")
			os.MkdirAll(d, 0o755)
			writeFile(t, filepath.Join(d, "all.SHA256SUMS"), okManifest.Encode())
		}},
		{"orphan signature", "missing_document", func() {
			d := filepath.Join(bad, "1.0", "orphan")
			os.MkdirAll(d, 0o755)
			writeFile(t, filepath.Join(d, "all.SHA256SUMS.asc"), []byte("x"))
		}},
		{"oversized", "too_large", func() {
			d := filepath.Join(bad, "1.0", "huge")
			os.MkdirAll(d, 0o755)
			writeFile(t, filepath.Join(d, "all.SHA256SUMS"), make([]byte, attest.MaxManifestSize+1))
			writeFile(t, filepath.Join(d, "all.SHA256SUMS.asc"), []byte("x"))
		}},
		{"not a signature", "malformed", func() {
			d := filepath.Join(bad, "1.0", "garbage")
			os.MkdirAll(d, 0o755)
			writeFile(t, filepath.Join(d, "all.SHA256SUMS"), okManifest.Encode())
			writeFile(t, filepath.Join(d, "all.SHA256SUMS.asc"), []byte("-----BEGIN PGP SIGNATURE-----\n\nAAAA\n"))
		}},
		{"symlink", "not_regular_file", func() {
			d := filepath.Join(bad, "1.0", "link")
			os.MkdirAll(d, 0o755)
			writeFile(t, filepath.Join(d, "target"), []byte("x"))
			writeFile(t, filepath.Join(d, "all.SHA256SUMS"), okManifest.Encode())
			os.Symlink(filepath.Join(d, "target"), filepath.Join(d, "all.SHA256SUMS.asc"))
		}},
	}
	for _, c := range cases {
		c.make()
	}
	// mallory's key is known but not trusted: her valid signature is
	// stored and listed as untrusted.
	if _, err := n.AddKeys([]*attest.Key{mallory.sk.Public()}); err != nil {
		t.Fatal(err)
	}
	mallory.writeManifest(t, bad, "1.0", "all.SHA256SUMS", okManifest)

	s := mustImport(t, n, bad)
	for _, c := range cases {
		if s.ByReason[c.reason] == 0 {
			t.Errorf("%s: no rejection with reason %q; got %v", c.name, c.reason, s.ByReason)
		}
	}
	if s.Rejected != len(cases) || s.Stored != 1 {
		t.Fatalf("rejected %d stored %d, want %d and 1: %+v", s.Rejected, s.Stored, len(cases), s.Rejections)
	}
	after, _ := n.Status("", "0.0.9", 1)
	if after.Verdict != before.Verdict || len(after.Artifacts) != len(before.Artifacts) {
		t.Fatalf("bad input changed an unrelated release: %s -> %s", before.Verdict, after.Verdict)
	}
	r, _ := n.Status("", "1.0", 1)
	if len(r.Untrusted) != 1 || r.Untrusted[0].Signer != "mallory" {
		t.Fatalf("mallory not listed as untrusted: %+v", r.Untrusted)
	}
	if len(r.Rejected) == 0 {
		t.Fatalf("1.0: rejections not listed in status")
	}
	// Bad input is logged once, however often it is imported.
	logged, _ := n.Store().Rejections("", "")
	mustImport(t, n, bad)
	logged2, _ := n.Store().Rejections("", "")
	if len(logged2) != len(logged) {
		t.Fatalf("rejection log grew on re-import: %d -> %d", len(logged), len(logged2))
	}
}

func TestVerifyFiles(t *testing.T) {
	alice, bob := newBuilder(t, "alice"), newBuilder(t, "bob")
	dir := t.TempDir()
	good := filepath.Join(dir, "proj-1.0-linux.tar.gz")
	writeFile(t, good, []byte("the real release"))
	goodSum, _ := hashFile(good)
	m := &attest.Manifest{Entries: []attest.Entry{{SHA256: goodSum, Name: "proj-1.0-linux.tar.gz"}, {SHA256: sha('9'), Name: "proj-1.0-other.zip"}}}
	tree := t.TempDir()
	alice.writeManifest(t, tree, "1.0", "all.SHA256SUMS", m)
	bob.writeManifest(t, tree, "1.0", "all.SHA256SUMS", m)
	n := openTestNode(t)
	trustBuilders(t, n, alice, bob)
	mustImport(t, n, tree)

	renamed := filepath.Join(dir, "download.bin") // same bytes, other name
	writeFile(t, renamed, []byte("the real release"))
	tampered := filepath.Join(dir, "sub", "proj-1.0-linux.tar.gz")
	os.MkdirAll(filepath.Dir(tampered), 0o755)
	writeFile(t, tampered, []byte("the real release, backdoored"))
	stranger := filepath.Join(dir, "unknown.tar.gz")
	writeFile(t, stranger, []byte("?"))

	res, err := n.VerifyFiles([]string{good, renamed, tampered, stranger}, "", "", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []FileOutcome{FileMatch, FileMatch, FileMismatch, FileNoConsensus}
	for i, r := range res {
		if r.Outcome != want[i] {
			t.Errorf("%s: %s (%s), want %s", r.Path, r.Outcome, r.Detail, want[i])
		}
	}
	// With a quorum of 3 nothing has consensus yet.
	res, _ = n.VerifyFiles([]string{good}, "", "1.0", 3)
	if res[0].Outcome != FileNoConsensus {
		t.Fatalf("quorum 3: %s", res[0].Outcome)
	}
}

func TestRejectionLogIsBounded(t *testing.T) {
	st, err := store.Open(store.Options{InMemory: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := 0; i < store.MaxRejections/500+2; i++ {
		var rs []store.Rejection
		for j := 0; j < 500; j++ {
			rs = append(rs, store.Rejection{Source: "s", Reason: "malformed", Detail: strings.Repeat("x", 3) + string(rune(i)) + string(rune(j)), Version: "1.0"})
		}
		if err := st.AddRejections(rs); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := st.Rejections("", "")
	byVersion, _ := st.Rejections("", "1.0")
	if len(all) != store.MaxRejections || len(byVersion) != store.MaxRejections {
		t.Fatalf("log holds %d (%d indexed), want %d", len(all), len(byVersion), store.MaxRejections)
	}
}
