package builder

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// DefaultTagPattern is Cuprate's release tag: cuprated-<version>.
const DefaultTagPattern = "cuprated-{version}"

// DefaultManifestName is the guix.sigs file a pipeline's manifest is
// signed as: <version>/<signer>/all.SHA256SUMS.
const DefaultManifestName = "all"

// Request describes one build. Repo, Version and WorkDir are required.
type Request struct {
	// Repo is the user's checkout (any directory of it). It is only read:
	// the build runs in a --no-local clone of it under WorkDir, removed
	// afterwards.
	Repo string
	// Version is the release to build and attest.
	Version string
	// Commit, if set (4 to 40 hex digits), is built instead of the commit
	// the release tag names.
	Commit string
	// TagPattern names the release tag; "{version}" stands for Version.
	// Default DefaultTagPattern.
	TagPattern string
	// WorkDir holds the build: src/ (the clone, removed at the end),
	// out/ (the outputs, kept), logs/ and, after a failure, evidence/ (what
	// the scripts left in contrib/guix/.work). It must not exist or be
	// empty, and must lie outside the repository.
	WorkDir string
	// LogDir receives one <stage>.log per stage. Default WorkDir/logs.
	LogDir string

	// GuixSystem and Target are passed to the Guix scripts as
	// --guix-system and --target when set; empty leaves the scripts'
	// defaults (x86_64-linux, x86_64-unknown-linux-gnu).
	GuixSystem string
	Target     string

	// Pipeline, if set, replaces the Cuprate Guix scripts by a command run
	// as `sh -c Pipeline` in the clone, with OUT_DIR, VERSION, COMMIT and
	// SOURCE_DATE_EPOCH (the commit time) in its environment. It must fill
	// OUT_DIR with artifacts and a SHA256SUMS over them.
	Pipeline string
	// Project, with Pipeline, is the project every manifest entry must
	// name (<project>-<version>...). Empty accepts whatever project the
	// manifest names consistently.
	Project string

	// Env is the environment of every subprocess; nil means os.Environ().
	// The builder drops GIT_DIR and its kin, and sets
	// GUIX_ALLOW_COMMIT_MISMATCH=0.
	Env []string
	// Timeouts bound each stage; zero fields take DefaultTimeouts.
	Timeouts Timeouts
	// Progress, if set, is called while stages run: at a stage's start
	// and end, on new output at most every 100ms, and every second. It
	// is called from the goroutine running Build and must return quickly.
	Progress func(Progress)
	// Sign, if set, signs the checked outputs. Nil builds and checks only.
	Sign *Signing
	// Clock gives the times of the record and of the signature
	// (attested_at). Default time.Now.
	Clock func() time.Time
}

// Timeouts bound the stages of a build. A zero field takes its default.
type Timeouts struct {
	Git       time.Duration // each git command (default 10m)
	Distsrc   time.Duration // guix-mk-distsrc (default 2h: cargo vendor, the first guix time-machine)
	Build     time.Duration // guix-build (default 6h)
	Checksums time.Duration // guix-checksums (default 10m)
	Pipeline  time.Duration // the generic pipeline command (default 6h)
	// Grace is how long a cancelled stage's process group has between
	// SIGTERM and SIGKILL (default 10s).
	Grace time.Duration
}

// DefaultTimeouts returns the defaults of every Timeouts field.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		Git:       10 * time.Minute,
		Distsrc:   2 * time.Hour,
		Build:     6 * time.Hour,
		Checksums: 10 * time.Minute,
		Pipeline:  6 * time.Hour,
		Grace:     10 * time.Second,
	}
}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts()
	for _, f := range []struct{ v, def *time.Duration }{
		{&t.Git, &d.Git}, {&t.Distsrc, &d.Distsrc}, {&t.Build, &d.Build},
		{&t.Checksums, &d.Checksums}, {&t.Pipeline, &d.Pipeline}, {&t.Grace, &d.Grace},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return t
}

// Signer makes a detached, ASCII-armoured OpenPGP signature over exactly
// body, dated now. It must not keep body. *attest.SecretKey is one; a node
// may wrap its key in anything with this method (an agent, a remote
// signer). An error aborts the signing and nothing is written.
type Signer interface {
	Sign(body []byte, now time.Time) ([]byte, error)
}

var _ Signer = (*attest.SecretKey)(nil)

