package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// edit rewrites a file of dir.
func edit(t *testing.T, dir, name string, f func([]byte) []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func replace(old, new string) func([]byte) []byte {
	return func(b []byte) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
}

func appendText(s string) func([]byte) []byte {
	return func(b []byte) []byte { return append(b, s...) }
}

// sumsOf returns the two SHA256SUMS lines of a good output directory.
func sumsOf(t *testing.T, dir string) (distsrc, artifact attest.Entry) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := attest.ParseManifest(b)
	if err != nil || len(m.Entries) != 2 {
		t.Fatalf("SHA256SUMS: %v", err)
	}
	return m.Entries[0], m.Entries[1]
}

// TestAttestRefusesBadOutputs breaks a good Guix output directory in every
// way the contract forbids: each gives its exact error and signs nothing.
func TestAttestRefusesBadOutputs(t *testing.T) {
	t.Parallel()
	const other = "1111111111111111111111111111111111111111"
	for _, c := range []struct {
		name   string
		break_ func(t *testing.T, dir string)
		commit bool // ask for the release's commit
		want   func(dir, commit string, distsrc, artifact attest.Entry) CheckError
	}{
		{
			name:   "artifact missing",
			break_: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, artifact009)) },
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				return CheckError{File: artifact009, Rule: RuleMissing, Detail: "it is the artifact of build-metadata.json's version and rust_target, but it is not in the output directory"}
			},
		},
		{
			name:   "toolchain file missing",
			break_: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "rustc-version.txt")) },
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				return CheckError{File: "rustc-version.txt", Rule: RuleMissing, Detail: "the pipeline writes it, but it is not in the output directory"}
			},
		},
		{
			name:   "build log missing",
			break_: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, buildLog)) },
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				return CheckError{File: buildLog, Rule: RuleMissing, Detail: "the build log is required, but it is not in the output directory"}
			},
		},
		{
			name:   "artifact changed after SHA256SUMS",
			break_: func(t *testing.T, dir string) { edit(t, dir, artifact009, appendText("x")) },
			want: func(dir, _ string, _, artifact attest.Entry) CheckError {
				now := sum(t, filepath.Join(dir, artifact009))
				return CheckError{File: "SHA256SUMS", Rule: RuleSums, Detail: "lists " + artifact009 + " with sha256 " + artifact.SHA256 + ", but the file hashes to " + now}
			},
		},
		{
			name: "SHA256SUMS lists the ldd diagnostic",
			break_: func(t *testing.T, dir string) {
				edit(t, dir, "SHA256SUMS", appendText(strings.Repeat("0", 64)+"  ldd-x86_64-unknown-linux-gnu.diag.txt\n"))
			},
			want: func(_, _ string, distsrc, _ attest.Entry) CheckError {
				return CheckError{File: "SHA256SUMS", Rule: RuleSums, Detail: "lists [" + distsrc.Name + " " + artifact009 + " ldd-x86_64-unknown-linux-gnu.diag.txt], want exactly [" + distsrc.Name + " " + artifact009 + "]"}
			},
		},
		{
			name: "SHA256SUMS in the wrong order",
			break_: func(t *testing.T, dir string) {
				edit(t, dir, "SHA256SUMS", func(b []byte) []byte {
					l := strings.SplitAfter(string(b), "\n")
					return []byte(l[1] + l[0])
				})
			},
			want: func(_, _ string, distsrc, _ attest.Entry) CheckError {
				return CheckError{File: "SHA256SUMS", Rule: RuleSums, Detail: "lists [" + artifact009 + " " + distsrc.Name + "], want exactly [" + distsrc.Name + " " + artifact009 + "]"}
			},
		},
		{
			name: "sidecar disagrees",
			break_: func(t *testing.T, dir string) {
				edit(t, dir, artifact009+".SHA256SUM", func([]byte) []byte { return []byte(strings.Repeat("ab", 32) + "  " + artifact009 + "\n") })
			},
			want: func(_, _ string, _, artifact attest.Entry) CheckError {
				return CheckError{File: artifact009 + ".SHA256SUM", Rule: RuleSidecar, Detail: "lists " + artifact009 + " with sha256 " + strings.Repeat("ab", 32) + ", but the file hashes to " + artifact.SHA256}
			},
		},
		{
			name: "sidecar names another file",
			break_: func(t *testing.T, dir string) {
				edit(t, dir, artifact009+".SHA256SUM", replace(artifact009, "cuprated-0.0.9-other.tar.gz"))
			},
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				return CheckError{File: artifact009 + ".SHA256SUM", Rule: RuleSidecar, Detail: "must hold exactly one line, for " + artifact009}
			},
		},
		{
			name:   "sidecar missing",
			break_: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, artifact009+".SHA256SUM")) },
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				return CheckError{File: artifact009 + ".SHA256SUM", Rule: RuleMissing, Detail: "the sidecar of " + artifact009 + " is required, but it is not in the output directory"}
			},
		},
		{
			name: "SHA256SUMS names a path with ..",
			break_: func(t *testing.T, dir string) {
				edit(t, dir, "SHA256SUMS", replace("  "+artifact009, "  ../"+artifact009))
			},
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				_, err := attest.ParseManifest([]byte(strings.Repeat("0", 64) + "  x\n" + strings.Repeat("0", 64) + "  ../" + artifact009 + "\n"))
				return CheckError{File: "SHA256SUMS", Rule: RuleName, Detail: err.Error()}
			},
		},
		{
			name: "build-metadata names the distsrc ..",
			break_: func(t *testing.T, dir string) {
				edit(t, dir, "build-metadata.json", func(b []byte) []byte {
					return bytes.Replace(b, []byte(`"distsrc": "cuprate-`), []byte(`"distsrc": "../cuprate-`), 1)
				})
			},
			want: func(_, _ string, distsrc, _ attest.Entry) CheckError {
				return CheckError{File: "build-metadata.json", Rule: RuleName, Detail: attest.CheckName("distsrc", "../"+distsrc.Name).Error()}
			},
		},
		{
			name: "a file named with a space",
			break_: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, "notes from host.txt"), nil, 0o644)
			},
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				return CheckError{File: "notes from host.txt", Rule: RuleName, Detail: attest.CheckName("file name", "notes from host.txt").Error()}
			},
		},
		{
			name: "artifact is a symlink",
			break_: func(t *testing.T, dir string) {
				p := filepath.Join(dir, artifact009)
				os.Rename(p, p+".real")
				os.Symlink(artifact009+".real", p)
			},
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				return CheckError{File: artifact009, Rule: RuleNotRegular, Detail: "it is the artifact of build-metadata.json's version and rust_target, but it is a symbolic link"}
			},
		},
		{
			name: "native flag in the build log",
			break_: func(t *testing.T, dir string) {
				edit(t, dir, buildLog, appendText("     Running `rustc -C target-cpu=native`\n"))
			},
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				return CheckError{File: buildLog, Rule: RuleNativeFlags, Detail: "line 4 has target-cpu=native: the build depends on the host CPU"}
			},
		},
		{
			name: "native flag in another log",
			break_: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, "randomx.log"), []byte("cmake\ncc -mcpu=native -c x.c"), 0o644)
			},
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				return CheckError{File: "randomx.log", Rule: RuleNativeFlags, Detail: "line 2 has -mcpu=native: the build depends on the host CPU"}
			},
		},
		{
			name: "build-metadata names another version",
			break_: func(t *testing.T, dir string) {
				edit(t, dir, "build-metadata.json", replace(`"version": "0.0.9"`, `"version": "0.0.8"`))
			},
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				return CheckError{File: "build-metadata.json", Rule: RuleMetadata, Detail: `version is "0.0.8", but "0.0.9" was built`}
			},
		},
		{
			name: "build-metadata names another commit",
			break_: func(t *testing.T, dir string) {
				edit(t, dir, "build-metadata.json", func(b []byte) []byte {
					i := bytes.Index(b, []byte(`"git_commit": "`)) + len(`"git_commit": "`)
					return append(append(append([]byte(nil), b[:i]...), other...), b[i+40:]...)
				})
			},
			commit: true,
			want: func(_, commit string, _, _ attest.Entry) CheckError {
				return CheckError{File: "build-metadata.json", Rule: RuleMetadata, Detail: "git_commit is " + other + ", but " + commit + " was built"}
			},
		},
		{
			name:   "build-metadata is empty",
			break_: func(t *testing.T, dir string) { os.WriteFile(filepath.Join(dir, "build-metadata.json"), nil, 0o644) },
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				return CheckError{File: "build-metadata.json", Rule: RuleMalformed, Detail: "not a JSON object of the contract's fields: EOF"}
			},
		},
		{
			name: "build-metadata lacks a field",
			break_: func(t *testing.T, dir string) {
				edit(t, dir, "build-metadata.json", replace(`"randomx_arch"`, `"randomx"`))
			},
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				return CheckError{File: "build-metadata.json", Rule: RuleMalformed, Detail: `field "randomx_arch" is missing`}
			},
		},
		{
			name: "distsrc changed after the build",
			break_: func(t *testing.T, dir string) {
				_, d := filepath.Split(distsrcName(t, dir))
				edit(t, dir, d, appendText("x"))
			},
			want: func(dir, _ string, distsrc, _ attest.Entry) CheckError {
				now := sum(t, filepath.Join(dir, distsrc.Name))
				return CheckError{File: "build-metadata.json", Rule: RuleMetadata, Detail: "distsrc_sha256 is " + distsrc.SHA256 + ", but " + distsrc.Name + " hashes to " + now}
			},
		},
		{
			name:   "guix-describe is not JSON",
			break_: func(t *testing.T, dir string) { edit(t, dir, "guix-describe.json", appendText("]")) },
			want: func(_, _ string, _, _ attest.Entry) CheckError {
				return CheckError{File: "guix-describe.json", Rule: RuleMalformed, Detail: "not JSON: invalid character ']' after top-level value"}
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir, commit := goodOutput(t)
			distsrc, artifact := sumsOf(t, dir)
			c.break_(t, dir)
			req := AttestRequest{Version: version009, Now: testTime, Sign: *signing(t)}
			if c.commit {
				req.Commit = commit
			}
			s, err := Attest(t.Context(), dir, req)
			wantCheck(t, err, c.want(dir, commit, distsrc, artifact))
			if s != nil {
				t.Error("signed anyway")
			}
			noFiles(t, req.Sign.Dest)
			if !strings.Contains(Hint(err), "nothing was signed") {
				t.Errorf("hint %q", Hint(err))
			}
		})
	}
}

