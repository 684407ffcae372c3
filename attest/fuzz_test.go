package attest_test

// Fuzz targets for every decoder. Each is seeded with real inputs, must
// never panic, refuses with the package's sentinel errors, and, where the
// format round-trips, parse-then-encode is a fixed point that gives back
// canonical input byte for byte (AGE's FuzzMalleability).

import (
	"bytes"
	"errors"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/rbnode/rbnode/attest"
)

// fuzzSigs picks n real guix.sigs documents by different signers (so
// different keys and GnuPG versions), smallest first: the fuzzer spends its
// time minimizing what it finds, and that time grows with the input.
func fuzzSigs(f *testing.F, n int) []guixSig {
	f.Helper()
	sigs := slices.Clone(loadGuix(f).sigs)
	sort.SliceStable(sigs, func(i, j int) bool { return len(sigs[i].body) < len(sigs[j].body) })
	seen := map[string]bool{}
	var out []guixSig
	for _, s := range sigs {
		if !seen[s.signer] && len(out) < n {
			seen[s.signer] = true
			out = append(out, s)
		}
	}
	return out
}

// fuzzKeyFiles picks the smallest real key files, armoured as GnuPG
// exported them, and the minimal binary form of the two go-crypto refuses.
// Large files (third-party certifications make some 80 KiB) would spend
// the fuzzing time minimizing.
func fuzzKeyFiles(f *testing.F) [][]byte {
	f.Helper()
	tr := loadGuix(f)
	names := slices.Sorted(maps.Keys(tr.keys))
	sort.SliceStable(names, func(i, j int) bool { return len(tr.keys[names[i]]) < len(tr.keys[names[j]]) })
	var out [][]byte
	for _, n := range names[:6] {
		out = append(out, tr.keys[n])
	}
	for _, n := range []string{"Sjors.gpg", "laanwj.gpg"} {
		ks, err := attest.ReadKeys(tr.keys[n])
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, ks[0].Bytes())
	}
	return out
}

func mustMalformed(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, attest.ErrMalformed) {
		t.Errorf("error %q does not wrap ErrMalformed", err)
	}
}

// roundTrip checks AGE's FuzzMalleability property on one input: what the
// decoder accepts encodes to bytes that decode to the same value and encode
// to the same bytes again; what it refuses wraps ErrMalformed. It returns
// the encoding, or nil for a refused input.
func roundTrip[T any](t *testing.T, in []byte, decode func([]byte) (T, error), encode func(T) []byte) []byte {
	t.Helper()
	v, err := decode(in)
	mustMalformed(t, err)
	if err != nil {
		return nil
	}
	enc := encode(v)
	v2, err := decode(enc)
	if err != nil {
		t.Fatalf("decode(encode(x)): %v\n%q", err, enc)
	}
	if !reflect.DeepEqual(v, v2) {
		t.Fatalf("decode(encode(x)) = %+v, want %+v", v2, v)
	}
	if again := encode(v2); !bytes.Equal(again, enc) {
		t.Fatalf("encode is not a fixed point:\n%q\n%q", again, enc)
	}
	return enc
}

func FuzzDecodeAttestation(f *testing.F) {
	for _, name := range []string{"attestation.json", "attestation-nulls.json"} {
		b := readFile(f, "testdata/"+name)
		f.Add(b)
		f.Add(bytes.ReplaceAll(b, []byte("\n"), nil))
		f.Add(bytes.Replace(b, []byte(`"version"`), []byte(`"Version"`), 1))
	}
	a := sampleAttestation()
	a.BuilderID = "Zoë \x00\u2028 \U0001F680"
	f.Add(a.Encode())
	f.Fuzz(func(t *testing.T, in []byte) {
		roundTrip(t, in, attest.DecodeAttestation, (*attest.Attestation).Encode)
	})
}

// firstLines returns the first n lines of a manifest: still real, and
// short enough for Go's minimizer, which is quadratic in the input length.
func firstLines(b []byte, n int) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	return bytes.Join(lines[:min(n, len(lines))], nil)
}

