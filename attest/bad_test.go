package attest_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/rbnode/rbnode/attest"
)

// badCase is an input a decoder must refuse, with what the user is told:
// the sentinel errors it wraps and fragments of its message.
type badCase struct {
	name string
	in   []byte
	is   []error
	msg  []string
}

func runBad(t *testing.T, decode func([]byte) error, cases []badCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantErr(t, decode(tc.in), tc.is, tc.msg...)
		})
	}
}

var (
	malformed = []error{attest.ErrMalformed}
	badName   = []error{attest.ErrBadName}
	bothBad   = []error{attest.ErrMalformed, attest.ErrBadName}
	context   = []error{attest.ErrContext}
)

// unsafeNames are path components no version, builder directory or
// artifact may be, and the message fragment each gives.
var unsafeNames = []struct{ name, msg string }{
	{"", "is empty"},
	{".", "relative path"},
	{"..", "relative path"},
	{"a/b", `has "/" at byte 1`},
	{"../x", `has "/" at byte 2`},
	{`a\b`, `has "\\" at byte 1`},
	{"a\x00b", `has "\x00" at byte 1`},
	{"naïve", `has "ï" at byte 2`},
	{"bad\xffutf8", `has "\xff" at byte 3`},
	{"a b", `has " " at byte 1`},
	{"a\nb", `has "\n" at byte 1`},
	{strings.Repeat("x", attest.MaxNameLen+1), "more than 255"},
}

// armourBlocks returns the armoured signature block around binary packets.
func armourBlocks(t testing.TB, typ string, bin []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, typ, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bin)
	w.Close()
	return buf.Bytes()
}

func TestParseSignatureRefuses(t *testing.T) {
	t.Parallel()
	sk := testKey(t, "Refusals")
	sig := mustSign(t, sk, sampleManifest, testNow)
	bin := dearmorSig(t, sig)
	endAt := bytes.Index(sig, []byte("-----END"))
	var certification []byte
	for _, p := range keyPackets(t, sk.Public().Bytes()) {
		if s, ok := p.(*packet.Signature); ok && s.SigType == packet.SigTypePositiveCert {
			certification = armourBlocks(t, openpgp.SignatureType, serialize(t, s))
		}
	}
	runBad(t, func(b []byte) error { _, err := attest.ParseSignature(b); return err }, []badCase{
		{"empty", nil, malformed, []string{"empty"}},
		{"truncated before the END line", sig[:endAt], malformed, []string{"no END line", "truncated"}},
		{"truncated inside the END line", sig[:endAt+16], malformed, []string{"END line is cut short"}},
		{"truncated base64", append(append(bytes.Clone(sig[:40]), '\n'), sig[endAt:]...), malformed, []string{"signature"}},
		{"truncated binary", bin[:len(bin)-5], malformed, []string{"claims", "remain"}},
		{"two armour blocks", append(bytes.Clone(sig), sig...), malformed, []string{"2 armoured signatures", "exactly one"}},
		{"two packets in one armour block", armourBlocks(t, openpgp.SignatureType, append(bytes.Clone(bin), bin...)), malformed, []string{"2 packets", "exactly one"}},
		{"two binary packets", append(bytes.Clone(bin), bin...), malformed, []string{"2 packets"}},
		{"a public key block", sk.Public().Armored(), malformed, []string{`"PGP PUBLIC KEY BLOCK"`, `want "PGP SIGNATURE"`}},
		{"a binary public key", sk.Public().Bytes(), malformed, []string{"packets"}},
		{"a key certification, not a document signature", certification, malformed, []string{"class 0x13", "not a document signature"}},
		{"oversized", append(bytes.Repeat([]byte(" "), attest.MaxSignatureSize), sig...), malformed, []string{"more than 16384"}},
		{"not UTF-8, not OpenPGP", []byte("garbage\xff\xfe\xfd"), malformed, []string{"not an OpenPGP packet header"}},
		{"not UTF-8 inside armour", append(append(bytes.Clone(sig[:endAt-8]), "\xff\xfe\n"...), sig[endAt:]...), malformed, nil},
		{"partial length", []byte{0xc2, 0xe1, 1, 2}, malformed, []string{"partial length"}},
	})
}

