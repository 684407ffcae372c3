package node

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node/store"
)

// ErrUnknownRelease is returned for a version no stored document names.
var ErrUnknownRelease = errors.New("no documents for this release")

// quorum returns q, or the configured quorum when q is 0.
func (n *Node) quorum(q int) int {
	if q > 0 {
		return q
	}
	return n.settings().Quorum
}

// ResolveProject finds the project of a version: the given one, the
// configured default, or the only project with documents for it. Where
// several projects have documents for the version, only those with a
// document by a trusted key count: untrusted documents are listed by
// status, but never make a version ambiguous.
func (n *Node) ResolveProject(project, version string) (string, error) {
	ts, err := n.TrustSet()
	if err != nil {
		return "", err
	}
	return n.resolveProject(project, version, ts)
}

func (n *Node) resolveProject(project, version string, ts attest.TrustSet) (string, error) {
	if err := attest.CheckName("version", version); err != nil {
		return "", usageErr(err)
	}
	if project != "" {
		return project, nil
	}
	if def := n.settings().Project; def != "" {
		return def, nil
	}
	projects, err := n.store.Projects(version)
	if err != nil {
		return "", err
	}
	switch len(projects) {
	case 0:
		return "", fmt.Errorf("version %s: %w", version, ErrUnknownRelease)
	case 1:
		return projects[0], nil
	}
	var counted []string
	for _, p := range projects {
		docs, err := n.store.Release(p, version)
		if err != nil {
			return "", fmt.Errorf("read release %s %s: %w", p, version, err)
		}
		if slices.ContainsFunc(docs, func(d store.StoredDoc) bool {
			v := d.Meta.Verification
			_, ok := ts[v.Fingerprint]
			return ok && v.OK()
		}) {
			counted = append(counted, p)
		}
	}
	switch len(counted) {
	case 0:
		return "", fmt.Errorf("version %s: no trusted builder has attested it (untrusted documents name it in %s; choose one with --project to see them): %w",
			version, strings.Join(projects, ", "), ErrUnknownRelease)
	case 1:
		return counted[0], nil
	}
	return "", usagef("version %s exists in several projects (%s); choose one with --project", version, strings.Join(counted, ", "))
}

// Status computes the verdict over one release from the stored documents,
// the trust set and quorum (0: the configured quorum). Rejected input
// logged for that version is listed in the report too.
func (n *Node) Status(project, version string, quorum int) (*attest.Report, error) {
	ts, err := n.TrustSet()
	if err != nil {
		return nil, err
	}
	project, err = n.resolveProject(project, version, ts)
	if err != nil {
		return nil, err
	}
	return n.status(project, version, quorum, ts)
}

// status is Status for a resolved project, with the trust set read once
// by the caller (a listing judges every release against the same one).
func (n *Node) status(project, version string, quorum int, ts attest.TrustSet) (*attest.Report, error) {
	docs, err := n.store.Release(project, version)
	if err != nil {
		return nil, fmt.Errorf("read release %s %s: %w", project, version, err)
	}
	claims, err := storedClaims(docs)
	if err != nil {
		return nil, err
	}
	r := attest.Tally(project, version, claims, ts, n.quorum(quorum))
	rejs, err := n.store.Rejections(project, version)
	if err != nil {
		return nil, err
	}
	for _, x := range rejs {
		r.Rejected = append(r.Rejected, attest.DocRef{
			File: x.File, Signer: x.Signer, KeyID: x.KeyID, Reason: x.Reason, Detail: x.Detail,
		})
	}
	if len(docs) == 0 && len(rejs) == 0 {
		return nil, fmt.Errorf("%s %s: %w", project, version, ErrUnknownRelease)
	}
	return r, nil
}

// ReleaseSummary is one line of the release list. Builders, Untrusted
// and Rejected are the deprecated names of the *_count fields (in
// `status VERSION --json` the same names are lists).
type ReleaseSummary struct {
	Project        string         `json:"project"`
	Version        string         `json:"version"`
	Verdict        attest.Verdict `json:"verdict"`
	BuilderCount   int            `json:"builder_count"`
	TrustedCount   int            `json:"trusted_count"`
	Artifacts      int            `json:"artifacts"`
	Agreed         int            `json:"artifacts_in_consensus"`
	Divergent      int            `json:"artifacts_divergent"`
	UntrustedCount int            `json:"untrusted_count"`
	RejectedCount  int            `json:"rejected_count"`
	Builders       int            `json:"builders"`
	Untrusted      int            `json:"untrusted"`
	Rejected       int            `json:"rejected"`
}

// summarise reduces a report to its line of the release list.
func summarise(r *attest.Report) ReleaseSummary {
	s := ReleaseSummary{
		Project: r.Project, Version: r.Version, Verdict: r.Verdict, BuilderCount: len(r.Builders), TrustedCount: r.TrustedCount,
		Artifacts: len(r.Artifacts), UntrustedCount: len(r.Untrusted), RejectedCount: len(r.Rejected),
		Builders: len(r.Builders), Untrusted: len(r.Untrusted), Rejected: len(r.Rejected),
	}
	for _, a := range r.Artifacts {
		switch a.Verdict {
		case attest.Consensus:
			s.Agreed++
		case attest.Divergence:
			s.Divergent++
		}
	}
	return s
}

