package attest

import (
	"fmt"
	"path"
	"slices"
)

// Select narrows the report to the artifacts whose name matches one of
// include (every artifact when include is empty) and none of exclude, and
// judges the release again over what is left: a release manager gates on
// the artifacts that matter. Patterns are path.Match globs, tried on the
// whole name and on its last path segment. Equivocations on artifacts left
// out no longer count; a disagreement about the source commit still does.
func (r *Report) Select(include, exclude []string) error {
	for _, p := range append(slices.Clone(include), exclude...) {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("artifact pattern %q: %w", p, err)
		}
	}
	if len(include) == 0 && len(exclude) == 0 {
		return nil
	}
	keep := func(name string) bool {
		return (len(include) == 0 || matchAny(include, name)) && !matchAny(exclude, name)
	}
	r.Excluded = []string{}
	arts := r.Artifacts[:0:0]
	for _, a := range r.Artifacts {
		if keep(a.Name) {
			arts = append(arts, a)
		} else {
			r.Excluded = append(r.Excluded, a.Name)
		}
	}
	r.Artifacts = arts
	eqs := r.Equivocations[:0:0]
	for _, e := range r.Equivocations {
		if keep(e.Artifact) {
			eqs = append(eqs, e)
		}
	}
	r.Equivocations = eqs
	r.Verdict = releaseVerdict(r)
	return nil
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
		if ok, _ := path.Match(p, path.Base(name)); ok {
			return true
		}
	}
	return false
}

// releaseVerdict judges a release from its artifacts' verdicts, its
// commits and its equivocations.
func releaseVerdict(r *Report) Verdict {
	switch {
	case len(r.Commits) > 1 || len(r.Equivocations) > 0 ||
		slices.ContainsFunc(r.Artifacts, func(a ArtifactReport) bool { return a.Verdict == Divergence }):
		return Divergence
	case len(r.Artifacts) > 0 && !slices.ContainsFunc(r.Artifacts, func(a ArtifactReport) bool { return a.Verdict != Consensus }):
		return Consensus
	}
	return Pending
}
