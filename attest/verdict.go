package attest

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// DefaultQuorum is how many trusted builders must agree when no quorum is
// configured.
const DefaultQuorum = 3

// Verdict is the outcome for an artifact or a release.
type Verdict string

// The verdicts.
const (
	// Consensus: at least quorum trusted builders, all in agreement.
	Consensus Verdict = "consensus"
	// Divergence: trusted builders disagree (or one contradicts itself).
	Divergence Verdict = "divergence"
	// Pending: no disagreement, but fewer than quorum trusted builders.
	Pending Verdict = "pending"
)

// Claim is one stored document's part in a release: what it says and how
// its signature was judged.
type Claim struct {
	Doc          ID
	Signer       string // display name: guix.sigs signer directory or builder id
	File         string // document file name
	Statement    Statement
	Verification Verification
}

// TrustSet maps each trusted fingerprint to a name (which may be empty).
type TrustSet map[string]string

// Builder names a builder in a report.
type Builder struct {
	Fingerprint string `json:"fingerprint"`
	Name        string `json:"name"`
}

// Report is the verdict over one release and everything that explains it.
// Its JSON form is the contract documented in docs/json.md.
type Report struct {
	Project string  `json:"project"`
	Version string  `json:"version"`
	Quorum  int     `json:"quorum"`
	Verdict Verdict `json:"verdict"`
	// TrustedCount is how many keys the node trusts: more than the
	// builders who attested this release when some have not (yet).
	TrustedCount int `json:"trusted_count"`
	// Excluded lists the artifacts left out of the verdict by Select
	// (absent when nothing was selected).
	Excluded      []string         `json:"excluded_artifacts,omitempty"`
	Builders      []Builder        `json:"builders"`
	Artifacts     []ArtifactReport `json:"artifacts"`
	Commits       []CommitGroup    `json:"commits"`
	Equivocations []Equivocation   `json:"equivocations"`
	Untrusted     []DocRef         `json:"untrusted"`
	Rejected      []DocRef         `json:"rejected"`
	// Request is the build request the release is judged against, when a
	// trusted key signed one: only attestations of its commit count.
	Request *RequestReport `json:"request,omitempty"`
}

// ArtifactReport is the verdict over one artifact name.
type ArtifactReport struct {
	Name    string      `json:"name"`
	Verdict Verdict     `json:"verdict"`
	Hashes  []HashGroup `json:"hashes"`
	// Missing lists trusted builders of the release that did not attest
	// this artifact.
	Missing []Builder `json:"missing"`
	// Differs names the build-environment fields whose values differ
	// between the builders of a divergent artifact: always a list, empty
	// when nothing differs or nothing was reported (manifests).
	Differs []string `json:"differs"`
}

// HashGroup is the trusted builders that claim the same hash for an
// artifact. SHA256Set holds the hashes they claim, sorted: one, or, where
// their documents list the name more than once with different hashes (as
// Bitcoin Core 23.0's do for the unsigned dmg), all of them; a file with
// any of them is that artifact. SHA256 holds the same hashes
// space-separated.
type HashGroup struct {
	SHA256    string    `json:"sha256"`
	SHA256Set []string  `json:"sha256_set"`
	Builders  []Builder `json:"builders"`
	// Environment maps each build-environment field to the values the
	// group's builders reported (attestations only).
	Environment map[string][]string `json:"environment,omitempty"`
}

// CommitGroup is the trusted builders that built one source commit.
type CommitGroup struct {
	GitCommit string    `json:"git_commit"`
	Builders  []Builder `json:"builders"`
}

// Equivocation is a trusted key that signed different hashes for one
// artifact of one release. Its claims on that artifact are not counted.
type Equivocation struct {
	Builder
	Artifact  string           `json:"artifact"`
	Documents []EquivocatedDoc `json:"documents"`
}

// EquivocatedDoc is one of the contradicting signed documents, kept as proof.
type EquivocatedDoc struct {
	Document string `json:"document"`
	File     string `json:"file"`
	SHA256   string `json:"sha256"`
}