// FileOutcome is what rbnode verify says of one local file.
type FileOutcome string

// The outcomes of verifying a file.
const (
	// FileMatch: the file's hash is the consensus hash of its artifact.
	FileMatch FileOutcome = "match"
	// FileMismatch: the artifact has a consensus hash and the file differs.
	FileMismatch FileOutcome = "mismatch"
	// FileNoConsensus: the artifact is known but has no consensus yet, or
	// nothing is known about the file at all.
	FileNoConsensus FileOutcome = "no_consensus"
	// FileDivergent: trusted builders disagree about the artifact; Builders
	// are those whose hash the file has, if any.
	FileDivergent FileOutcome = "divergent"
	// FileUnreadable: the file could not be hashed (missing, a directory,
	// unreadable); Detail says why. The other files are still judged.
	FileUnreadable FileOutcome = "unreadable"
)

// FileResult is the verification of one local file. Artifact is the
// manifest entry it was judged against, directories included
// ("x86_64-apple-darwin/bitcoin-22.0-osx-unsigned.dmg" for a download
// named by its base name). ExpectedSet holds every hash of the consensus
// when the builders list the artifact's name more than once.
type FileResult struct {
	Path        string           `json:"path"`
	SHA256      string           `json:"sha256"`
	Outcome     FileOutcome      `json:"outcome"`
	Project     string           `json:"project,omitempty"`
	Version     string           `json:"version,omitempty"`
	Artifact    string           `json:"artifact,omitempty"`
	Verdict     attest.Verdict   `json:"artifact_verdict,omitempty"`
	Expected    string           `json:"consensus_sha256,omitempty"`
	ExpectedSet []string         `json:"consensus_sha256_set,omitempty"`
	Builders    []attest.Builder `json:"builders,omitempty"`
	Detail      string           `json:"detail"`
}

// FileHash is a local file and its sha256 (lowercase hex), or why it
// could not be hashed.
type FileHash struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Error  string `json:"error,omitempty"`
}

// HashFiles hashes local files. A file that cannot be hashed is listed
// with its error: one missing download does not hide the others' verdict.
func HashFiles(paths []string) ([]FileHash, error) {
	var out []FileHash
	for _, p := range paths {
		sum, err := hashFile(p)
		if err != nil {
			out = append(out, FileHash{Path: p, Error: err.Error()})
			continue
		}
		out = append(out, FileHash{Path: p, SHA256: sum})
	}
	return out, nil
}

// VerifyFiles hashes local files and judges them with VerifyHashes.
func (n *Node) VerifyFiles(paths []string, project, version string, quorum int) ([]FileResult, error) {
	files, err := HashFiles(paths)
	if err != nil {
		return nil, err
	}
	return n.VerifyHashes(files, project, version, quorum)
}