func distsrcName(t *testing.T, dir string) string {
	d, _ := sumsOf(t, dir)
	return d.Name
}

// TestAttestIgnoresDiagnostics: the ldd diagnostic is host-dependent and
// never hashed: changing it changes nothing.
func TestAttestIgnoresDiagnostics(t *testing.T) {
	t.Parallel()
	dir, _ := goodOutput(t)
	sk := testKey(t, "Diag")
	req := AttestRequest{Version: version009, Now: testTime, Sign: Signing{Signer: sk, BuilderID: "diag", Dest: t.TempDir()}}
	first, err := Attest(t.Context(), dir, req)
	if err != nil {
		t.Fatal(err)
	}
	edit(t, dir, "ldd-x86_64-unknown-linux-gnu.diag.txt", appendText("\tlibc.so.6 => /some/other/host\n"))
	req.Sign.Dest = t.TempDir()
	second, err := Attest(t.Context(), dir, req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Document.Body, second.Document.Body) || bytes.Contains(first.Document.Body, []byte("ldd")) {
		t.Error("the diagnostic changed the attestation")
	}
}

// TestAttestGuix signs a good output directory as guix-attest would.
func TestAttestGuix(t *testing.T) {
	t.Parallel()
	dir, commit := goodOutput(t)
	distsrc, artifact := sumsOf(t, dir)
	fi, err := os.Stat(filepath.Join(dir, artifact009))
	if err != nil {
		t.Fatal(err)
	}
	sk := testKey(t, "Hand Builder")
	dest := t.TempDir()
	s, err := Attest(t.Context(), dir, AttestRequest{Version: version009, Commit: strings.ToUpper(commit), Now: testTime,
		Sign: Signing{Signer: sk, BuilderID: "kim0@example.org", Dest: dest}})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dest, "contrib/guix/sigs/0.0.9/kim0_example.org/attestation.json"); s.Path != want {
		t.Errorf("written to %s, want %s", s.Path, want)
	}
	checkSigned(t, s, sk)
	want := `{
  "artifact": {
    "filename": "` + artifact009 + `",
    "sha256": "` + artifact.SHA256 + `",
    "size": ` + itoa(fi.Size()) + `
  },
  "attested_at": "2026-07-01T10:00:00Z",
  "builder_id": "kim0@example.org",
  "cargo_version": "` + cargoLine + `",
  "distsrc": {
    "filename": "` + distsrc.Name + `",
    "sha256": "` + distsrc.SHA256 + `"
  },
  "git_commit": "` + commit + `",
  "guix_channel_commit": "` + channelGuix + `",
  "guix_system": "x86_64-linux",
  "package": "cuprated",
  "rust_target": "x86_64-unknown-linux-gnu",
  "rustc_version": "` + rustcLine + `",
  "schema": "cuprate-guix-attestation/v1",
  "source_date_epoch": 1748779200,
  "version": "0.0.9"
}
`
	if string(s.Document.Body) != want {
		t.Errorf("attestation\n%s\nwant\n%s", s.Document.Body, want)
	}
	// Attesting again replaces the pair.
	s2, err := Attest(t.Context(), dir, AttestRequest{Version: version009, Now: testTime.Add(1e9),
		Sign: Signing{Signer: sk, BuilderID: "kim0@example.org", Dest: dest}})
	if err != nil || !bytes.Contains(s2.Document.Body, []byte(`"attested_at": "2026-07-01T10:00:01Z"`)) {
		t.Fatalf("second attest: %v", err)
	}
	if b, _ := os.ReadFile(s.Path); !bytes.Equal(b, s2.Document.Body) {
		t.Error("the second attestation did not replace the first")
	}
}