// TestWrongKey: a signature by another key than the one its issuer id
// names, or by a key the node does not have.
func TestWrongKey(t *testing.T) {
	t.Parallel()
	alice, mallory := testKey(t, "Alice"), testKey(t, "Mallory")
	sig := mustSign(t, mallory, sampleManifest, testNow)

	// Mallory's signature with only Alice's key known: unknown key, no
	// fingerprint to blame.
	v := verify(t, sampleManifest, sig, testNow, alice.Public())
	wantStatus(t, v, attest.StatusUnknownKey, "")
	if v.Fingerprint != "" || !strings.Contains(v.Detail, v.KeyID) {
		t.Errorf("unknown key: fingerprint %q, detail %q", v.Fingerprint, v.Detail)
	}

	// Mallory's signature relabelled with Alice's issuer id: bad signature.
	forged := relabel(t, sig, mallory.Public(), alice.Public())
	wantStatus(t, verify(t, sampleManifest, forged, testNow, alice.Public(), mallory.Public()), attest.StatusBadSignature, alice.Public().Fingerprint)

	// A real guix.sigs signature placed in another builder's directory
	// still belongs to its signer: the directory is a display name.
	tr := loadGuix(t)
	kr := tr.keyring(t)
	s := tr.sigs[0]
	var ids []attest.ID
	var fprs []string
	for _, signer := range []string{s.signer, "someone-else"} {
		doc := &attest.Document{Kind: attest.KindManifest, Version: s.version, Signer: signer, Name: s.name, Body: s.body, Signature: s.sig}
		p, err := doc.Parse()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
		fprs = append(fprs, kr.Verify(s.body, p.Sig, testNow).Fingerprint)
	}
	if ids[0] != ids[1] || fprs[0] != fprs[1] {
		t.Errorf("moving %s to another directory changes its id (%s, %s) or signer (%s, %s)", s.path, ids[0].Short(), ids[1].Short(), fprs[0], fprs[1])
	}
}

// relabel rewrites sig's issuer (fingerprint and key id) to key's, keeping
// the signature values: what a forger who cannot sign would send.
func relabel(t testing.TB, sig []byte, from, to *attest.Key) []byte {
	t.Helper()
	bin := dearmorSig(t, sig)
	for _, p := range [][2]string{{from.Fingerprint, to.Fingerprint}, {from.KeyID(), to.KeyID()}} {
		f, _ := hex.DecodeString(p[0])
		r, _ := hex.DecodeString(p[1])
		bin = bytes.ReplaceAll(bin, f, r)
	}
	if s, err := attest.ParseSignature(bin); err != nil || s.IssuerKeyID() != to.KeyID() {
		t.Fatalf("relabelled signature: %v", err)
	}
	return armourBlocks(t, openpgp.SignatureType, bin)
}