func FuzzParseManifest(f *testing.F) {
	for _, s := range fuzzSigs(f, 8) {
		f.Add(firstLines(s.body, 3))
	}
	h := strings.Repeat("ab", 32)
	f.Add([]byte(h + "  a-1.0.zip\r\n" + h + " *b-1.0.zip\r\n"))
	f.Add([]byte(h + "  a-1.0.zip\n" + h + "  a-1.0.zip"))
	f.Add([]byte(strings.ToUpper(h) + "  a-1.0.zip\n"))
	f.Add([]byte(h + "  x86_64-apple-darwin/a-1.0.dmg\n" + h + "  a/../b-1.0.zip\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		enc := roundTrip(t, in, attest.ParseManifest, (*attest.Manifest).Encode)
		if enc == nil {
			return
		}
		if m, err := attest.ParseManifest(in); err == nil {
			for _, e := range m.Entries {
				if !filepath.IsLocal(e.Name) || strings.Contains(e.Name, `\`) {
					t.Fatalf("accepted artifact name %q escapes a directory", e.Name)
				}
			}
		}
		// Canonical input (final newline, lowercase hashes) comes back
		// byte for byte.
		canonical := bytes.HasSuffix(in, []byte("\n"))
		for _, line := range bytes.Split(in, []byte("\n")) {
			if len(line) >= 64 && !bytes.Equal(line[:64], bytes.ToLower(line[:64])) {
				canonical = false
			}
		}
		if canonical && !bytes.Equal(enc, in) {
			t.Fatalf("Encode(ParseManifest(x)) = %q, want x = %q", enc, in)
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	for _, s := range fuzzSigs(f, 8) {
		f.Add(s.sig)
		f.Add(dearmorSig(f, s.sig))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := attest.ParseSignature(in)
		mustMalformed(t, err)
		if err != nil {
			return
		}
		bin := s.Bytes()
		if !bytes.Contains(in, []byte("-----BEGIN PGP ")) && !bytes.Equal(bin, in) {
			t.Fatalf("binary signature %x comes back as %x", in, bin)
		}
		again, err := attest.ParseSignature(bin)
		if err != nil || !bytes.Equal(again.Bytes(), bin) || !again.Created().Equal(s.Created()) || again.IssuerKeyID() != s.IssuerKeyID() {
			t.Fatalf("ParseSignature(Bytes()) = %v", err)
		}
		var arm bytes.Buffer
		w, _ := armor.Encode(&arm, openpgp.SignatureType, nil)
		w.Write(bin)
		w.Close()
		if re, err := attest.ParseSignature(arm.Bytes()); err != nil || !bytes.Equal(re.Bytes(), bin) {
			t.Fatalf("armoured again: %v", err)
		}
	})
}

func FuzzReadKeys(f *testing.F) {
	for _, k := range fuzzKeyFiles(f) {
		f.Add(k)
	}
	sk := testKey(f, "Fuzz Keys")
	f.Add(sk.Public().Bytes())
	f.Add(sk.Public().Armored())
	f.Fuzz(func(t *testing.T, in []byte) {
		ks, err := attest.ReadKeys(in)
		if err != nil {
			return
		}
		for _, k := range ks {
			again, err := attest.ReadKeys(k.Bytes())
			if err != nil || len(again) != 1 {
				t.Fatalf("ReadKeys(Bytes()): %v (%d keys)", err, len(again))
			}
			if again[0].Fingerprint != k.Fingerprint || !bytes.Equal(again[0].Bytes(), k.Bytes()) {
				t.Fatalf("the minimal form is not a fixed point: %s -> %s", k.Fingerprint, again[0].Fingerprint)
			}
			if ar, err := attest.ReadKeys(k.Armored()); err != nil || !bytes.Equal(ar[0].Bytes(), k.Bytes()) {
				t.Fatalf("ReadKeys(Armored()): %v", err)
			}
			if len(k.Fingerprint) != 40 || !strings.HasSuffix(k.Fingerprint, k.KeyID()) {
				t.Fatalf("fingerprint %q, key id %q", k.Fingerprint, k.KeyID())
			}
		}
	})
}

func FuzzReadSecretKey(f *testing.F) {
	sk := testKey(f, "Fuzz Secret")
	arm, err := sk.Armored()
	if err != nil {
		f.Fatal(err)
	}
	blk, err := armor.Decode(bytes.NewReader(arm))
	if err != nil {
		f.Fatal(err)
	}
	var bin bytes.Buffer
	bin.ReadFrom(blk.Body)
	f.Add(arm, []byte(nil))
	f.Add(bin.Bytes(), []byte("passphrase"))
	f.Add(lockedKey(f, "passphrase"), []byte("passphrase"))
	f.Add(lockedKey(f, "passphrase"), []byte("wrong"))
	f.Fuzz(func(t *testing.T, in, pass []byte) {
		sk, err := attest.ReadSecretKey(in, pass)
		if err != nil {
			return
		}
		arm, err := sk.Armored()
		if err != nil {
			t.Fatalf("Armored: %v", err)
		}
		again, err := attest.ReadSecretKey(arm, nil)
		if err != nil || again.Public().Fingerprint != sk.Public().Fingerprint {
			t.Fatalf("ReadSecretKey(Armored()): %v", err)
		}
		when := sk.Public().Created().Add(time.Hour)
		sig, err := sk.Sign(sampleManifest, when)
		if err != nil {
			return // no usable signing key at that time
		}
		if v := verify(t, sampleManifest, sig, when, sk.Public()); v.Status != attest.StatusGood && v.Status != attest.StatusWeakHash {
			t.Fatalf("own signature: %s (%s)", v.Status, v.Detail)
		}
	})
}

// lockedKey is a passphrase-protected Ed25519 secret key as go-crypto
// writes it.
func lockedKey(tb testing.TB, pass string) []byte {
	tb.Helper()
	e := pgpEntity(tb, day(2024, 1, 1), 0)
	if err := e.EncryptPrivateKeys([]byte(pass), nil); err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := e.SerializePrivateWithoutSigning(&buf, nil); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func FuzzDecodeEnvelope(f *testing.F) {
	// Real documents cut to one line, with the smallest real (Ed25519)
	// signatures in binary form. Go's minimizer is quadratic in the input
	// length, and an envelope of a whole manifest (4 KiB of JSON) keeps it
	// busy for the whole run.
	sk := testKey(f, "Fuzz Envelope")
	sigs := slices.Clone(loadGuix(f).sigs)
	bins := map[string][]byte{}
	for _, s := range sigs {
		bins[s.path] = dearmorSig(f, s.sig)
	}
	sort.SliceStable(sigs, func(i, j int) bool { return len(bins[sigs[i].path]) < len(bins[sigs[j].path]) })
	for _, s := range sigs[:2] {
		e := attest.Envelope{Doc: attest.Document{Kind: attest.KindManifest, Version: s.version, Signer: s.signer, Name: s.name,
			Body: firstLines(s.body, 1), Signature: bins[s.path]}, Key: sk.Public().Bytes()}
		f.Add(e.Encode())
	}
	att := readFile(f, "testdata/attestation.json")
	e := attest.Envelope{Doc: attest.Document{Kind: attest.KindAttestation, Body: att, Signature: dearmorSig(f, mustSign(f, sk, att, testNow))}, Key: sk.Public().Bytes()}
	f.Add(e.Encode())
	f.Add([]byte("RBE\x01\x08manifest\x00\x00\x00\x01a\x01b\x01c"))
	f.Fuzz(func(t *testing.T, in []byte) {
		roundTrip(t, in, attest.DecodeEnvelope, (*attest.Envelope).Encode)
	})
}

func FuzzDocumentParse(f *testing.F) {
	for _, s := range fuzzSigs(f, 8) {
		f.Add(uint8(1), s.version, s.signer, s.name, firstLines(s.body, 2), dearmorSig(f, s.sig))
	}
	s := fuzzSigs(f, 1)[0]
	f.Add(uint8(1), s.version, s.signer, s.name, s.body, s.sig) // one whole, armoured
	sk := testKey(f, "Fuzz Document")
	for _, name := range []string{"attestation.json", "attestation-nulls.json"} {
		att := readFile(f, "testdata/"+name)
		f.Add(uint8(0), "0.0.9", "", "attestation.json", att, mustSign(f, sk, att, testNow))
	}
	kinds := []attest.Kind{attest.KindAttestation, attest.KindManifest, "other"}
	f.Fuzz(func(t *testing.T, kind uint8, version, signer, name string, body, sig []byte) {
		d := &attest.Document{Kind: kinds[int(kind)%len(kinds)], Version: version, Signer: signer, Name: name, Body: body, Signature: sig}
		p, err := d.Parse()
		if err != nil {
			if !errors.Is(err, attest.ErrMalformed) && !errors.Is(err, attest.ErrBadName) && !errors.Is(err, attest.ErrContext) {
				t.Errorf("error %q wraps none of ErrMalformed, ErrBadName, ErrContext", err)
			}
			return
		}
		// What Parse accepts is safe to use as paths, and bound to its
		// context.
		for what, n := range map[string]string{"version": d.Version, "signer": d.Signer, "project": p.Statement.Project} {
			if err := attest.CheckName(what, n); err != nil {
				t.Errorf("Parse accepted %v", err)
			}
		}
		if p.Statement.Version != d.Version {
			t.Errorf("statement version %q, document version %q", p.Statement.Version, d.Version)
		}
		for _, e := range p.Statement.Artifacts {
			if err := attest.CheckPath("artifact", e.Name); err != nil || !filepath.IsLocal(e.Name) {
				t.Errorf("Parse accepted artifact %q: %v", e.Name, err)
			}
		}
		// The id depends on the signed content, not on armour or place.
		d2 := &attest.Document{Kind: d.Kind, Version: d.Version, Signer: "elsewhere", Body: body, Signature: p.Sig.Bytes()}
		if d.Kind == attest.KindAttestation {
			d2.Signer = ""
		}
		p2, err := d2.Parse()
		if err != nil || p2.ID != p.ID {
			t.Errorf("the same document in binary form elsewhere: %v, id %v / %v", err, p2, p.ID)
		}
		// ID, which decodes no body, agrees with Parse.
		if id, err := (&attest.Document{Kind: d.Kind, Version: version, Body: body, Signature: sig}).ID(); err != nil || id != p.ID {
			t.Errorf("Document.ID = %v, %v; Parse says %v", id, err, p.ID)
		}
	})
}