// TestAttestManifest signs a hand-made generic output directory.
func TestAttestManifest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := map[string]string{"rbnode-1.2.0-linux-amd64.tar.gz": "binary", "rbnode-1.2.0.tar.gz": "source"}
	var sums strings.Builder
	for _, n := range []string{"rbnode-1.2.0-linux-amd64.tar.gz", "rbnode-1.2.0.tar.gz"} {
		p := filepath.Join(dir, n)
		os.WriteFile(p, []byte(files[n]), 0o644)
		sums.WriteString(sum(t, p) + "  " + n + "\n")
	}
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(sums.String()), 0o644)
	sk := testKey(t, "Manifest Builder")
	dest := t.TempDir()
	req := AttestRequest{Kind: attest.KindManifest, Version: "1.2.0", Project: "rbnode", Now: testTime,
		Sign: Signing{Signer: sk, BuilderID: "fanquake", Dest: dest, Name: "noncodesigned"}}
	s, err := Attest(t.Context(), dir, req)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dest, "1.2.0", "fanquake", "noncodesigned.SHA256SUMS"); s.Path != want || string(s.Document.Body) != sums.String() {
		t.Fatalf("signed %s\n%s", s.Path, s.Document.Body)
	}
	checkSigned(t, s, sk)

	req.Project = "bitcoin"
	req.Sign.Dest = t.TempDir()
	_, err = Attest(t.Context(), dir, req)
	wantCheck(t, err, CheckError{File: "SHA256SUMS", Rule: RuleManifestBound, Detail: `artifacts are of project "rbnode", want "bitcoin"`})

	os.WriteFile(filepath.Join(dir, "ldd-x.diag.txt"), nil, 0o644)
	edit(t, dir, "SHA256SUMS", appendText(sum(t, filepath.Join(dir, "ldd-x.diag.txt"))+"  ldd-x.diag.txt\n"))
	req.Project = ""
	_, err = Attest(t.Context(), dir, req)
	wantCheck(t, err, CheckError{File: "SHA256SUMS", Rule: RuleDiagnostic, Detail: "lists ldd-x.diag.txt, a host-dependent diagnostic that is never hashed or attested"})
	noFiles(t, req.Sign.Dest)
}

