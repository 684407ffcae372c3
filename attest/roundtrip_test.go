package attest_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

func strPtr(s string) *string { return &s }

// sampleAttestation is a complete attestation with every optional field.
func sampleAttestation() *attest.Attestation {
	return &attest.Attestation{
		Schema:            attest.AttestationSchema,
		Package:           "cuprated",
		Version:           "0.0.9",
		GitCommit:         "dec0bbee5c18f2dc6baae9e9ca7bb0c4d041931d",
		SourceDateEpoch:   1736935145,
		GuixSystem:        "x86_64-linux",
		RustTarget:        "x86_64-unknown-linux-gnu",
		Artifact:          attest.File{Filename: "cuprated-0.0.9-x86_64-unknown-linux-gnu.tar.gz", SHA256: "416cef3b90aa63d50e80dfc52a16dbd4392e76d8e59bb86d733cf6251c0f12c3", Size: 21839274},
		Distsrc:           attest.File{Filename: "cuprate-0.0.9-dec0bbee5c18-src.tar.gz", SHA256: "8d1b9a4c7e2f3a60b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2", Size: -1},
		GuixChannelCommit: strPtr("bc6ca8b9e1dc3f2e5f2b2b5e1e6d8a8c6e3f2a1b"),
		RustcVersion:      strPtr("rustc 1.84.0 (9fc6b4312 2025-01-07)"),
		CargoVersion:      strPtr("cargo 1.84.0 (66221abde 2024-11-19)"),
		BuilderID:         "alice@build-host-1",
		AttestedAt:        time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC),
	}
}

// pythonObject is a as a plain JSON value, built field by field without
// Attestation.Encode, for Python to serialise.
func pythonObject(a *attest.Attestation) map[string]any {
	opt := func(s *string) any {
		if s == nil {
			return nil
		}
		return *s
	}
	return map[string]any{
		"schema": a.Schema, "package": a.Package, "version": a.Version,
		"git_commit": a.GitCommit, "source_date_epoch": a.SourceDateEpoch,
		"guix_system": a.GuixSystem, "rust_target": a.RustTarget,
		"artifact":            map[string]any{"filename": a.Artifact.Filename, "sha256": a.Artifact.SHA256, "size": a.Artifact.Size},
		"distsrc":             map[string]any{"filename": a.Distsrc.Filename, "sha256": a.Distsrc.SHA256},
		"guix_channel_commit": opt(a.GuixChannelCommit), "rustc_version": opt(a.RustcVersion),
		"cargo_version": opt(a.CargoVersion), "builder_id": a.BuilderID,
		"attested_at": a.AttestedAt.UTC().Format("2006-01-02T15:04:05Z"),
	}
}

