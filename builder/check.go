package builder

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rbnode/rbnode/attest"
)

// Files of a Guix pipeline output directory.
const (
	fileSums     = "SHA256SUMS"
	fileMetadata = "build-metadata.json"
	fileDescribe = "guix-describe.json"
	fileRustc    = "rustc-version.txt"
	fileCargo    = "cargo-version.txt"
	sidecarExt   = ".SHA256SUM"
)

// nativeFlags are the host-CPU code generation flags no log may show.
var nativeFlags = []string{"-march=native", "-mcpu=native", "target-cpu=native"}

// maxSmallFile caps the JSON and text files the checks read whole.
const maxSmallFile = 1 << 20

// outDir is an output directory under check. Every file is reached
// through an os.Root, so no name in a manifest can lead outside it, and
// every hash is computed once.
type outDir struct {
	ctx   context.Context
	root  *os.Root
	names []string // the directory's entries, sorted
	sums  map[string]Artifact
}

func openOutDir(ctx context.Context, dir string) (*outDir, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open output directory: %w", err)
	}
	f, err := root.Open(".")
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("read output directory: %w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("read output directory: %w", err)
	}
	slices.Sort(names)
	o := &outDir{ctx: ctx, root: root, names: names, sums: map[string]Artifact{}}
	for _, n := range names {
		if err := attest.CheckName("file name", n); err != nil {
			o.close()
			return nil, checkErr(n, RuleName, err, "%v", err)
		}
	}
	return o, nil
}

func (o *outDir) close() { o.root.Close() }

// regular makes sure name is a regular file in the directory. A name with
// directories (as a manifest may list) is looked up through real
// directories only: a symbolic link on the way is refused, and the root
// confines every lookup to the output directory anyway.
func (o *outDir) regular(name, why string) error {
	if err := attest.CheckPath("file name", name); err != nil {
		return checkErr(name, RuleName, err, "%s: %v", why, err)
	}
	for i := range len(name) {
		if name[i] != '/' {
			continue
		}
		dir := name[:i]
		fi, err := o.root.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return checkErr(name, RuleMissing, err, "%s, but its directory %s is not in the output directory", why, dir)
		}
		if err != nil {
			return fmt.Errorf("check %s: %w", name, err)
		}
		if !fi.IsDir() {
			return checkErr(name, RuleNotRegular, nil, "%s, but its directory %s is a %s", why, dir, fileKind(fi.Mode()))
		}
	}
	fi, err := o.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return checkErr(name, RuleMissing, err, "%s, but it is not in the output directory", why)
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return checkErr(name, RuleNotRegular, nil, "%s, but it is a %s", why, fileKind(fi.Mode()))
	}
	return nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "directory"
	}
	return "special file"
}

