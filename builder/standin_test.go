package builder

// These tests hold the stand-in pipeline to the contract of
// shared/reference/guix-pipeline.md, so that what the builder is tested
// against is what it will drive.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// script runs a stand-in script (or any program) in dir.
func script(t *testing.T, dir string, env []string, argv ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// TestStandinOutputs checks every output file of the stand-in against the
// contract's table.
func TestStandinOutputs(t *testing.T) {
	t.Parallel()
	dir, commit := goodOutput(t)
	distsrc := "cuprate-0.0.9-" + commit[:12] + "-src.tar.gz"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"SHA256SUMS", "build-metadata.json", buildLog, "cargo-version.txt", distsrc, distsrc + ".SHA256SUM",
		artifact009, artifact009 + ".SHA256SUM", "guix-describe.json", "ldd-x86_64-unknown-linux-gnu.diag.txt", "rustc-version.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("outputs\n%v\nwant\n%v", names, want)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	sums := read("SHA256SUMS")
	if ok, _ := regexp.MatchString(`^[0-9a-f]{64}  `+regexp.QuoteMeta(distsrc)+`\n[0-9a-f]{64}  `+regexp.QuoteMeta(artifact009)+`\n$`, sums); !ok {
		t.Errorf("SHA256SUMS:\n%s", sums)
	}
	lines := strings.SplitAfter(sums, "\n")
	if read(distsrc+".SHA256SUM") != lines[0] || read(artifact009+".SHA256SUM") != lines[1] {
		t.Error("the sidecars are not the lines of SHA256SUMS")
	}
	wantMeta := `{
  "package": "cuprated",
  "version": "0.0.9",
  "guix_system": "x86_64-linux",
  "rust_target": "x86_64-unknown-linux-gnu",
  "source_date_epoch": 1748779200,
  "git_commit": "` + commit + `",
  "randomx_arch": "default (CMake default; build is host-CPU-independent)",
  "distsrc": "` + distsrc + `",
  "distsrc_sha256": "` + lines[0][:64] + `"
}
`
	if got := read("build-metadata.json"); got != wantMeta {
		t.Errorf("build-metadata.json\n%s\nwant\n%s", got, wantMeta)
	}
	if got := read("guix-describe.json"); !strings.HasPrefix(got, `[{"name":"guix","url":"https://git.guix.gnu.org/guix.git","branch":"master","commit":"`+channelGuix+`"`) {
		t.Errorf("guix-describe.json: %s", got)
	}
	if got := read("rustc-version.txt"); !strings.HasPrefix(got, rustcLine+"\nbinary: rustc\n") {
		t.Errorf("rustc-version.txt: %s", got)
	}

	members := tarMembers(t, filepath.Join(dir, artifact009))
	if got := slices.Collect(keys(members)); !slices.Equal(sorted(got), []string{"LICENSE-AGPL", "cuprated", "cuprated.service"}) {
		t.Errorf("artifact members %v", got)
	}
	for name, h := range members {
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(epoch009, 0)) || strings.Contains(name, "/") {
			t.Errorf("member %s: uid %d gid %d mtime %s", name, h.Uid, h.Gid, h.ModTime)
		}
	}
	if members["cuprated"].Mode&0o111 == 0 {
		t.Error("cuprated is not executable")
	}

	src := tarMembers(t, filepath.Join(dir, distsrc))
	for _, n := range []string{"./.cuprate-distsrc.json", "./.cargo/config.toml", "./vendor/", "./binaries/cuprated/Cargo.toml", "./contrib/guix/guix-build"} {
		if _, ok := src[n]; !ok {
			t.Errorf("distsrc lacks %s", n)
		}
	}
	wantDistsrcMeta := `{"package":"cuprated","version":"0.0.9","git_commit":"` + commit + `","source_date_epoch":1748779200}` + "\n"
	if got := string(src["./.cuprate-distsrc.json"].content); got != wantDistsrcMeta {
		t.Errorf(".cuprate-distsrc.json %q, want %q", got, wantDistsrcMeta)
	}
}