// pythonDumps returns json.dumps(obj, sort_keys=True, indent=2) + "\n" for
// each object, as guix-attest writes it, from the real python3.
func pythonDumps(t *testing.T, objs []map[string]any) []string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is not on PATH: it is the reference for the attestation encoding; install python3")
	}
	in, err := json.Marshal(objs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", "-c", `import json, sys
objs = json.load(sys.stdin)
json.dump([json.dumps(o, sort_keys=True, indent=2) + "\n" for o in objs], sys.stdout)`)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var res []string
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestAttestationEncodeMatchesPython: Encode writes exactly the bytes of
// Python's json.dumps(sort_keys=True, indent=2) plus a newline, for awkward
// strings too, and DecodeAttestation reads them back to the same value.
func TestAttestationEncodeMatchesPython(t *testing.T) {
	t.Parallel()
	variants := []struct {
		name   string
		mutate func(a *attest.Attestation)
	}{
		{"plain", func(a *attest.Attestation) {}},
		{"null optional fields", func(a *attest.Attestation) {
			a.GuixChannelCommit, a.RustcVersion, a.CargoVersion = nil, nil, nil
		}},
		{"non-ASCII builder id", func(a *attest.Attestation) { a.BuilderID = "Zoë’s büilder 日本 🚀" }},
		{"control characters", func(a *attest.Attestation) {
			a.BuilderID = "a\x00b\x01c\x1f\x7f\td\ne\rf\bg\fh"
			a.RustcVersion = strPtr("rustc 1.84.0\nbinary: rustc\x1b[0m")
		}},
		{"quotes, backslashes and HTML", func(a *attest.Attestation) {
			a.BuilderID = `"quoted" \back\slash </script>&<b>`
			a.CargoVersion = strPtr(`cargo "1.84" \ 'x'`)
		}},
		{"line and paragraph separators, edge code points", func(a *attest.Attestation) {
			a.BuilderID = "\u2028\u2029\ufeff\uffff\U00010000\U0010ffff\u0080\u00a0"
		}},
		{"zero and large numbers", func(a *attest.Attestation) {
			a.SourceDateEpoch, a.Artifact.Size = 0, 1<<62
		}},
		{"empty free text", func(a *attest.Attestation) { a.RustcVersion, a.CargoVersion = strPtr(""), strPtr("") }},
	}
	var as []*attest.Attestation
	var objs []map[string]any
	for _, v := range variants {
		a := sampleAttestation()
		v.mutate(a)
		as = append(as, a)
		objs = append(objs, pythonObject(a))
	}
	want := pythonDumps(t, objs)
	for i, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			got := as[i].Encode()
			if string(got) != want[i] {
				t.Fatalf("Encode:\n%s\nPython:\n%s", got, want[i])
			}
			back, err := attest.DecodeAttestation(got)
			if err != nil {
				t.Fatalf("DecodeAttestation(Encode(a)): %v", err)
			}
			if !reflect.DeepEqual(back, as[i]) {
				t.Errorf("DecodeAttestation(Encode(a)) = %+v, want %+v", back, as[i])
			}
		})
	}
}

// TestAttestationFixtures: the attestations Python wrote (testdata/) decode
// and encode back to the same bytes.
func TestAttestationFixtures(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"attestation.json", "attestation-nulls.json"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := readFile(t, "testdata/"+name)
			a, err := attest.DecodeAttestation(b)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Encode(); !bytes.Equal(got, b) {
				t.Errorf("Encode(DecodeAttestation(x)) != x:\n%s\nwant:\n%s", got, b)
			}
		})
	}
	a, err := attest.DecodeAttestation(readFile(t, "testdata/attestation-nulls.json"))
	if err != nil {
		t.Fatal(err)
	}
	if a.GuixChannelCommit != nil || a.RustcVersion != nil || a.CargoVersion != nil {
		t.Errorf("null fields decode as %v %v %v, want nil", a.GuixChannelCommit, a.RustcVersion, a.CargoVersion)
	}
	if a.BuilderID != "Zoë’s builder \a 🚀" {
		t.Errorf("builder id %q", a.BuilderID)
	}
}

// TestManifestRoundTrip: Encode(ParseManifest(x)) == x for canonical
// manifests (every real one among them), and only for those.
func TestManifestRoundTrip(t *testing.T) {
	t.Parallel()
	h1 := strings.Repeat("ab", 32)
	h2 := strings.Repeat("0f", 32)
	canonical := map[string]string{
		"one line":          h1 + "  bitcoin-1.0.tar.gz\n",
		"binary mode":       h1 + " *bitcoin-1.0.tar.gz\n" + h2 + "  bitcoin-1.0.zip\n",
		"CRLF":              h1 + "  bitcoin-1.0.tar.gz\r\n" + h2 + "  bitcoin-1.0.zip\r\n",
		"duplicate names":   h1 + "  b-1.0.zip\n" + h2 + "  a-1.0.zip\n" + h2 + "  b-1.0.zip\n",
		"odd allowed names": h1 + "  -\n" + h2 + "  ...\n" + h1 + "  A+b_c.d-e\n",
	}
	for name, m := range canonical {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := attest.ParseManifest([]byte(m))
			if err != nil {
				t.Fatal(err)
			}
			if enc := got.Encode(); string(enc) != m {
				t.Errorf("Encode gives %q, want %q", enc, m)
			}
		})
	}

	dup, err := attest.ParseManifest([]byte(canonical["duplicate names"]))
	if err != nil {
		t.Fatal(err)
	}
	wantEntries := []attest.Entry{{SHA256: h1, Name: "b-1.0.zip"}, {SHA256: h2, Name: "a-1.0.zip"}, {SHA256: h2, Name: "b-1.0.zip"}}
	if !reflect.DeepEqual(dup.Entries, wantEntries) {
		t.Errorf("duplicate names: entries %+v, want %+v (kept, in order)", dup.Entries, wantEntries)
	}
	if crlf, _ := attest.ParseManifest([]byte(canonical["CRLF"])); crlf == nil || !crlf.CRLF {
		t.Error("a CRLF-only manifest is not marked CRLF")
	}

	// Not canonical: parsed, but Encode writes the canonical form.
	for in, want := range map[string]string{
		h1 + "  bitcoin-1.0.tar.gz":                          h1 + "  bitcoin-1.0.tar.gz\n",
		strings.ToUpper(h1) + "  bitcoin-1.0.tar.gz\n":       h1 + "  bitcoin-1.0.tar.gz\n",
		h1 + "  a-1.0.zip\r\n" + h2 + "  b-1.0.zip":          h1 + "  a-1.0.zip\r\n" + h2 + "  b-1.0.zip\r\n",
		strings.ToUpper(h2[:10]) + h2[10:] + " *x-1.0.zip\n": h2 + " *x-1.0.zip\n",
	} {
		m, err := attest.ParseManifest([]byte(in))
		if err != nil {
			t.Errorf("ParseManifest(%q): %v", in, err)
			continue
		}
		if got := string(m.Encode()); got != want {
			t.Errorf("Encode(ParseManifest(%q)) = %q, want %q", in, got, want)
		}
	}

	tr := loadGuix(t)
	for _, s := range tr.sigs {
		m, err := attest.ParseManifest(s.body)
		if err != nil {
			t.Errorf("%s: %v", s.path, err)
			continue
		}
		if !bytes.Equal(m.Encode(), s.body) {
			t.Errorf("%s: Encode(ParseManifest(x)) != x", s.path)
		}
	}
}

// TestEnvelopeRoundTrip: DecodeEnvelope(Encode(e)) == e, and encoding the
// result again gives the same bytes.
func TestEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	sk := testKey(t, "Envelope")
	att := readFile(t, "testdata/attestation.json")
	tr := loadGuix(t)
	s := tr.sigs[0]
	envs := map[string]*attest.Envelope{
		"attestation": {Doc: attest.Document{Kind: attest.KindAttestation, Version: "0.0.9", Signer: "alice_build-host-1", Name: "attestation.json",
			Body: att, Signature: mustSign(t, sk, att, testNow)}, Key: sk.Public().Bytes()},
		"manifest": {Doc: attest.Document{Kind: attest.KindManifest, Version: s.version, Signer: s.signer, Name: s.name,
			Body: s.body, Signature: s.sig}, Key: sk.Public().Bytes()},
		"no context": {Doc: attest.Document{Kind: attest.KindAttestation, Body: att, Signature: []byte{0x88}}, Key: []byte{0x99}},
	}
	for name, e := range envs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			enc := e.Encode()
			back, err := attest.DecodeEnvelope(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, e) {
				t.Errorf("DecodeEnvelope(Encode(e)) = %+v, want %+v", back, e)
			}
			if again := back.Encode(); !bytes.Equal(again, enc) {
				t.Errorf("second Encode differs:\n%s\n%s", again, enc)
			}
		})
	}
}

// TestIDRoundTrip: a document id reads back from its hex form.
func TestIDRoundTrip(t *testing.T) {
	t.Parallel()
	id := attest.ID{0xde, 0xad, 0xbe, 0xef, 31: 0x01}
	back, err := attest.ParseID(id.String())
	if err != nil || back != id || id.Short() != "deadbeef0000" {
		t.Errorf("ParseID(%s) = %s, %v; short %s", id, back, err, id.Short())
	}
	for _, bad := range []string{"", "dead", id.String() + "00", strings.Repeat("g", 64)} {
		if _, err := attest.ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
}