// TestAttestManifestWithDirectories: a manifest may name artifacts in
// subdirectories of the output (as Bitcoin Core 22.x's do), read through
// real directories only: a directory that is a link out of the output is
// refused, and nothing is signed.
func TestAttestManifestWithDirectories(t *testing.T) {
	t.Parallel()
	const name = "x86_64-linux-gnu/rbnode-1.2.0-x86_64-linux-gnu.tar.gz"
	dir, outside := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, outside} {
		os.MkdirAll(filepath.Join(d, "x86_64-linux-gnu"), 0o755)
		os.WriteFile(filepath.Join(d, name), []byte("binary"), 0o644)
	}
	sums := sum(t, filepath.Join(dir, name)) + "  " + name + "\n"
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(sums), 0o644)
	sk := testKey(t, "Manifest Builder")
	req := AttestRequest{Kind: attest.KindManifest, Version: "1.2.0", Now: testTime,
		Sign: Signing{Signer: sk, BuilderID: "fanquake", Dest: t.TempDir(), Name: "all"}}
	s, err := Attest(t.Context(), dir, req)
	if err != nil {
		t.Fatal(err)
	}
	if string(s.Document.Body) != sums {
		t.Fatalf("signed %q", s.Document.Body)
	}

	os.RemoveAll(filepath.Join(dir, "x86_64-linux-gnu"))
	if err := os.Symlink(filepath.Join(outside, "x86_64-linux-gnu"), filepath.Join(dir, "x86_64-linux-gnu")); err != nil {
		t.Fatal(err)
	}
	req.Sign.Dest = t.TempDir()
	_, err = Attest(t.Context(), dir, req)
	wantCheck(t, err, CheckError{File: name, Rule: RuleNotRegular, Detail: "listed in SHA256SUMS, but its directory x86_64-linux-gnu is a symbolic link"})
	noFiles(t, req.Sign.Dest)
}

