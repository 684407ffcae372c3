package attest_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// TestReadStoredKeyMatchesReadKeys: a key read back from its stored bytes
// without re-checking self-signatures says and verifies exactly what the
// fully checked key does, for every real builder key and every signature
// of the guix.sigs data.
func TestReadStoredKeyMatchesReadKeys(t *testing.T) {
	root, _ := guixSigsDir(t)
	files, _ := filepath.Glob(filepath.Join(root, "builder-keys", "*.gpg"))
	checked, stored := attest.NewKeyring(), attest.NewKeyring()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ks, err := attest.ReadKeys(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			s, err := attest.ReadStoredKey(k.Bytes())
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			e1, ok1 := k.Expires()
			e2, ok2 := s.Expires()
			r1, at1, rv1 := k.Revocation()
			r2, at2, rv2 := s.Revocation()
			if s.Fingerprint != k.Fingerprint || s.UserID() != k.UserID() || !slices.Equal(s.KeyIDs(), k.KeyIDs()) ||
				ok1 != ok2 || !e1.Equal(e2) || rv1 != rv2 || r1 != r2 || !at1.Equal(at2) || string(s.Bytes()) != string(k.Bytes()) {
				t.Errorf("%s: stored key differs from the checked one", filepath.Base(f))
			}
			checked.Add(k)
			stored.Add(s)
		}
	}
	sigs, _ := filepath.Glob(filepath.Join(root, "*", "*", "*.asc"))
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range sigs {
		body, _ := os.ReadFile(p[:len(p)-4])
		raw, _ := os.ReadFile(p)
		sig, err := attest.ParseSignature(raw)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := checked.Verify(body, sig, now), stored.Verify(body, sig, now); a != b {
			t.Errorf("%s: checked key says %+v, stored key %+v", p, a, b)
		}
	}
}
