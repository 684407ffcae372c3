package node

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyDivergentAndUnreadable: a file with one side's hash of a
// divergent artifact is a definite negative that names that side's
// builders; a file that cannot be read is reported without hiding the
// others; an unknown --version is said to be unknown.
func TestVerifyDivergentAndUnreadable(t *testing.T) {
	n := openTestNode(t)
	alice, bob, carol := newBuilder(t, "alice"), newBuilder(t, "bob"), newBuilder(t, "carol")
	trustBuilders(t, n, alice, bob, carol)
	tree := t.TempDir()
	alice.writeAttestation(t, tree, alice.attestation("0.9.0", sha('a'), commitA, "rustc 1.82.0"))
	bob.writeAttestation(t, tree, bob.attestation("0.9.0", sha('a'), commitA, "rustc 1.82.0"))
	carol.writeAttestation(t, tree, carol.attestation("0.9.0", sha('b'), commitA, "rustc 1.83.0"))
	mustImport(t, n, tree)

	name := "cuprated-0.9.0-x86_64-unknown-linux-gnu.tar.gz"
	files, _ := HashFiles([]string{filepath.Join(t.TempDir(), "missing.tar.gz"), t.TempDir()})
	files = append(files,
		FileHash{Path: "/dl/" + name, SHA256: sha('b')},
		FileHash{Path: "/dl/" + name, SHA256: sha('c')},
	)
	res, err := n.VerifyHashes(files, "", "", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 {
		t.Fatalf("%d results for 4 files: %+v", len(res), res)
	}
	if res[0].Outcome != FileUnreadable || !strings.Contains(res[0].Detail, "no such file") {
		t.Errorf("missing file: %+v", res[0])
	}
	if res[1].Outcome != FileUnreadable || !strings.Contains(res[1].Detail, "directory") || strings.Count(res[1].Detail, res[1].Path) != 1 {
		t.Errorf("directory: %+v", res[1])
	}
	if r := res[2]; r.Outcome != FileDivergent || len(r.Builders) != 1 || r.Builders[0].Name != "carol" || !strings.Contains(r.Detail, "hash of carol") {
		t.Errorf("carol's side: %+v", r)
	}
	if r := res[3]; r.Outcome != FileDivergent || len(r.Builders) != 0 || !strings.Contains(r.Detail, "none of their hashes") {
		t.Errorf("neither side: %+v", r)
	}
	if _, err := n.VerifyHashes(files[2:3], "", "9.9", 2); !errors.Is(err, ErrUnknownRelease) || !strings.Contains(err.Error(), "9.9") {
		t.Errorf("an unknown --version: %v", err)
	}
}