// sum hashes a regular file once.
func (o *outDir) sum(name, why string) (Artifact, error) {
	if a, ok := o.sums[name]; ok {
		return a, nil
	}
	if err := o.ctx.Err(); err != nil {
		return Artifact{}, err
	}
	if err := o.regular(name, why); err != nil {
		return Artifact{}, err
	}
	f, err := o.root.Open(name)
	if err != nil {
		return Artifact{}, fmt.Errorf("hash %s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Artifact{}, fmt.Errorf("hash %s: %w", name, err)
	}
	a := Artifact{Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}
	o.sums[name] = a
	return a, nil
}

// read returns a small file whole.
func (o *outDir) read(name, why string) ([]byte, error) {
	if err := o.regular(name, why); err != nil {
		return nil, err
	}
	f, err := o.root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSmallFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxSmallFile {
		return nil, checkErr(name, RuleMalformed, nil, "is larger than %d bytes", maxSmallFile)
	}
	return b, nil
}

// manifest parses a sha256sum file. Unsafe names are RuleName, anything
// else malformed is rule.
func (o *outDir) manifest(name, why string, rule Rule) (*attest.Manifest, []byte, error) {
	b, err := o.read(name, why)
	if err != nil {
		return nil, nil, err
	}
	m, err := attest.ParseManifest(b)
	if errors.Is(err, attest.ErrBadName) {
		return nil, nil, checkErr(name, RuleName, err, "%v", err)
	}
	if err != nil {
		return nil, nil, checkErr(name, rule, err, "%v", err)
	}
	return m, b, nil
}

// agrees checks that every entry of manifest file name hashes as listed.
func (o *outDir) agrees(name string, m *attest.Manifest, rule Rule) error {
	for _, e := range m.Entries {
		got, err := o.sum(e.Name, "listed in "+name)
		if err != nil {
			return err
		}
		if got.SHA256 != e.SHA256 {
			return checkErr(name, rule, nil, "lists %s with sha256 %s, but the file hashes to %s", e.Name, e.SHA256, got.SHA256)
		}
	}
	return nil
}

// sidecars checks every <file>.SHA256SUM in the directory: it names its
// file, once, with the file's hash. required lists files that must have
// one.
func (o *outDir) sidecars(required ...string) error {
	for _, f := range required {
		if err := o.regular(f+sidecarExt, "the sidecar of "+f+" is required"); err != nil {
			return err
		}
	}
	for _, n := range o.names {
		target, ok := strings.CutSuffix(n, sidecarExt)
		if !ok {
			continue
		}
		m, _, err := o.manifest(n, "a sidecar", RuleSidecar)
		if err != nil {
			return err
		}
		if len(m.Entries) != 1 || m.Entries[0].Name != target {
			return checkErr(n, RuleSidecar, nil, "must hold exactly one line, for %s", target)
		}
		if err := o.agrees(n, m, RuleSidecar); err != nil {
			return err
		}
	}
	return nil
}

// logs scans every *.log in the directory for host-CPU flags. required
// lists logs that must exist.
func (o *outDir) logs(required ...string) error {
	for _, f := range required {
		if err := o.regular(f, "the build log is required"); err != nil {
			return err
		}
	}
	for _, n := range o.names {
		if !strings.HasSuffix(n, ".log") {
			continue
		}
		if err := o.regular(n, "a log"); err != nil {
			return err
		}
		f, err := o.root.Open(n)
		if err != nil {
			return fmt.Errorf("read %s: %w", n, err)
		}
		flag, line, err := scanNative(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", n, err)
		}
		if flag != "" {
			return checkErr(n, RuleNativeFlags, nil, "line %d has %s: the build depends on the host CPU", line, flag)
		}
	}
	return nil
}

// scanNative returns the first native-arch flag in r and its line number.
// Lines of any length are scanned.
func scanNative(r io.Reader) (string, int, error) {
	longest := 0
	for _, f := range nativeFlags {
		longest = max(longest, len(f))
	}
	br := bufio.NewReaderSize(r, 64<<10)
	line := 1
	var carry []byte
	for {
		frag, err := br.ReadSlice('\n')
		buf := append(carry, frag...)
		for _, f := range nativeFlags {
			if bytes.Contains(buf, []byte(f)) {
				return f, line, nil
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			carry = bytes.Clone(buf[len(buf)-min(len(buf), longest-1):])
		case err == nil:
			line++
			carry = carry[:0]
		case errors.Is(err, io.EOF):
			return "", 0, nil
		default:
			return "", 0, err
		}
	}
}

// buildMetadata is build-metadata.json. Every field is required.
type buildMetadata struct {
	Package         *string      `json:"package"`
	Version         *string      `json:"version"`
	GuixSystem      *string      `json:"guix_system"`
	RustTarget      *string      `json:"rust_target"`
	SourceDateEpoch *json.Number `json:"source_date_epoch"`
	GitCommit       *string      `json:"git_commit"`
	RandomxArch     *string      `json:"randomx_arch"`
	Distsrc         *string      `json:"distsrc"`
	DistsrcSHA256   *string      `json:"distsrc_sha256"`
}

// want is what the outputs must be of.
type want struct {
	version string
	commit  string // optional, 40 hex
}

// checkGuix checks a Cuprate Guix pipeline output directory against the
// contract and returns the attestation it supports, without builder_id and
// attested_at.
func checkGuix(ctx context.Context, dir string, w want) (*attest.Attestation, []Artifact, error) {
	o, err := openOutDir(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	defer o.close()
	for _, f := range []string{fileMetadata, fileSums, fileDescribe, fileRustc, fileCargo} {
		if err := o.regular(f, "the pipeline writes it"); err != nil {
			return nil, nil, err
		}
	}
	a, err := o.metadata(w)
	if err != nil {
		return nil, nil, err
	}
	distsrc, err := o.sum(a.Distsrc.Filename, "build-metadata.json names it as the distsrc")
	if err != nil {
		return nil, nil, err
	}
	if distsrc.SHA256 != a.Distsrc.SHA256 {
		return nil, nil, checkErr(fileMetadata, RuleMetadata, nil, "distsrc_sha256 is %s, but %s hashes to %s", a.Distsrc.SHA256, distsrc.Name, distsrc.SHA256)
	}
	artifact, err := o.sum(a.Artifact.Filename, "it is the artifact of build-metadata.json's version and rust_target")
	if err != nil {
		return nil, nil, err
	}
	a.Artifact.SHA256, a.Artifact.Size = artifact.SHA256, artifact.Size

	m, _, err := o.manifest(fileSums, "the pipeline writes it", RuleSums)
	if err != nil {
		return nil, nil, err
	}
	names := []string{distsrc.Name, artifact.Name}
	slices.Sort(names) // C-locale order: bytes
	if len(m.Entries) != 2 || m.Entries[0].Name != names[0] || m.Entries[1].Name != names[1] {
		listed := make([]string, len(m.Entries))
		for i, e := range m.Entries {
			listed[i] = e.Name
		}
		return nil, nil, checkErr(fileSums, RuleSums, nil, "lists [%s], want exactly [%s]", strings.Join(listed, " "), strings.Join(names, " "))
	}
	if err := o.agrees(fileSums, m, RuleSums); err != nil {
		return nil, nil, err
	}
	if err := o.sidecars(distsrc.Name, artifact.Name); err != nil {
		return nil, nil, err
	}
	if err := o.logs("build-" + a.RustTarget + ".log"); err != nil {
		return nil, nil, err
	}
	if a.GuixChannelCommit, err = o.guixCommit(); err != nil {
		return nil, nil, err
	}
	if a.RustcVersion, err = o.firstLine(fileRustc); err != nil {
		return nil, nil, err
	}
	if a.CargoVersion, err = o.firstLine(fileCargo); err != nil {
		return nil, nil, err
	}
	return a, []Artifact{distsrc, artifact}, nil
}

// metadata reads build-metadata.json and checks it against w: the
// attestation's fields, with the artifact's hash and size still to fill.
func (o *outDir) metadata(w want) (*attest.Attestation, error) {
	b, err := o.read(fileMetadata, "the pipeline writes it")
	if err != nil {
		return nil, err
	}
	return parseMetadata(b, w)
}

func parseMetadata(b []byte, w want) (*attest.Attestation, error) {
	var m buildMetadata
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, checkErr(fileMetadata, RuleMalformed, err, "not a JSON object of the contract's fields: %v", err)
	}
	fields := []struct {
		key string
		v   *string
	}{
		{"package", m.Package}, {"version", m.Version}, {"guix_system", m.GuixSystem},
		{"rust_target", m.RustTarget}, {"git_commit", m.GitCommit}, {"randomx_arch", m.RandomxArch},
		{"distsrc", m.Distsrc}, {"distsrc_sha256", m.DistsrcSHA256},
	}
	for _, f := range fields {
		if f.v == nil {
			return nil, checkErr(fileMetadata, RuleMalformed, nil, "field %q is missing", f.key)
		}
	}
	if m.SourceDateEpoch == nil {
		return nil, checkErr(fileMetadata, RuleMalformed, nil, "field %q is missing", "source_date_epoch")
	}
	for _, f := range fields[:4] {
		if err := attest.CheckName(f.key, *f.v); err != nil {
			return nil, checkErr(fileMetadata, RuleName, err, "%v", err)
		}
	}
	if err := attest.CheckName("distsrc", *m.Distsrc); err != nil {
		return nil, checkErr(fileMetadata, RuleName, err, "%v", err)
	}
	sde, err := strconv.ParseInt(m.SourceDateEpoch.String(), 10, 64)
	if err != nil || sde < 0 {
		return nil, checkErr(fileMetadata, RuleMalformed, nil, "source_date_epoch %s is not a non-negative integer", m.SourceDateEpoch)
	}
	commit := *m.GitCommit
	if !isLowerHex(commit, 40) {
		return nil, checkErr(fileMetadata, RuleMalformed, nil, "git_commit %q is not 40 lowercase hex digits", commit)
	}
	if !isLowerHex(*m.DistsrcSHA256, 64) {
		return nil, checkErr(fileMetadata, RuleMalformed, nil, "distsrc_sha256 %q is not 64 lowercase hex digits", *m.DistsrcSHA256)
	}
	if *m.Version != w.version {
		return nil, checkErr(fileMetadata, RuleMetadata, nil, "version is %q, but %q was built", *m.Version, w.version)
	}
	if w.commit != "" && commit != w.commit {
		return nil, checkErr(fileMetadata, RuleMetadata, nil, "git_commit is %s, but %s was built", commit, w.commit)
	}
	// cuprate-<version>-<short commit>-src.tar.gz; git may make the short
	// commit longer than 12 digits to keep it unique.
	short, ok := strings.CutPrefix(*m.Distsrc, "cuprate-"+*m.Version+"-")
	if ok {
		short, ok = strings.CutSuffix(short, "-src.tar.gz")
	}
	if !ok || len(short) < 12 || !strings.HasPrefix(commit, short) {
		return nil, checkErr(fileMetadata, RuleMetadata, nil, "distsrc %q is not cuprate-%s-<short git_commit>-src.tar.gz of %s", *m.Distsrc, *m.Version, commit)
	}
	return &attest.Attestation{
		Schema:          attest.AttestationSchema,
		Package:         *m.Package,
		Version:         *m.Version,
		GitCommit:       commit,
		SourceDateEpoch: sde,
		GuixSystem:      *m.GuixSystem,
		RustTarget:      *m.RustTarget,
		Artifact:        attest.File{Filename: "cuprated-" + *m.Version + "-" + *m.RustTarget + ".tar.gz"},
		Distsrc:         attest.File{Filename: *m.Distsrc, SHA256: *m.DistsrcSHA256, Size: -1},
	}, nil
}

// guixCommit reads guix-describe.json as guix-attest does: the commit of
// the first channel named "guix" (or of the object itself, if it is one),
// nil when there is none.
func (o *outDir) guixCommit() (*string, error) {
	b, err := o.read(fileDescribe, "the pipeline writes it")
	if err != nil {
		return nil, err
	}
	return parseDescribe(b)
}

func parseDescribe(b []byte) (*string, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, checkErr(fileDescribe, RuleMalformed, err, "not JSON: %v", err)
	}
	var commit any
	switch d := v.(type) {
	case []any:
		for i, ch := range d {
			obj, ok := ch.(map[string]any)
			if !ok {
				return nil, checkErr(fileDescribe, RuleMalformed, nil, "channel %d is not an object", i)
			}
			if obj["name"] == "guix" {
				commit = obj["commit"]
				break
			}
		}
	case map[string]any:
		commit = d["commit"]
	}
	switch c := commit.(type) {
	case nil:
		return nil, nil
	case string:
		if !isLowerHex(c, 40) {
			return nil, checkErr(fileDescribe, RuleMalformed, nil, "the guix channel's commit %q is not 40 lowercase hex digits", c)
		}
		return &c, nil
	}
	return nil, checkErr(fileDescribe, RuleMalformed, nil, "the guix channel's commit is not a string")
}

// firstLine is guix-attest's `text.strip().splitlines()[0]`, nil for a
// file of only whitespace.
func (o *outDir) firstLine(name string) (*string, error) {
	b, err := o.read(name, "the pipeline writes it")
	if err != nil {
		return nil, err
	}
	return firstLineOf(name, b)
}

func firstLineOf(name string, b []byte) (*string, error) {
	if !utf8.Valid(b) {
		return nil, checkErr(name, RuleMalformed, nil, "is not UTF-8")
	}
	s := strings.TrimFunc(string(b), pySpace)
	if s == "" {
		return nil, nil
	}
	if i := strings.IndexFunc(s, pyLineBreak); i >= 0 {
		s = s[:i]
	}
	return &s, nil
}

// pySpace is Python's str.isspace for one character.
func pySpace(r rune) bool { return unicode.IsSpace(r) || 0x1c <= r && r <= 0x1f }

// pyLineBreak is a line boundary of Python's str.splitlines.
func pyLineBreak(r rune) bool {
	switch r {
	case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
		return true
	}
	return false
}

// checkManifest checks a generic pipeline's output directory: SHA256SUMS
// agrees with the files and binds to version (and project, if given). It
// returns the exact SHA256SUMS bytes to sign.
func checkManifest(ctx context.Context, dir, version, project string) ([]byte, []Artifact, error) {
	o, err := openOutDir(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	defer o.close()
	m, body, err := o.manifest(fileSums, "the pipeline must write it", RuleSums)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, e := range m.Entries {
		if seen[e.Name] {
			return nil, nil, checkErr(fileSums, RuleSums, nil, "lists %s twice", e.Name)
		}
		seen[e.Name] = true
		if strings.HasSuffix(e.Name, ".diag.txt") {
			return nil, nil, checkErr(fileSums, RuleDiagnostic, nil, "lists %s, a host-dependent diagnostic that is never hashed or attested", e.Name)
		}
	}
	got, err := attest.BindManifest(m, version)
	if err != nil {
		return nil, nil, checkErr(fileSums, RuleManifestBound, err, "%v", err)
	}
	if project != "" && got != project {
		return nil, nil, checkErr(fileSums, RuleManifestBound, nil, "artifacts are of project %q, want %q", got, project)
	}
	if err := o.agrees(fileSums, m, RuleSums); err != nil {
		return nil, nil, err
	}
	if err := o.sidecars(); err != nil {
		return nil, nil, err
	}
	if err := o.logs(); err != nil {
		return nil, nil, err
	}
	arts := make([]Artifact, len(m.Entries))
	for i, e := range m.Entries {
		arts[i] = o.sums[e.Name]
	}
	return body, arts, nil
}

func isLowerHex(s string, n int) bool {
	return len(s) == n && strings.IndexFunc(s, func(r rune) bool {
		return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f')
	}) < 0
}
