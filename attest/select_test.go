package attest_test

import (
	"testing"

	"github.com/rbnode/rbnode/attest"
)

// TestSelect: narrowing a report to some artifacts judges the release
// again over them; an equivocation on an artifact left out no longer
// counts, and a pattern matches the whole name or its last segment.
func TestSelect(t *testing.T) {
	t.Parallel()
	tally := func() *attest.Report {
		return attest.Tally("p", "1.0", claims(
			tallyClaim{doc: 1, builder: "alice", entries: []string{"linux/p-1.0.tar.gz=a", "p-1.0.zip=z"}},
			tallyClaim{doc: 2, builder: "bob", entries: []string{"linux/p-1.0.tar.gz=a", "p-1.0.zip=y"}},
			tallyClaim{doc: 3, builder: "carol", entries: []string{"linux/p-1.0.tar.gz=a", "p-1.0.dmg=d"}},
			tallyClaim{doc: 4, builder: "carol", entries: []string{"p-1.0.dmg=e"}},
		), everyone, 3)
	}
	for _, c := range []struct {
		include, exclude []string
		want             attest.Verdict
		kept             int
	}{
		{nil, nil, attest.Divergence, 3},
		{[]string{"*.tar.gz"}, nil, attest.Consensus, 1},
		{[]string{"linux/*"}, nil, attest.Consensus, 1},
		{nil, []string{"*.zip"}, attest.Divergence, 2}, // carol equivocates on the dmg
		{nil, []string{"*.zip", "*.dmg"}, attest.Consensus, 1},
		{[]string{"*.zip"}, nil, attest.Divergence, 1},
		{[]string{"nothing"}, nil, attest.Pending, 0},
	} {
		r := tally()
		if err := r.Select(c.include, c.exclude); err != nil {
			t.Fatal(err)
		}
		if r.Verdict != c.want || len(r.Artifacts) != c.kept || len(r.Excluded) != 3-c.kept && c.include != nil {
			t.Errorf("include %q exclude %q: %s over %d artifacts (excluded %q); want %s over %d", c.include, c.exclude, r.Verdict, len(r.Artifacts), r.Excluded, c.want, c.kept)
		}
	}
	if err := tally().Select([]string{"["}, nil); err == nil {
		t.Error("a malformed pattern was accepted")
	}
}
