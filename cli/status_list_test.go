package cli

import (
	"bytes"
	"fmt"
	"testing"
	"text/tabwriter"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node"
)

// TestPrintReleasesLaysOutAsTabwriter: the release list's table, laid out
// by hand for speed, is byte for byte what text/tabwriter made of it,
// with long and non-ASCII names shortened.
func TestPrintReleasesLaysOutAsTabwriter(t *testing.T) {
	list := []node.ReleaseSummary{
		{Project: "bitcoin", Version: "24.0", Verdict: attest.Consensus, BuilderCount: 12, Artifacts: 30, Agreed: 30},
		{Project: "bitcoin", Version: "24.0.1rc1-very-long-version", Verdict: attest.Divergence, BuilderCount: 3, Artifacts: 30, Agreed: 28, Divergent: 2},
		{Project: "cuprate-über-projekt-name", Version: "0.1.0", Verdict: attest.Pending, BuilderCount: 1, Artifacts: 4},
	}
	var want bytes.Buffer
	tw := tabwriter.NewWriter(&want, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tVERSION\tVERDICT\tBUILDERS\tARTIFACTS")
	for _, s := range list {
		arts := fmt.Sprintf("%d/%d agree", s.Agreed, s.Artifacts)
		if s.Divergent > 0 {
			arts += fmt.Sprintf(", %d diverge", s.Divergent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", truncate(s.Project, 16), truncate(s.Version, 16), s.Verdict, s.BuilderCount, arts)
	}
	tw.Flush()
	fmt.Fprintln(&want, "3 releases: 1 consensus, 1 divergence, 1 pending")
	var got bytes.Buffer
	printReleases(&got, list)
	if got.String() != want.String() {
		t.Fatalf("got:\n%s\nwant:\n%s", got.String(), want.String())
	}
}
