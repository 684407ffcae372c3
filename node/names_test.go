package node

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rbnode/rbnode/attest"
)

// TestManifestLayoutsOfBitcoinCore: 22.x manifests name artifacts with a
// directory, 23.0rc manifests list one name twice with two hashes. Both
// are accepted; status and verify agree on them, verify matching a
// download by its base name and saying which entry it matched.
func TestManifestLayoutsOfBitcoinCore(t *testing.T) {
	builders := []builderKey{newBuilder(t, "alice"), newBuilder(t, "bob"), newBuilder(t, "carol")}
	const darwin = "x86_64-apple-darwin/bitcoin-22.0rc1-osx-unsigned.dmg"
	const arm = "aarch64-linux-gnu/bitcoin-22.0rc1-aarch64-linux-gnu.tar.gz"
	const dmg = "bitcoin-23.0rc2-osx-unsigned.dmg"
	tree := t.TempDir()
	for _, b := range builders {
		b.writeManifest(t, tree, "22.0rc1", "all.SHA256SUMS", &attest.Manifest{Entries: []attest.Entry{
			{SHA256: sha('a'), Name: arm}, {SHA256: sha('b'), Name: darwin},
		}})
		b.writeManifest(t, tree, "23.0rc2", "all.SHA256SUMS", &attest.Manifest{Entries: []attest.Entry{
			{SHA256: sha('c'), Name: dmg}, {SHA256: sha('d'), Name: dmg},
		}})
	}
	n := openTestNode(t)
	trustBuilders(t, n, builders...)
	if s := mustImport(t, n, tree); s.Stored != 6 || s.Rejected != 0 {
		t.Fatalf("import: %+v %v", s.ImportProgress, s.ByReason)
	}

	r, err := n.Status("", "22.0rc1", 3)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range r.Artifacts {
		names = append(names, a.Name)
	}
	if r.Verdict != attest.Consensus || !slices.Equal(names, []string{arm, darwin}) {
		t.Fatalf("22.0rc1: %s, artifacts %v", r.Verdict, names)
	}
	r, err = n.Status("", "23.0rc2", 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.Verdict != attest.Consensus || len(r.Artifacts) != 1 || !slices.Equal(r.Artifacts[0].Hashes[0].SHA256Set, []string{sha('c'), sha('d')}) {
		t.Fatalf("23.0rc2: %s %+v", r.Verdict, r.Artifacts)
	}
	for _, a := range r.Artifacts {
		for _, g := range a.Hashes {
			if len(g.SHA256Set) == 0 {
				t.Fatalf("sha256_set missing from %s", a.Name)
			}
		}
	}

	dl := func(name, sum string) FileHash { return FileHash{Path: filepath.Join("/downloads", name), SHA256: sum} }
	for _, c := range []struct {
		file     FileHash
		outcome  FileOutcome
		artifact string
		set      []string
		detail   string
	}{
		{dl("bitcoin-22.0rc1-aarch64-linux-gnu.tar.gz", sha('a')), FileMatch, arm, nil, "22.0rc1 " + arm},
		{dl("bitcoin-22.0rc1-aarch64-linux-gnu.tar.gz", sha('e')), FileMismatch, arm, nil, arm + " (matched by its base name)"},
		{dl(dmg, sha('c')), FileMatch, dmg, []string{sha('c'), sha('d')}, "one of the set of 2 hashes"},
		{dl(dmg, sha('d')), FileMatch, dmg, []string{sha('c'), sha('d')}, "one of the set of 2 hashes"},
		{dl(dmg, sha('e')), FileMismatch, dmg, []string{sha('c'), sha('d')}, "differs from the consensus of 3"},
	} {
		res, err := n.VerifyHashes([]FileHash{c.file}, "", "", 3)
		if err != nil {
			t.Fatal(err)
		}
		got := res[0]
		if got.Outcome != c.outcome || got.Artifact != c.artifact || !slices.Equal(got.ExpectedSet, c.set) || !strings.Contains(got.Detail, c.detail) {
			t.Errorf("verify %s %s: %s %q %v %q; want %s %q %v and %q", filepath.Base(c.file.Path), c.file.SHA256[:1],
				got.Outcome, got.Artifact, got.ExpectedSet, got.Detail, c.outcome, c.artifact, c.set, c.detail)
		}
	}
}