// keyPackets splits a binary certificate with go-crypto's packet reader.
func keyPackets(t testing.TB, b []byte) []packet.Packet {
	t.Helper()
	var out []packet.Packet
	r := packet.NewReader(bytes.NewReader(b))
	for {
		p, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
}

// serialize writes one packet.
func serialize(t testing.TB, p interface{ Serialize(io.Writer) error }) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := p.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// attJSON returns the fixture attestation with mutate applied to its
// decoded form, re-encoded by encoding/json.
func attJSON(t testing.TB, mutate func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFile(t, "testdata/attestation.json"), &m); err != nil {
		t.Fatal(err)
	}
	mutate(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// attText returns the fixture attestation with old replaced by new.
func attText(t testing.TB, old, new string) []byte {
	t.Helper()
	b := readFile(t, "testdata/attestation.json")
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("fixture lacks %q", old)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

func TestDecodeAttestationRefuses(t *testing.T) {
	t.Parallel()
	set := func(path string, v any) []byte {
		return attJSON(t, func(m map[string]any) {
			if obj, key, ok := strings.Cut(path, "."); ok {
				m[obj].(map[string]any)[key] = v
			} else {
				m[path] = v
			}
		})
	}
	del := func(path string) []byte {
		return attJSON(t, func(m map[string]any) {
			if obj, key, ok := strings.Cut(path, "."); ok {
				delete(m[obj].(map[string]any), key)
			} else {
				delete(m, path)
			}
		})
	}
	cases := []badCase{
		{"wrong schema", set("schema", "cuprate-guix-attestation/v2"), malformed, []string{"schema is", "v2"}},
		{"not JSON", []byte("schema: v1\n"), malformed, []string{"invalid JSON"}},
		{"a JSON array", []byte(`[{"schema": "cuprate-guix-attestation/v1"}]`), malformed, []string{"not a JSON object"}},
		{"truncated", readFile(t, "testdata/attestation.json")[:200], malformed, []string{"truncated"}},
		{"data after the object", append(readFile(t, "testdata/attestation.json"), "{}"...), malformed, []string{"data after"}},
		{"not UTF-8", attText(t, `"alice@build-host-1"`, "\"alice\xff\""), malformed, []string{"not UTF-8"}},
		{"oversized", append(readFile(t, "testdata/attestation.json"), bytes.Repeat([]byte(" "), attest.MaxAttestationSize)...), malformed, []string{"more than 65536"}},
		{"nested too deeply", set("extra", json.RawMessage(strings.Repeat("[", 20)+strings.Repeat("]", 20))), malformed, []string{"nested too deeply"}},
		{"duplicate key", attText(t, `"version": "0.0.9"`, `"version": "0.0.9", "version": "0.1.0"`), malformed, []string{`duplicate key "version"`}},
		{"duplicate nested key", attText(t, `"size": 21839274`, `"size": 21839274, "size": 1`), malformed, []string{`duplicate key "size"`}},
		{"duplicate key in another case", attText(t, `"version": "0.0.9"`, `"version": "0.0.9", "Version": "0.1.0"`), malformed, []string{"duplicate key", `"Version"`}},
		{"duplicate key by Unicode folding", attText(t, `"version": "0.0.9"`, `"version": "0.0.9", "ver\u017fion": "0.1.0"`), malformed, []string{"duplicate key"}},
		{"field name in another case", attText(t, `"version": "0.0.9"`, `"VERSION": "0.0.9"`), malformed, []string{`"VERSION" must be spelled "version"`}},
		{"source_date_epoch as a string", set("source_date_epoch", "1736935145"), malformed, []string{"source_date_epoch must be a non-negative integer"}},
		{"source_date_epoch as a float", set("source_date_epoch", 1.5), malformed, []string{"source_date_epoch must be a non-negative integer"}},
		{"source_date_epoch negative", set("source_date_epoch", -1), malformed, []string{"source_date_epoch must be a non-negative integer"}},
		{"source_date_epoch null", set("source_date_epoch", nil), malformed, []string{"source_date_epoch must be a non-negative integer"}},
		{"size as a string", set("artifact.size", "21839274"), malformed, []string{"artifact.size must be a non-negative integer"}},
		{"size too large", set("artifact.size", json.Number("99999999999999999999")), malformed, []string{"artifact.size must be a non-negative integer"}},
		{"version is a number", set("version", 9), malformed, []string{"wrong type", "version"}},
		{"artifact is a string", set("artifact", "cuprated.tar.gz"), malformed, []string{"wrong type", "artifact"}},
		{"guix_channel_commit is a number", set("guix_channel_commit", 5), malformed, []string{"guix_channel_commit must be a string or null"}},
		{"rustc_version is an object", set("rustc_version", map[string]any{}), malformed, []string{"rustc_version must be a string or null"}},
		{"builder_id null", set("builder_id", nil), malformed, []string{`required field "builder_id" is missing`}},
		{"git_commit short", set("git_commit", "dec0bbee"), malformed, []string{"git_commit must be 40 hex digits"}},
		{"git_commit not hex", set("git_commit", strings.Repeat("g", 40)), malformed, []string{"git_commit has a non-hex character"}},
		{"sha256 not hex", set("artifact.sha256", strings.Repeat("z", 64)), malformed, []string{"artifact.sha256 has a non-hex character"}},
		{"guix_channel_commit not hex", set("guix_channel_commit", "main"), malformed, []string{"guix_channel_commit must be 40 hex digits"}},
		{"attested_at not UTC", set("attested_at", "2025-03-01T12:00:00+01:00"), malformed, []string{"attested_at", "YYYY-MM-DDTHH:MM:SSZ"}},
		{"attested_at impossible date", set("attested_at", "2025-02-30T12:00:00Z"), malformed, []string{"attested_at"}},
		{"attested_at with fractions", set("attested_at", "2025-03-01T12:00:00.5Z"), malformed, []string{"attested_at"}},
		{"rustc_version too long", set("rustc_version", strings.Repeat("r", 1025)), malformed, []string{"rustc_version is longer than 1024"}},
		{"builder_id too long", set("builder_id", strings.Repeat("b", 256)), malformed, []string{"builder id", "more than 255"}},
		{"builder_id ..", set("builder_id", ".."), bothBad, []string{"builder id", "relative path"}},
		{"builder_id empty", set("builder_id", ""), bothBad, []string{"builder id is empty"}},
	}
	for _, f := range []string{"schema", "package", "version", "git_commit", "source_date_epoch", "guix_system", "rust_target",
		"artifact", "distsrc", "guix_channel_commit", "rustc_version", "cargo_version", "builder_id", "attested_at",
		"artifact.filename", "artifact.sha256", "artifact.size", "distsrc.filename", "distsrc.sha256"} {
		cases = append(cases, badCase{"missing " + f, del(f), malformed, []string{"required field", "missing", f}})
	}
	for _, n := range unsafeNames {
		if !utf8.ValidString(n.name) {
			continue // JSON cannot carry it; "not UTF-8" covers the bytes
		}
		for _, f := range []string{"version", "package", "guix_system", "rust_target", "artifact.filename", "distsrc.filename"} {
			cases = append(cases, badCase{fmt.Sprintf("%s %q", f, n.name), set(f, n.name), bothBad, []string{f, n.msg}})
		}
	}
	runBad(t, func(b []byte) error { _, err := attest.DecodeAttestation(b); return err }, cases)
}

// TestSanitizeBuilderID: a free-text builder id becomes a safe directory
// name; only ids that would still be "." or ".." (or nothing) are refused.
func TestSanitizeBuilderID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"alice":        "alice",
		"../x":         ".._x",
		"a/b":          "a_b",
		"/etc/passwd":  "_etc_passwd",
		"a\x00b":       "a_b",
		"Zoë 🚀":        "Zo_______", // per byte, as tr -c: ë is 2, 🚀 4
		"Zoë ☃":        "Zo______",
		"...":          "...",
		"bob@host:1":   "bob_host_1",
		"A+b_c.d-e":    "A+b_c.d-e",
		"tab\there\n":  "tab_here_",
		"\u202eevil\t": "___evil_",
	} {
		got, err := attest.SanitizeBuilderID(in)
		if err != nil || got != want {
			t.Errorf("SanitizeBuilderID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".", "..", strings.Repeat("x", 256)} {
		_, err := attest.SanitizeBuilderID(in)
		wantErr(t, err, badName, "builder id")
	}
}

func TestParseManifestRefuses(t *testing.T) {
	t.Parallel()
	h := strings.Repeat("ab", 32)
	line := h + "  bitcoin-1.0.tar.gz\n"
	many := strings.Repeat(line, attest.MaxManifestEntries+1)
	cases := []badCase{
		{"empty", nil, malformed, []string{"manifest is empty"}},
		{"blank line", []byte(line + "\n" + line), malformed, []string{"manifest line 2"}},
		{"mixed CRLF and LF", []byte(h + "  a-1.0.zip\r\n" + h + "  b-1.0.zip\n"), malformed, []string{"mixes CRLF and LF"}},
		{"a lone CR at the end of a name", []byte(h + "  a-1.0.zip\r"), bothBad, []string{"artifact name"}},
		{"one space", []byte(h + " bitcoin-1.0.tar.gz\n"), malformed, []string{"manifest line 1", `two spaces or " *"`}},
		{"tab", []byte(h + "\tbitcoin-1.0.tar.gz\n"), malformed, []string{"manifest line 1"}},
		{"short hash", []byte(h[:62] + "  bitcoin-1.0.tar.gz\n"), malformed, []string{"manifest line 1"}},
		{"non-hex hash", []byte(strings.Repeat("x", 64) + "  bitcoin-1.0.tar.gz\n"), malformed, []string{"non-hex"}},
		{"no name", []byte(h + "  \n"), malformed, []string{"manifest line 1"}},
		{"BSD style", []byte("SHA256 (bitcoin-1.0.tar.gz) = " + h + "\n"), malformed, []string{"manifest line 1"}},
		{"not UTF-8", []byte(h + "  bitcoin-\xff.tar.gz\n"), bothBad, []string{`has "\xff" at byte 8`}},
		{"oversized", bytes.Repeat([]byte(line), attest.MaxManifestSize/len(line)+1), malformed, []string{"more than 1048576"}},
		{"too many entries", []byte(many), malformed, []string{"more than 10000 entries"}},
	}
	if len(many) > attest.MaxManifestSize {
		t.Fatalf("the too-many-entries case is %d bytes, over the size limit", len(many))
	}
	for _, n := range unsafeNames {
		if n.name == "" || n.name == "a\nb" || strings.Contains(n.name, "/") {
			continue // no name, two lines, or a path: covered above and below
		}
		cases = append(cases, badCase{fmt.Sprintf("artifact %q", n.name), []byte(h + "  " + n.name + "\n"), bothBad, []string{"artifact name", n.msg}})
	}
	for _, n := range unsafePaths {
		cases = append(cases, badCase{fmt.Sprintf("artifact path %q", n.name), []byte(h + "  " + n.name + "\n"), bothBad, []string{"artifact name", n.msg}})
	}
	runBad(t, func(b []byte) error { _, err := attest.ParseManifest(b); return err }, cases)
}

// unsafePaths are artifact names with "/" that could leave a directory
// they are joined under, and the message fragment each gives.
var unsafePaths = []struct{ name, msg string }{
	{"../x", `segment 1 ".." is a relative path`},
	{"a/../../x", `segment 2 ".." is a relative path`},
	{"a/./b", `segment 2 "." is a relative path`},
	{"/etc/passwd", "empty path segment"},
	{"a//b", "empty path segment"},
	{"a/b/", "empty path segment"},
	{`a/b\..\..\x`, `has "\\" at byte 1`},
	{"a/b c", `has " " at byte 1`},
	{"x/" + strings.Repeat("y", attest.MaxPathLen), "more than 1024"},
}

// TestCheckPath: names with directories pass when every segment is a safe
// name; whatever passes stays inside a directory it is joined under.
func TestCheckPath(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"bitcoin-22.0.tar.gz", "x86_64-apple-darwin/bitcoin-22.0-osx-unsigned.dmg", "a/b/c.zip"} {
		if err := attest.CheckPath("artifact name", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
		if !filepath.IsLocal(ok) {
			t.Errorf("%q passes but is not local", ok)
		}
	}
	bad := unsafePaths
	for _, n := range unsafeNames {
		if !strings.Contains(n.name, "/") { // "a/b" is a path, "../x" is in unsafePaths
			bad = append(bad, n)
		}
	}
	for _, n := range bad {
		err := attest.CheckPath("artifact name", n.name)
		if !errors.Is(err, attest.ErrBadName) || !strings.Contains(err.Error(), n.msg) {
			t.Errorf("%q: %v, want ErrBadName and %q", n.name, err, n.msg)
		}
	}
	if got := attest.BaseName("aarch64-linux-gnu/bitcoin-22.0rc1-aarch64-linux-gnu.tar.gz"); got != "bitcoin-22.0rc1-aarch64-linux-gnu.tar.gz" {
		t.Errorf("BaseName = %q", got)
	}
}

// TestDocumentContext: the context a signature does not cover (the
// directory's version and signer, the file name) must be safe and must
// agree with what is signed.
func TestDocumentContext(t *testing.T) {
	t.Parallel()
	dir, _ := guixSigsDir(t)
	sk := testKey(t, "Context")
	body := func(version, signer, name string) []byte {
		return readFile(t, fmt.Sprintf("%s/%s/%s/%s", dir, version, signer, name))
	}
	manifest := func(version, signer string, b []byte) func() *attest.Document {
		return func() *attest.Document {
			return &attest.Document{Kind: attest.KindManifest, Version: version, Signer: signer, Name: "all.SHA256SUMS", Body: b, Signature: mustSign(t, sk, b, testNow)}
		}
	}
	att := readFile(t, "testdata/attestation.json")
	attestation := func(version, signer string) func() *attest.Document {
		return func() *attest.Document {
			return &attest.Document{Kind: attest.KindAttestation, Version: version, Signer: signer, Name: "attestation.json", Body: att, Signature: mustSign(t, sk, att, testNow)}
		}
	}
	v2401 := body("24.0.1", "fanquake", "all.SHA256SUMS")
	v26rc1 := body("26.0rc1", "fanquake", "noncodesigned.SHA256SUMS")
	h := strings.Repeat("cd", 32)
	type docCase struct {
		name string
		doc  func() *attest.Document
		is   []error
		msg  []string
	}
	cases := []docCase{
		{"24.0.1 manifest presented as 24.0", manifest("24.0", "fanquake", v2401), context, []string{"bitcoin-24.0.1-", `version "24.0"`}},
		{"26.0rc1 manifest presented as 26.0", manifest("26.0", "fanquake", v26rc1), context, []string{"bitcoin-26.0rc1-", `version "26.0"`}},
		{"24.0.1 manifest presented as 24.0.10", manifest("24.0.10", "fanquake", v2401), context, []string{`version "24.0.10"`}},
		{"two projects", manifest("1.0", "x", []byte(h+"  bitcoin-1.0.tar.gz\n"+h+"  monero-1.0.tar.gz\n")), context, []string{"two projects", "bitcoin", "monero"}},
		{"no project before the version", manifest("1.0", "x", []byte(h+"  -1.0.tar.gz\n")), context, []string{"does not carry version"}},
		{"version followed by a digit", manifest("1.0", "x", []byte(h+"  bitcoin-1.0.1.tar.gz\n")), context, []string{"does not carry version"}},
		{"attestation under another version", attestation("0.1.0", ""), context, []string{`found under version "0.1.0"`, `"0.0.9"`}},
		{"attestation in another builder's directory", attestation("", "bob"), context, []string{`directory "bob"`, "alice@build-host-1", `"alice_build-host-1"`}},
		{"unknown kind", func() *attest.Document {
			d := manifest("24.0.1", "fanquake", v2401)()
			d.Kind = "sbom"
			return d
		}, malformed, []string{`unknown document kind "sbom"`}},
		{"empty signature", func() *attest.Document {
			d := manifest("24.0.1", "fanquake", v2401)()
			d.Signature = nil
			return d
		}, malformed, []string{"signature is empty"}},
		{"oversized body", manifest("1.0", "x", bytes.Repeat([]byte(h+"  bitcoin-1.0.tar.gz\n"), attest.MaxManifestSize/80)), malformed, []string{"more than 1048576"}},
	}
	for _, n := range unsafeNames {
		cases = append(cases,
			docCase{fmt.Sprintf("manifest version %q", n.name), manifest(n.name, "fanquake", v2401), badName, []string{"version", n.msg}},
			docCase{fmt.Sprintf("manifest signer %q", n.name), manifest("24.0.1", n.name, v2401), badName, []string{"signer", n.msg}},
			docCase{fmt.Sprintf("document name %q", n.name), func() *attest.Document {
				d := manifest("24.0.1", "fanquake", v2401)()
				d.Name = n.name
				if d.Name == "" {
					d.Name = "/" // an empty name means "not given"
				}
				return d
			}, badName, []string{"document name"}},
		)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.doc().Parse()
			wantErr(t, err, tc.is, tc.msg...)
		})
	}

	// And the right context is accepted, filling in what is missing.
	d := attestation("", "")()
	p, err := d.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != "0.0.9" || d.Signer != "alice_build-host-1" || p.Statement.BuilderID != "alice@build-host-1" {
		t.Errorf("attestation context filled as version %q signer %q", d.Version, d.Signer)
	}
	for _, v := range []string{"24.0.1"} {
		if _, err := manifest(v, "fanquake", v2401)().Parse(); err != nil {
			t.Errorf("24.0.1 manifest as %s: %v", v, err)
		}
	}
	crlf := []byte(h + "  bitcoin-1.0.tar.gz\r\n" + h + "  bitcoin-1.0.zip\r\n")
	if p, err := manifest("1.0", "x", crlf)().Parse(); err != nil || p.Statement.Project != "bitcoin" {
		t.Errorf("CRLF manifest: %v", err)
	}
}

func TestDecodeEnvelopeRefuses(t *testing.T) {
	t.Parallel()
	base := attest.Envelope{Doc: attest.Document{Kind: attest.KindManifest, Version: "1.0", Signer: "x", Name: "all.SHA256SUMS",
		Body: []byte("b"), Signature: []byte("s")}, Key: []byte("k")}
	with := func(change func(e *attest.Envelope)) []byte {
		e := base
		change(&e)
		return e.Encode()
	}
	good := base.Encode()
	if _, err := attest.DecodeEnvelope(good); err != nil {
		t.Fatalf("the base envelope does not decode: %v", err)
	}
	set := func(i int, b byte) []byte { c := bytes.Clone(good); c[i] = b; return c }
	runBad(t, func(b []byte) error { _, err := attest.DecodeEnvelope(b); return err }, []badCase{
		{"version 2", set(3, 2), malformed, []string{"envelope version 2"}},
		{"not an envelope", []byte(`{"rbnode_envelope":1}`), malformed, []string{"not an rbnode envelope"}},
		{"empty", nil, malformed, []string{"not an rbnode envelope"}},
		{"unknown kind", with(func(e *attest.Envelope) { e.Doc.Kind = "sbom" }), malformed, []string{`kind "sbom" is unknown`}},
		{"no body", with(func(e *attest.Envelope) { e.Doc.Body = nil }), malformed, []string{"lacks a body"}},
		{"no key", with(func(e *attest.Envelope) { e.Key = nil }), malformed, []string{"lacks a body, signature or key"}},
		{"signature too large", with(func(e *attest.Envelope) { e.Doc.Signature = make([]byte, attest.MaxSignatureSize+1) }), malformed, []string{"signature is 16385 bytes"}},
		{"version too long", with(func(e *attest.Envelope) { e.Doc.Version = strings.Repeat("v", 300) }), malformed, []string{"version is 300 bytes"}},
		{"oversized", with(func(e *attest.Envelope) { e.Key = make([]byte, attest.MaxEnvelopeSize) }), malformed, []string{"more than 524288"}},
		{"truncated", good[:len(good)-1], malformed, []string{"key: truncated"}},
		{"trailing bytes", append(bytes.Clone(good), 0), malformed, []string{"1 bytes after the key"}},
		{"length not minimal", append(append([]byte("RBE\x01"), 0x88, 0x00), good[5:]...), malformed, []string{"not minimally encoded"}},
	})
}

func TestReadKeysRefuses(t *testing.T) {
	t.Parallel()
	sk := testKey(t, "Keys")
	secret, err := sk.Armored()
	if err != nil {
		t.Fatal(err)
	}
	pub := sk.Public().Bytes()
	sig := mustSign(t, sk, sampleManifest, testNow)
	noUID := serialize(t, keyPackets(t, pub)[0].(*packet.PublicKey))
	runBad(t, func(b []byte) error { _, err := attest.ReadKeys(b); return err }, []badCase{
		{"empty", nil, []error{attest.ErrNoKeys}, nil},
		{"a secret key", secret, nil, []string{"this is a secret key"}},
		{"a signature", sig, nil, []string{`"PGP SIGNATURE"`}},
		{"truncated armour", sk.Public().Armored()[:100], nil, []string{"no END line"}},
		{"truncated binary", pub[:len(pub)-3], nil, []string{"claims", "remain"}},
		{"a signature packet first", dearmorSig(t, sig), nil, []string{"comes before any primary key"}},
		{"no user id", noUID, nil, []string{"no user id with a valid self-signature"}},
		{"not OpenPGP", []byte("\x00\x01 not a key"), nil, []string{"not an OpenPGP packet header"}},
		{"not UTF-8 armour", []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n\xff\xfe\xfd\n-----END PGP PUBLIC KEY BLOCK-----\n"), nil, []string{"armour"}},
		{"oversized", make([]byte, attest.MaxKeyFileSize+1), nil, []string{"more than 4194304"}},
	})
	runBad(t, func(b []byte) error { _, err := attest.ReadSecretKey(b, nil); return err }, []badCase{
		{"empty", nil, []error{attest.ErrNoKeys}, nil},
		{"a public key", sk.Public().Armored(), nil, []string{"this is a public key"}},
		{"a binary public key", pub, nil, []string{"this is a public key"}},
		{"two secret keys", append(bytes.Clone(secret), secret...), nil, []string{"holds 2 keys"}},
		{"truncated", secret[:len(secret)/2], nil, []string{"no END line"}},
		{"oversized", make([]byte, attest.MaxKeyFileSize+1), nil, []string{"more than 4194304"}},
	})
}