// failingSigner refuses to sign.
type failingSigner struct{}

func (failingSigner) Sign([]byte, time.Time) ([]byte, error) {
	return nil, errors.New("the key is on a token that is not plugged in")
}

// TestAttestSignerFails: a signer's failure writes nothing.
func TestAttestSignerFails(t *testing.T) {
	t.Parallel()
	dir, _ := goodOutput(t)
	dest := t.TempDir()
	_, err := Attest(t.Context(), dir, AttestRequest{Version: version009, Now: testTime,
		Sign: Signing{Signer: failingSigner{}, BuilderID: "b", Dest: dest}})
	if err == nil || err.Error() != "sign attestation.json: the key is on a token that is not plugged in" {
		t.Fatalf("error %v", err)
	}
	noFiles(t, dest)
}

// TestWritePairCancelled: a cancelled write leaves neither file.
func TestWritePairCancelled(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := writePair(ctx, dir, "attestation.json", []byte("{}"), []byte("sig")); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
	noFiles(t, dir)
}

// TestAttestUsage: malformed requests.
func TestAttestUsage(t *testing.T) {
	t.Parallel()
	sk := testKey(t, "U")
	sign := Signing{Signer: sk, BuilderID: "b", Dest: t.TempDir()}
	for _, c := range []struct {
		req AttestRequest
		msg string
	}{
		{AttestRequest{Version: "", Now: testTime, Sign: sign}, attest.CheckName("version", "").Error()},
		{AttestRequest{Version: "1", Now: testTime, Sign: sign, Commit: "abc"}, `commit "abc" is not 40 hex digits`},
		{AttestRequest{Version: "1", Sign: sign}, "attest needs the time to sign at"},
		{AttestRequest{Version: "1", Now: testTime, Sign: sign, Project: "p"}, "a project applies to a manifest only"},
		{AttestRequest{Version: "1", Now: testTime, Sign: sign, Kind: "other"}, `unknown document kind "other"`},
		{AttestRequest{Version: "1", Now: testTime, Sign: sign, Kind: attest.KindManifest, Commit: strings.Repeat("a", 40)}, "a manifest does not name a commit; --commit applies to a Guix output directory"},
	} {
		_, err := Attest(t.Context(), t.TempDir(), c.req)
		if !errors.Is(err, ErrUsage) || err.Error() != c.msg+": invalid build request" {
			t.Errorf("error %v, want %s", err, c.msg)
		}
	}
}

