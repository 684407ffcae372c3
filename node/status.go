package node

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

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
// configured default, or the only project with documents for it.
func (n *Node) ResolveProject(project, version string) (string, error) {
	if err := attest.CheckName("version", version); err != nil {
		return "", usageErr(err)
	}
	if project != "" {
		return project, nil
	}
	projects, err := n.store.Projects(version)
	if err != nil {
		return "", err
	}
	switch def := n.settings().Project; {
	case def != "":
		return def, nil
	case len(projects) == 1:
		return projects[0], nil
	case len(projects) == 0:
		return "", fmt.Errorf("version %s: %w", version, ErrUnknownRelease)
	}
	return "", usagef("version %s exists in several projects (%s); choose one with --project", version, strings.Join(projects, ", "))
}

// Status computes the verdict over one release from the stored documents,
// the trust set and quorum (0: the configured quorum). Rejected input
// logged for that version is listed in the report too.
func (n *Node) Status(project, version string, quorum int) (*attest.Report, error) {
	project, err := n.ResolveProject(project, version)
	if err != nil {
		return nil, err
	}
	ts, err := n.TrustSet()
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
	claims := make([]attest.Claim, 0, len(docs))
	for _, d := range docs {
		st, err := d.Record.Document().Statement()
		if err != nil {
			return nil, fmt.Errorf("re-read stored document %s: %w", d.Record.ID.Short(), err)
		}
		claims = append(claims, attest.Claim{
			Doc: d.Record.ID, Signer: d.Record.Signer, File: d.Record.Name,
			Statement: *st, Verification: d.Meta.Verification,
		})
	}
	r := attest.Tally(project, version, claims, ts, n.quorum(quorum))
	quarantined, err := n.store.QuarantinedIn(project, version)
	if err != nil {
		return nil, err
	}
	for _, q := range quarantined {
		v := q.Verification
		r.Untrusted = append(r.Untrusted, attest.DocRef{
			Document: q.ID.String(), File: q.File, Signer: q.Signer, Fingerprint: v.Fingerprint,
			KeyID: v.KeyID, SignedAt: v.SignedAt, Reason: "untrusted_key",
			Detail: "received from a peer; kept in quarantine, not relayed",
		})
	}
	rejs, err := n.store.Rejections(version)
	if err != nil {
		return nil, err
	}
	for _, x := range rejs {
		r.Rejected = append(r.Rejected, attest.DocRef{
			File: x.File, Signer: x.Signer, KeyID: x.KeyID, Reason: x.Reason, Detail: x.Detail,
		})
	}
	if len(docs) == 0 && len(rejs) == 0 && len(quarantined) == 0 {
		return nil, fmt.Errorf("%s %s: %w", project, version, ErrUnknownRelease)
	}
	return r, nil
}

// ReleaseSummary is one line of the release list.
type ReleaseSummary struct {
	Project   string         `json:"project"`
	Version   string         `json:"version"`
	Verdict   attest.Verdict `json:"verdict"`
	Builders  int            `json:"builders"`
	Artifacts int            `json:"artifacts"`
	Agreed    int            `json:"artifacts_in_consensus"`
	Divergent int            `json:"artifacts_divergent"`
	Untrusted int            `json:"untrusted"`
	Rejected  int            `json:"rejected"`
}

// Releases summarises every release the store knows, for project (all
// when empty).
func (n *Node) Releases(project string, quorum int) ([]ReleaseSummary, error) {
	keys, err := n.store.Releases()
	if err != nil {
		return nil, err
	}
	ts, err := n.TrustSet()
	if err != nil {
		return nil, err
	}
	var out []ReleaseSummary
	for _, k := range keys {
		if project != "" && k.Project != project {
			continue
		}
		r, err := n.status(k.Project, k.Version, quorum, ts)
		if err != nil {
			return nil, err
		}
		out = append(out, summarise(r))
	}
	return out, nil
}

// summarise reduces a report to its line of the release list.
func summarise(r *attest.Report) ReleaseSummary {
	s := ReleaseSummary{
		Project: r.Project, Version: r.Version, Verdict: r.Verdict, Builders: len(r.Builders),
		Artifacts: len(r.Artifacts), Untrusted: len(r.Untrusted), Rejected: len(r.Rejected),
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
)

// FileResult is the verification of one local file.
type FileResult struct {
	Path     string           `json:"path"`
	SHA256   string           `json:"sha256"`
	Outcome  FileOutcome      `json:"outcome"`
	Project  string           `json:"project,omitempty"`
	Version  string           `json:"version,omitempty"`
	Artifact string           `json:"artifact,omitempty"`
	Verdict  attest.Verdict   `json:"artifact_verdict,omitempty"`
	Expected string           `json:"consensus_sha256,omitempty"`
	Builders []attest.Builder `json:"builders,omitempty"`
	Detail   string           `json:"detail"`
}

// FileHash is a local file and its sha256 (lowercase hex).
type FileHash struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// HashFiles hashes local files.
func HashFiles(paths []string) ([]FileHash, error) {
	var out []FileHash
	for _, p := range paths {
		sum, err := hashFile(p)
		if err != nil {
			return nil, usageErr(err)
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
// name. version (optional) restricts the search to one version.
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
		cache[k] = r
		return r, err
	}
	for _, f := range files {
		p, sum := f.Path, f.SHA256
		if _, err := attest.ParseID(sum); err != nil {
			return nil, usagef("%s: sha256 %q is not 64 hex digits", p, sum)
		}
		res := FileResult{Path: p, SHA256: sum, Outcome: FileNoConsensus}
		byName, byHash, err := n.store.ReleasesWith(filepath.Base(p), sum)
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
		decided := false
		// First: is this hash the consensus of some artifact?
		for _, k := range byHash {
			r, err := report(k)
			if err != nil {
				return nil, err
			}
			for _, a := range r.Artifacts {
				if a.Verdict == attest.Consensus && a.Hashes[0].SHA256 == sum {
					res.Outcome, res.Project, res.Version, res.Artifact = FileMatch, k.Project, k.Version, a.Name
					res.Verdict, res.Expected, res.Builders = a.Verdict, sum, a.Hashes[0].Builders
					res.Detail = fmt.Sprintf("matches the consensus of %d trusted builders for %s %s %s", len(a.Hashes[0].Builders), k.Project, k.Version, a.Name)
					decided = true
					break
				}
			}
			if decided {
				break
			}
		}
		// Else: what do builders say about an artifact of this name?
		for _, k := range byName {
			if decided {
				break
			}
			r, err := report(k)
			if err != nil {
				return nil, err
			}
			for _, a := range r.Artifacts {
				if a.Name != filepath.Base(p) {
					continue
				}
				res.Project, res.Version, res.Artifact, res.Verdict = k.Project, k.Version, a.Name, a.Verdict
				switch a.Verdict {
				case attest.Consensus:
					res.Outcome, res.Expected, res.Builders = FileMismatch, a.Hashes[0].SHA256, a.Hashes[0].Builders
					res.Detail = fmt.Sprintf("differs from the consensus of %d trusted builders for %s %s", len(a.Hashes[0].Builders), k.Project, k.Version)
					decided = true
				case attest.Divergence:
					res.Detail = fmt.Sprintf("trusted builders disagree about %s in %s %s", a.Name, k.Project, k.Version)
				default:
					res.Detail = fmt.Sprintf("%s in %s %s has not reached a quorum of %d trusted builders", a.Name, k.Project, k.Version, r.Quorum)
				}
			}
		}
		if res.Detail == "" {
			res.Detail = "no builder has attested a file of this name or hash"
		}
		out = append(out, res)
	}
	return out, nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
