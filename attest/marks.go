package attest

// The marks of the release matrix, shared by `rbnode status` and the
// status web page so that both draw a release the same way.

// Marks used in the matrix besides the hash-group marks of GroupMark.
const (
	MarkMissing     = "-" // the builder did not attest the artifact
	MarkEquivocated = "!" // the builder signed different hashes for it
)

// GroupMark is the matrix mark of the gi-th hash group of an artifact: ✓
// for the group most builders share (when one does), letters for the
// others.
func (a ArtifactReport) GroupMark(gi int) string {
	if len(a.Hashes) == 1 || len(a.Hashes[0].Builders) > len(a.Hashes[1].Builders) {
		if gi == 0 {
			return "✓"
		}
		return string(rune('A' + (gi-1)%26))
	}
	return string(rune('A' + gi%26))
}

// Marks returns one mark per builder of the report (in r.Builders order)
// for artifact a: its hash group's mark, MarkMissing or MarkEquivocated.
func (r *Report) Marks(a ArtifactReport) []string {
	col := make(map[string]int, len(r.Builders))
	marks := make([]string, len(r.Builders))
	for i, b := range r.Builders {
		col[b.Fingerprint] = i
		marks[i] = MarkMissing
	}
	for gi, g := range a.Hashes {
		m := a.GroupMark(gi)
		for _, b := range g.Builders {
			if i, ok := col[b.Fingerprint]; ok {
				marks[i] = m
			}
		}
	}
	for _, e := range r.Equivocations {
		if i, ok := col[e.Fingerprint]; ok && e.Artifact == a.Name {
			marks[i] = MarkEquivocated
		}
	}
	return marks
}

// ColumnLabel names the i-th builder column: a..z, then aa, ab, ...
func ColumnLabel(i int) string {
	s := ""
	for i++; i > 0; i = (i - 1) / 26 {
		s = string(rune('a'+(i-1)%26)) + s
	}
	return s
}
