package store

import (
	"bytes"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// FuzzDecodeRecord: the record decoder never panics, and a record that
// decodes re-encodes to bytes that decode to the same record.
func FuzzDecodeRecord(f *testing.F) {
	r := &Record{ID: attest.ID{1}, Kind: attest.KindManifest, Project: "bitcoin", Version: "26.0", Signer: "x",
		Name: "all.SHA256SUMS", Body: []byte("body"), Signature: []byte("sig"), ReceivedAt: time.Unix(1, 0).UTC(), Source: "import"}
	good, err := encodeRecord(r)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{recordFormat, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if decodeRecord(b, &r) != nil {
			return
		}
		again, err := encodeRecord(&r)
		if err != nil {
			t.Fatal(err)
		}
		var r2 Record
		if err := decodeRecord(again, &r2); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !bytes.Equal(r.Body, r2.Body) || !bytes.Equal(r.Signature, r2.Signature) || r.Version != r2.Version || r.Kind != r2.Kind {
			t.Fatalf("round trip changed the record: %+v / %+v", r, r2)
		}
	})
}

// TestVersionLess orders versions as people read them.
func TestVersionLess(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"24.0", "24.0.1", true},
		{"24.2", "24.10", true},
		{"26.0rc2", "26.0rc10", true},
		{"26.0rc1", "26.0rc1", false},
		{"29.2", "3.0", false},
		{"0.0.9", "0.1.0", true},
		// A pre-release comes before its release, and a release before
		// the next point release.
		{"24.0rc1", "24.0", true},
		{"24.0", "24.0rc1", false},
		{"24.0rc1", "24.0.1", true},
		{"24.0.1", "24.0rc1", false},
		{"24.0", "24.0.1", true},
		{"24.0.1", "24.1rc1", true},
		{"24.1rc1", "24.1", true},
		{"v1.2.0-beta.1", "v1.2.0", true},
		{"v1.2.0", "1.2.1", true},
	} {
		if got := VersionLess(c.a, c.b); got != c.less {
			t.Errorf("VersionLess(%q, %q) = %v, want %v", c.a, c.b, got, c.less)
		}
		if c.a != c.b && c.less && VersionLess(c.b, c.a) {
			t.Errorf("VersionLess(%q, %q) and VersionLess(%q, %q) are both true", c.a, c.b, c.b, c.a)
		}
	}
}

// FuzzVersionLess checks that VersionLess is a strict weak order, as
// sort needs: never both a<b and b<a, and transitive.
func FuzzVersionLess(f *testing.F) {
	for _, s := range [][3]string{{"24.0rc1", "24.0", "24.0.1"}, {"v1.2.0-beta.1", "1.2.0", "1.10"}, {"0.0.9", "01.0", "1.0rc2"}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		if VersionLess(a, b) && VersionLess(b, a) {
			t.Fatalf("%q < %q and %q < %q", a, b, b, a)
		}
		if VersionLess(a, b) && VersionLess(b, c) && !VersionLess(a, c) {
			t.Fatalf("%q < %q < %q but not %q < %q", a, b, c, a, c)
		}
	})
}