type member struct {
	*tar.Header
	content []byte
}

// tarMembers reads a .tar.gz written with gzip -n.
func tarMembers(t *testing.T, path string) map[string]member {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("%s: gzip header has name %q, time %s: not gzip -n", path, zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	out := map[string]member{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = member{h, b}
	}
}

func keys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func sorted(s []string) []string { slices.Sort(s); return s }

// TestStandinScripts runs the scripts by hand, as a builder would without
// rbnode, through the contract's failure modes.
func TestStandinScripts(t *testing.T) {
	t.Parallel()
	repo, commits := standin(t, filepath.Join(t.TempDir(), "cuprate"))
	env := buildEnv()
	g := func(name string) string { return filepath.Join(repo, "contrib", "guix", name) }
	fails := func(msg string, env []string, argv ...string) {
		t.Helper()
		_, stderr, code := script(t, repo, env, argv...)
		if code != 1 || !strings.Contains(stderr, msg) {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 and %q", strings.Join(argv, " "), code, stderr, msg)
		}
	}
	outside := t.TempDir()

	fails("unknown argument: --bogus", env, g("guix-mk-distsrc"), "--bogus")
	fails("--out-dir must resolve inside the repository", env, g("guix-mk-distsrc"), "--out-dir", outside)

	// HEAD is 0.1.0; build 0.0.9's distsrc from a checkout of its tag.
	if _, err := git(repo, date010, "checkout", "-q", "cuprated-0.0.9"); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := script(t, repo, env, g("guix-mk-distsrc"), "--", "x86_64-linux")
	distsrc := filepath.Join(repo, "contrib", "guix", "out", "cuprate-0.0.9-"+commits[version009][:12]+"-src.tar.gz")
	if code != 0 || lastLineOf(stdout) != distsrc {
		t.Fatalf("guix-mk-distsrc: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	os.WriteFile(filepath.Join(outside, "d.tar.gz"), nil, 0o644)

	fails("missing required --distsrc", env, g("guix-build"))
	fails("distsrc not found", env, g("guix-build"), "--distsrc", filepath.Join(repo, "nope.tar.gz"))
	fails("distsrc must be inside the repository", env, g("guix-build"), "--distsrc", filepath.Join(outside, "d.tar.gz"))
	fails("only --package cuprated is supported", env, g("guix-build"), "--distsrc", distsrc, "--package", "cuprate-rpc")
	fails("--out-dir must resolve inside the repository", env, g("guix-build"), "--distsrc", distsrc, "--out-dir", outside)
	fails("unknown argument: --jobs", env, g("guix-build"), "--distsrc", distsrc, "--jobs", "4")
	fails("ERROR: guix not on PATH", withoutGuix(t), g("guix-build"), "--distsrc", distsrc)

	// Back on 0.1.0 the outer HEAD is not the distsrc's commit.
	if _, err := git(repo, date010, "checkout", "-q", "main"); err != nil {
		t.Fatal(err)
	}
	fails("outer checkout "+commits[version010]+" differs from distsrc commit "+commits[version009], env, g("guix-build"), "--distsrc", distsrc)
	if _, stderr, code := script(t, repo, append(env, "GUIX_ALLOW_COMMIT_MISMATCH=1"), g("guix-build"), "--distsrc", distsrc); code != 0 {
		t.Fatalf("GUIX_ALLOW_COMMIT_MISMATCH=1 was not honoured: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := script(t, repo, env, g("guix-checksums")); code != 0 {
		t.Fatalf("guix-checksums with the default out dir: exit %d\n%s", code, stderr)
	}
	fails("output directory not found", env, g("guix-checksums"), filepath.Join(repo, "nope"))

	// A dirty tree is refused.
	os.WriteFile(filepath.Join(repo, "LICENSE-AGPL"), []byte("changed\n"), 0o644)
	fails("working tree is dirty", env, g("guix-mk-distsrc"))

	// guix-verify: integrity against the sidecar.
	art := filepath.Join(repo, "contrib", "guix", "out", artifact009)
	if _, stderr, code := script(t, repo, env, g("guix-verify"), art); code != 0 {
		t.Errorf("guix-verify: exit %d\n%s", code, stderr)
	}
	f, _ := os.OpenFile(art, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("x")
	f.Close()
	if _, _, code := script(t, repo, env, g("guix-verify"), art); code == 0 {
		t.Error("guix-verify accepted a changed archive")
	}
	fails("usage:", env, g("guix-verify"))
}

func lastLineOf(s string) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return l[len(l)-1]
}

// TestStandinGuixAttest runs the stand-in guix-attest with gpg and the
// same key: it writes the same attestation as Attest, in the same place,
// and its signature verifies with attest.
func TestStandinGuixAttest(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg is not installed")
	}
	dir, _ := goodOutput(t)
	sk := testKey(t, "Gpg Builder")
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	env := append(buildEnv(), "GNUPGHOME="+home)
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	armored, err := sk.Armored()
	if err != nil {
		t.Fatal(err)
	}
	imp := exec.Command("gpg", "--batch", "--import")
	imp.Env, imp.Stdin = env, bytes.NewReader(armored)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	root := t.TempDir()
	if _, err := git(root, date009, "init", "-q"); err != nil {
		t.Fatal(err)
	}
	attestScript, _ := filepath.Abs("testdata/standin/contrib/guix/guix-attest")
	const id = "gpg builder <gpg@example.org>"
	if _, stderr, code := script(t, root, env, "bash", attestScript, dir, id, version009); code != 0 {
		t.Fatalf("guix-attest: exit %d\n%s", code, stderr)
	}
	sigDir := filepath.Join(root, "contrib", "guix", "sigs", version009, "gpg_builder__gpg_example.org_")
	body, err := os.ReadFile(filepath.Join(sigDir, "attestation.json"))
	if err != nil {
		t.Fatal(err)
	}
	sigb, err := os.ReadFile(filepath.Join(sigDir, "attestation.json.asc"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := attest.DecodeAttestation(body)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := attest.ParseSignature(sigb)
	if err != nil {
		t.Fatal(err)
	}
	if v := attest.NewKeyring(sk.Public()).Verify(body, sig, a.AttestedAt.Add(time.Minute)); !v.OK() {
		t.Errorf("gpg's signature: %s %s", v.Status, v.Detail)
	}
	ours, err := Attest(t.Context(), dir, AttestRequest{Version: version009, Now: a.AttestedAt,
		Sign: Signing{Signer: sk, BuilderID: id, Dest: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours.Document.Body, body) {
		t.Errorf("guix-attest wrote\n%s\nAttest wrote\n%s", body, ours.Document.Body)
	}
	if rel, _ := filepath.Rel(filepath.Dir(filepath.Dir(filepath.Dir(ours.Path))), ours.Path); rel != filepath.Join(version009, filepath.Base(sigDir), "attestation.json") {
		t.Errorf("Attest's layout %s differs from guix-attest's %s", rel, sigDir)
	}
}

// TestSanitizeLikeGuixAttest: the builder id's directory name is what
// guix-attest's `tr -c 'A-Za-z0-9_.+-' '_'` makes of it, byte for byte.
func TestSanitizeLikeGuixAttest(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"alice", "Zoë ☃", "kim <kim@example.org>", "a\x01b\x7f", "\xff\xfe", "日本"} {
		tr := exec.Command("tr", "-c", "A-Za-z0-9_.+-", "_")
		tr.Stdin = strings.NewReader(id)
		want, err := tr.Output()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := attest.SanitizeBuilderID(id); err != nil || got != string(want) {
			t.Errorf("SanitizeBuilderID(%q) = %q, %v; tr -c makes %q", id, got, err, want)
		}
	}
}