// TestFirstLine pins guix-attest's reading of the toolchain files.
func TestFirstLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want *string
	}{
		{"rustc 1.88.0\nbinary: rustc\n", ptr("rustc 1.88.0")},
		{"\n\n  rustc 1.88.0  \r\nhost: x\n", ptr("rustc 1.88.0  ")},
		{"cargo\x0bsecond", ptr("cargo")},
		{"only line", ptr("only line")},
		{" \n\t\n", nil},
		{"", nil},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "rustc-version.txt"), []byte(c.in), 0o644)
		o, err := openOutDir(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		got, err := o.firstLine("rustc-version.txt")
		o.close()
		if err != nil || (got == nil) != (c.want == nil) || got != nil && *got != *c.want {
			t.Errorf("firstLine(%q) = %v, %v", c.in, got, err)
		}
	}
}

// TestGuixCommit pins guix-attest's reading of guix-describe.json.
func TestGuixCommit(t *testing.T) {
	t.Parallel()
	h := strings.Repeat("a", 40)
	for _, c := range []struct {
		in   string
		want *string
		rule Rule
	}{
		{`[{"name":"nonguix","commit":"` + strings.Repeat("b", 40) + `"},{"name":"guix","commit":"` + h + `"}]`, ptr(h), ""},
		{`[{"name":"nonguix","commit":"` + h + `"}]`, nil, ""},
		{`[{"name":"guix","commit":null}]`, nil, ""},
		{`[{"name":"guix"}]`, nil, ""},
		{`{"commit":"` + h + `"}`, ptr(h), ""},
		{`"guix"`, nil, ""},
		{`[]`, nil, ""},
		{`["guix"]`, nil, RuleMalformed},
		{`[{"name":"guix","commit":"HEAD"}]`, nil, RuleMalformed},
		{`[{"name":"guix","commit":7}]`, nil, RuleMalformed},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "guix-describe.json"), []byte(c.in), 0o644)
		o, err := openOutDir(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		got, err := o.guixCommit()
		o.close()
		var ce *CheckError
		if c.rule != "" {
			if !errors.As(err, &ce) || ce.Rule != c.rule {
				t.Errorf("%s: error %v, want rule %s", c.in, err, c.rule)
			}
			continue
		}
		if err != nil || (got == nil) != (c.want == nil) || got != nil && *got != *c.want {
			t.Errorf("%s: %v, %v", c.in, got, err)
		}
	}
}

// TestScanNative finds flags on lines of any length, across buffer ends.
func TestScanNative(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 64<<10-5)
	for _, c := range []struct {
		in   string
		flag string
		line int
	}{
		{"a\nb\n", "", 0},
		{"a\n-march=nativ\ne", "", 0},
		{"a\nb -march=native c\n", "-march=native", 2},
		{"a\n" + long + "-mcpu=native\n", "-mcpu=native", 2},
		{long + "\n" + long + long + "target-cpu=native", "target-cpu=native", 2},
		{"\n\n\n-C target-cpu=native", "target-cpu=native", 4},
	} {
		flag, line, err := scanNative(strings.NewReader(c.in))
		if err != nil || flag != c.flag || line != c.line {
			t.Errorf("scan of %d bytes: %q line %d, %v; want %q line %d", len(c.in), flag, line, err, c.flag, c.line)
		}
	}
}

func sum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