// DocRef names a document that was not counted, and why.
type DocRef struct {
	Document    string    `json:"document,omitempty"`
	File        string    `json:"file,omitempty"`
	Signer      string    `json:"signer,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	KeyID       string    `json:"key_id,omitempty"`
	SignedAt    time.Time `json:"signed_at,omitzero"`
	Reason      string    `json:"reason"`
	Detail      string    `json:"detail,omitempty"`
}

// Tally computes the verdict over one release. Only claims whose signature
// is good and whose key is in trusted count, one builder once per artifact
// however many of its documents repeat it. quorum below 1 is taken as 1.
func Tally(project, version string, claims []Claim, trusted TrustSet, quorum int) *Report {
	quorum = max(quorum, 1)
	r := &Report{
		Project: project, Version: version, Quorum: quorum, TrustedCount: len(trusted),
		Builders: []Builder{}, Artifacts: []ArtifactReport{}, Commits: []CommitGroup{},
		Equivocations: []Equivocation{}, Untrusted: []DocRef{}, Rejected: []DocRef{},
	}
	claims = slices.Clone(claims)
	sort.Slice(claims, func(i, j int) bool { return claims[i].Doc.String() < claims[j].Doc.String() })
	var loop []Claim
	claims, r.Request, loop = splitRequests(claims, trusted, r)

	names := map[string]string{}
	// artifact -> builder -> set key -> the documents saying so
	type said struct {
		docs []Claim
	}
	byArtifact := map[string]map[string]map[string]*said{}
	commits := map[string]map[string]bool{}
	for _, c := range claims {
		v := c.Verification
		ref := DocRef{Document: c.Doc.String(), File: c.File, Signer: c.Signer, Fingerprint: v.Fingerprint, KeyID: v.KeyID, SignedAt: v.SignedAt}
		if !v.OK() {
			ref.Reason, ref.Detail = string(v.Status), v.Detail
			r.Rejected = append(r.Rejected, ref)
			continue
		}
		if _, ok := trusted[v.Fingerprint]; !ok {
			ref.Reason = "untrusted_key"
			ref.Detail = "signed by a key this node does not trust"
			r.Untrusted = append(r.Untrusted, ref)
			continue
		}
		fp := v.Fingerprint
		name := c.Signer
		if c.Statement.BuilderID != "" {
			name = c.Statement.BuilderID
		}
		if n, ok := names[fp]; !ok || name != "" && (n == "" || name < n) {
			names[fp] = name
		}
		if c.Statement.GitCommit != "" {
			if commits[c.Statement.GitCommit] == nil {
				commits[c.Statement.GitCommit] = map[string]bool{}
			}
			commits[c.Statement.GitCommit][fp] = true
		}
		sets := map[string][]string{}
		for _, e := range c.Statement.Artifacts {
			if !slices.Contains(sets[e.Name], e.SHA256) {
				sets[e.Name] = append(sets[e.Name], e.SHA256)
			}
		}
		for art, hs := range sets {
			slices.Sort(hs)
			key := strings.Join(hs, " ")
			if byArtifact[art] == nil {
				byArtifact[art] = map[string]map[string]*said{}
			}
			if byArtifact[art][fp] == nil {
				byArtifact[art][fp] = map[string]*said{}
			}
			s := byArtifact[art][fp][key]
			if s == nil {
				s = &said{}
				byArtifact[art][fp][key] = s
			}
			s.docs = append(s.docs, c)
		}
	}
	builder := func(fp string) Builder {
		n := names[fp]
		if n == "" {
			n = trusted[fp]
		}
		return Builder{Fingerprint: fp, Name: n}
	}
	sortBuilders := func(bs []Builder) {
		sort.Slice(bs, func(i, j int) bool {
			if bs[i].Name != bs[j].Name {
				return bs[i].Name < bs[j].Name
			}
			return bs[i].Fingerprint < bs[j].Fingerprint
		})
	}
	for fp := range names {
		r.Builders = append(r.Builders, builder(fp))
	}
	sortBuilders(r.Builders)

	for _, art := range sortedKeys(byArtifact) {
		groups := map[string][]string{}
		envs := map[string]map[string][]string{}
		counted := map[string]bool{}
		for _, fp := range sortedKeys(byArtifact[art]) {
			sets := byArtifact[art][fp]
			if len(sets) > 1 {
				eq := Equivocation{Builder: builder(fp), Artifact: art}
				for _, key := range sortedKeys(sets) {
					for _, c := range sets[key].docs {
						eq.Documents = append(eq.Documents, EquivocatedDoc{Document: c.Doc.String(), File: c.File, SHA256: key})
					}
				}
				r.Equivocations = append(r.Equivocations, eq)
				continue
			}
			for key, s := range sets {
				groups[key] = append(groups[key], fp)
				counted[fp] = true
				for _, c := range s.docs {
					for k, v := range c.Statement.Env {
						if envs[key] == nil {
							envs[key] = map[string][]string{}
						}
						if !slices.Contains(envs[key][k], v) {
							envs[key][k] = append(envs[key][k], v)
						}
					}
				}
			}
		}
		ar := ArtifactReport{Name: art, Hashes: []HashGroup{}, Missing: []Builder{}, Differs: []string{}}
		keys := sortedKeys(groups)
		sort.SliceStable(keys, func(i, j int) bool { return len(groups[keys[i]]) > len(groups[keys[j]]) })
		for _, key := range keys {
			g := HashGroup{SHA256: key, SHA256Set: strings.Split(key, " ")}
			for _, fp := range groups[key] {
				g.Builders = append(g.Builders, builder(fp))
			}
			sortBuilders(g.Builders)
			ar.Hashes = append(ar.Hashes, g)
		}
		for fp := range names {
			if !counted[fp] {
				ar.Missing = append(ar.Missing, builder(fp))
			}
		}
		sortBuilders(ar.Missing)
		switch {
		case len(keys) >= 2:
			ar.Verdict = Divergence
			ar.Differs = differing(envs)
			for i := range ar.Hashes {
				ar.Hashes[i].Environment = envs[ar.Hashes[i].SHA256]
			}
		case len(keys) == 1 && len(groups[keys[0]]) >= quorum:
			ar.Verdict = Consensus
		default:
			ar.Verdict = Pending
		}
		r.Artifacts = append(r.Artifacts, ar)
	}
	for _, commit := range sortedKeys(commits) {
		g := CommitGroup{GitCommit: commit}
		for _, fp := range sortedKeys(commits[commit]) {
			g.Builders = append(g.Builders, builder(fp))
		}
		sortBuilders(g.Builders)
		r.Commits = append(r.Commits, g)
	}
	r.Verdict = releaseVerdict(r)
	if r.Request != nil {
		r.Request.answer(r, loop, trusted)
	}
	return r
}

// differing returns the environment fields with more than one value across
// all groups, sorted.
func differing(envs map[string]map[string][]string) []string {
	all := map[string][]string{}
	for _, env := range envs {
		for k, vs := range env {
			for _, v := range vs {
				if !slices.Contains(all[k], v) {
					all[k] = append(all[k], v)
				}
			}
		}
	}
	out := []string{}
	for _, k := range sortedKeys(all) {
		if len(all[k]) > 1 {
			out = append(out, k)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