// VerifyHashes compares each file with the consensus hash of the artifact
// it is: found by its hash among attested artifacts, else by its file
// name (the base name of a manifest entry with directories). version
// (optional) restricts the search to one version.
func (n *Node) VerifyHashes(files []FileHash, project, version string, quorum int) ([]FileResult, error) {
	out := []FileResult{}
	ts, err := n.TrustSet()
	if err != nil {
		return nil, err
	}
	cache := map[store.ReleaseKey]*attest.Report{}
	report := func(k store.ReleaseKey) (*attest.Report, error) {
		if r, ok := cache[k]; ok {
			return r, nil
		}
		r, err := n.status(k.Project, k.Version, quorum, ts)
		if errors.Is(err, ErrUnknownRelease) {
			// Its documents were dropped (untrusted, over budget) since the
			// index named it.
			r, err = &attest.Report{}, nil
		}
		cache[k] = r
		return r, err
	}
	if version != "" {
		projects, err := n.store.Projects(version)
		if err != nil {
			return nil, err
		}
		if len(projects) == 0 || project != "" && !slices.Contains(projects, project) {
			return nil, fmt.Errorf("version %s: %w", version, ErrUnknownRelease)
		}
	}
	for _, f := range files {
		p, sum := f.Path, f.SHA256
		if f.Error != "" {
			out = append(out, FileResult{Path: p, Outcome: FileUnreadable, Detail: f.Error})
			continue
		}
		if _, err := attest.ParseID(sum); err != nil {
			return nil, usagef("%s: sha256 %q is not 64 hex digits", p, sum)
		}
		res := FileResult{Path: p, SHA256: sum, Outcome: FileNoConsensus}
		base := filepath.Base(p)
		byName, byHash, err := n.store.ReleasesWith(base, sum)
		if err != nil {
			return nil, err
		}
		keep := func(ks []store.ReleaseKey) []store.ReleaseKey {
			var out []store.ReleaseKey
			for _, k := range ks {
				if (version == "" || k.Version == version) && (project == "" || k.Project == project) {
					out = append(out, k)
				}
			}
			return out
		}
		byName, byHash = keep(byName), keep(byHash)
		// scan gives judge every artifact of the releases, in order, until
		// it decides.
		scan := func(keys []store.ReleaseKey, judge func(store.ReleaseKey, *attest.Report, attest.ArtifactReport) bool) (bool, error) {
			for _, k := range keys {
				r, err := report(k)
				if err != nil {
					return false, err
				}
				for _, a := range r.Artifacts {
					if judge(k, r, a) {
						return true, nil
					}
				}
			}
			return false, nil
		}
		// First: is this hash the consensus of some artifact?
		decided, err := scan(byHash, func(k store.ReleaseKey, _ *attest.Report, a attest.ArtifactReport) bool {
			if a.Verdict != attest.Consensus || !slices.Contains(a.Hashes[0].SHA256Set, sum) {
				return false
			}
			g := a.Hashes[0]
			res.Outcome, res.Project, res.Version, res.Artifact = FileMatch, k.Project, k.Version, a.Name
			res.Verdict, res.Expected, res.Builders = a.Verdict, sum, g.Builders
			res.Detail = fmt.Sprintf("matches the consensus of %d trusted builders for %s %s %s", len(g.Builders), k.Project, k.Version, a.Name)
			if len(g.SHA256Set) > 1 {
				res.ExpectedSet = g.SHA256Set
				res.Detail += fmt.Sprintf(": one of the set of %d hashes they list for that name", len(g.SHA256Set))
			}
			return true
		})
		// Else: is it the hash of one side of a disagreement?
		if err == nil && !decided {
			decided, err = scan(byHash, func(k store.ReleaseKey, _ *attest.Report, a attest.ArtifactReport) bool {
				return a.Verdict == attest.Divergence && divergentFile(&res, k, a, sum, a.Name)
			})
		}
		// Else: what do builders say about an artifact of this name?
		if err == nil && !decided {
			_, err = scan(byName, func(k store.ReleaseKey, r *attest.Report, a attest.ArtifactReport) bool {
				if attest.BaseName(a.Name) != base {
					return false
				}
				entry := a.Name
				if a.Name != base {
					entry = fmt.Sprintf("%s (matched by its base name)", a.Name)
				}
				res.Project, res.Version, res.Artifact, res.Verdict = k.Project, k.Version, a.Name, a.Verdict
				switch a.Verdict {
				case attest.Consensus:
					g := a.Hashes[0]
					res.Outcome, res.Expected, res.Builders = FileMismatch, g.SHA256, g.Builders
					if len(g.SHA256Set) > 1 {
						res.ExpectedSet = g.SHA256Set
					}
					res.Detail = fmt.Sprintf("differs from the consensus of %d trusted builders for %s %s %s", len(g.Builders), k.Project, k.Version, entry)
					return true
				case attest.Divergence:
					return divergentFile(&res, k, a, sum, entry)
				}
				res.Detail = fmt.Sprintf("%s in %s %s has not reached a quorum of %d trusted builders", entry, k.Project, k.Version, r.Quorum)
				return false
			})
		}
		if err != nil {
			return nil, err
		}
		if res.Detail == "" {
			res.Detail = "no builder has attested a file of this name or hash"
		}
		out = append(out, res)
	}
	return out, nil
}

// hashFile hashes a regular file. Anything else (a FIFO, a device, a
// directory) is refused: it is opened without blocking, so a FIFO with no
// writer cannot hang the command.
func fileType(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m.IsDir():
		return "a directory"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

// divergentFile judges a file against an artifact trusted builders
// disagree about: a definite negative, naming the builders whose hash the
// file has, if any.
func divergentFile(res *FileResult, k store.ReleaseKey, a attest.ArtifactReport, sum, entry string) bool {
	res.Outcome, res.Project, res.Version, res.Artifact, res.Verdict = FileDivergent, k.Project, k.Version, a.Name, a.Verdict
	for gi, g := range a.Hashes {
		if slices.Contains(g.SHA256Set, sum) {
			names := make([]string, len(g.Builders))
			for i, b := range g.Builders {
				names[i] = b.Name
			}
			res.Builders = g.Builders
			res.Detail = fmt.Sprintf("trusted builders disagree about %s in %s %s; this file has the hash of %s (group %s), not of the others",
				entry, k.Project, k.Version, strings.Join(names, ", "), a.GroupMark(gi))
			return true
		}
	}
	res.Detail = fmt.Sprintf("trusted builders disagree about %s in %s %s, and this file has none of their hashes", entry, k.Project, k.Version)
	return true
}

func hashFile(p string) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file (%s): verify hashes release files", p, fileType(fi.Mode()))
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
