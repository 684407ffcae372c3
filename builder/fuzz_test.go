package builder

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rbnode/rbnode/attest"
)

// FuzzScanNative compares the streaming scan with a plain line split.
func FuzzScanNative(f *testing.F) {
	f.Add([]byte("a\nb -march=native\n"))
	f.Add([]byte("-C target-cpu=nativ\ne"))
	f.Add([]byte(strings.Repeat("x", 70000) + "-mcpu=native"))
	f.Fuzz(func(t *testing.T, in []byte) {
		flag, line, err := scanNative(bytes.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		wantLine := 0
		for i, l := range bytes.Split(in, []byte("\n")) {
			for _, fl := range nativeFlags {
				if bytes.Contains(l, []byte(fl)) && wantLine == 0 {
					wantLine = i + 1
				}
			}
		}
		if line != wantLine {
			t.Fatalf("line %d, want %d", line, wantLine)
		}
		if line > 0 && !bytes.Contains(bytes.Split(in, []byte("\n"))[line-1], []byte(flag)) {
			t.Fatalf("flag %q is not on line %d", flag, line)
		}
	})
}

// FuzzMetadata: whatever build-metadata.json and guix-describe.json hold,
// the checks never panic, and what they accept makes an attestation every
// node accepts.
func FuzzMetadata(f *testing.F) {
	meta := `{
  "package": "cuprated",
  "version": "0.0.9",
  "guix_system": "x86_64-linux",
  "rust_target": "x86_64-unknown-linux-gnu",
  "source_date_epoch": 1748779200,
  "git_commit": "0123456789abcdef0123456789abcdef01234567",
  "randomx_arch": "default (CMake default; build is host-CPU-independent)",
  "distsrc": "cuprate-0.0.9-0123456789ab-src.tar.gz",
  "distsrc_sha256": "1111111111111111111111111111111111111111111111111111111111111111"
}
`
	f.Add([]byte(meta), []byte(`[{"name":"guix","commit":"`+channelGuix+`"}]`), []byte(rustcLine+"\n"))
	f.Add([]byte(`{"version":"0.0.9"}`), []byte(`{"commit":null}`), []byte(""))
	f.Fuzz(func(t *testing.T, meta, describe, rustc []byte) {
		a, err := parseMetadata(meta, want{version: version009})
		if err != nil {
			return
		}
		if a.GuixChannelCommit, err = parseDescribe(describe); err != nil {
			return
		}
		if a.RustcVersion, err = firstLineOf(fileRustc, rustc); err != nil {
			return
		}
		a.Artifact.SHA256, a.Artifact.Size = strings.Repeat("0", 64), 1
		a.BuilderID, a.AttestedAt = "fuzz", testTime
		body := a.Encode()
		if _, err := attest.DecodeAttestation(body); err != nil && (a.RustcVersion == nil || len(*a.RustcVersion) <= 1024) {
			t.Fatalf("accepted metadata makes an attestation attest refuses: %v\n%s", err, body)
		}
	})
}