// Signing says who signs and where the signed document goes.
type Signing struct {
	Signer Signer
	// BuilderID is free text, written as the attestation's builder_id; its
	// sanitized form (attest.SanitizeBuilderID) names the directory.
	BuilderID string
	// Dest is the root the document is written under:
	//   Guix:     Dest/contrib/guix/sigs/<version>/<sanitized id>/attestation.json
	//   pipeline: Dest/<version>/<sanitized id>/<Name>.SHA256SUMS
	// each with its detached signature beside it (+ ".asc"). For the Guix
	// layout Dest is a Cuprate checkout's root (where guix-attest writes);
	// for a pipeline it is a guix.sigs-style repository.
	Dest string
	// Name is a pipeline manifest's base name (default DefaultManifestName).
	Name string
}

// check checks s, fills its defaults and returns the sanitized builder id.
func (s *Signing) check() (string, error) {
	if s.Signer == nil {
		return "", usagef("signing needs a Signer")
	}
	if len(s.BuilderID) > attest.MaxNameLen {
		return "", usagef("builder id is longer than %d bytes", attest.MaxNameLen)
	}
	dir, err := attest.SanitizeBuilderID(s.BuilderID)
	if err != nil {
		return "", usagef("%v", err)
	}
	if s.Dest == "" {
		return "", usagef("signing needs a destination directory")
	}
	if s.Dest, err = filepath.Abs(s.Dest); err != nil {
		return "", usagef("destination: %v", err)
	}
	if s.Name == "" {
		s.Name = DefaultManifestName
	}
	if err := attest.CheckName("manifest name", s.Name); err != nil {
		return "", usagef("%v", err)
	}
	return dir, nil
}

// normalize checks r and fills its defaults.
func (r *Request) normalize() error {
	var err error
	if r.Repo == "" {
		return usagef("a repository is required")
	}
	if r.Repo, err = filepath.Abs(r.Repo); err != nil {
		return usagef("repository: %v", err)
	}
	if fi, err := os.Stat(r.Repo); err != nil || !fi.IsDir() {
		return usagef("repository %s is not a directory", Printable(r.Repo))
	}
	if err := attest.CheckName("version", r.Version); err != nil {
		return usagef("%v", err)
	}
	if r.Commit != "" && !isHex(r.Commit, 4, 40) {
		return usagef("commit %q is not 4 to 40 hex digits", r.Commit)
	}
	if r.TagPattern == "" {
		r.TagPattern = DefaultTagPattern
	}
	if !strings.Contains(r.TagPattern, "{version}") {
		return usagef("tag pattern %q has no {version}", r.TagPattern)
	}
	if r.WorkDir == "" {
		return usagef("a work directory is required")
	}
	if r.WorkDir, err = filepath.Abs(r.WorkDir); err != nil {
		return usagef("work directory: %v", err)
	}
	if err := emptyOrMissing(r.WorkDir); err != nil {
		return err
	}
	if r.LogDir == "" {
		r.LogDir = filepath.Join(r.WorkDir, "logs")
	}
	if r.LogDir, err = filepath.Abs(r.LogDir); err != nil {
		return usagef("log directory: %v", err)
	}
	if r.Pipeline != "" {
		if r.GuixSystem != "" || r.Target != "" {
			return usagef("--guix-system and --target apply to the Guix pipeline, not to a --pipeline command")
		}
		if r.Project != "" {
			if err := attest.CheckName("project", r.Project); err != nil {
				return usagef("%v", err)
			}
		}
	} else {
		if r.Project != "" {
			return usagef("a project applies to a --pipeline build only")
		}
		for _, n := range []struct{ what, v string }{{"guix system", r.GuixSystem}, {"target", r.Target}} {
			if n.v != "" {
				if err := attest.CheckName(n.what, n.v); err != nil {
					return usagef("%v", err)
				}
				if strings.HasPrefix(n.v, "-") {
					return usagef("%s %q starts with '-'", n.what, n.v)
				}
			}
		}
	}
	if r.Env == nil {
		r.Env = os.Environ()
	}
	r.Env = cleanEnv(r.Env)
	r.Timeouts = r.Timeouts.withDefaults()
	if r.Clock == nil {
		r.Clock = time.Now
	}
	if r.Sign != nil {
		s := *r.Sign
		if _, err := s.check(); err != nil {
			return err
		}
		r.Sign = &s
	}
	return nil
}

func emptyOrMissing(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return usagef("work directory: %v", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.IsDir() {
		return usagef("work directory %s is not a directory", Printable(dir))
	}
	if _, err := f.Readdirnames(1); !errors.Is(err, io.EOF) {
		return usagef("work directory %s is not empty; give each build its own", Printable(dir))
	}
	return nil
}

func usagef(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrUsage)
}

func isHex(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// within reports whether p is dir or below it, symlinks resolved.
func within(p, dir string) bool {
	rel, err := filepath.Rel(resolved(dir), resolved(p))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// resolved returns p with the symlinks of its longest existing prefix
// resolved.
func resolved(p string) string {
	rest := ""
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest)
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}
