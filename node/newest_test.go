package node

import (
	"fmt"
	"strings"
	"testing"
)

// TestNewestReleases: pages of the release list come newest version first
// (0.0.10 after 0.0.9 in version order, not text order), with the total.
func TestNewestReleases(t *testing.T) {
	n := openTestNode(t)
	alice := newBuilder(t, "alice")
	tree := t.TempDir()
	for i := 1; i <= 12; i++ {
		alice.writeAttestation(t, tree, alice.attestation(fmt.Sprintf("0.0.%d", i), sha('a'), commitA, "rustc 1.82.0"))
	}
	mustImport(t, n, tree)
	trustBuilders(t, n, alice)
	versions := func(offset, limit int) string {
		list, total, err := n.NewestReleases("", 1, offset, limit)
		if err != nil || total != 12 {
			t.Fatalf("NewestReleases(%d, %d): total %d, %v", offset, limit, total, err)
		}
		var vs []string
		for _, s := range list {
			if s.Verdict != "consensus" {
				t.Errorf("%s: %s at quorum 1", s.Version, s.Verdict)
			}
			vs = append(vs, s.Version)
		}
		return strings.Join(vs, " ")
	}
	for _, c := range []struct {
		offset, limit int
		want          string
	}{
		{0, 3, "0.0.12 0.0.11 0.0.10"},
		{3, 3, "0.0.9 0.0.8 0.0.7"},
		{10, 5, "0.0.2 0.0.1"},
		{12, 5, ""},
		{99, 5, ""},
		{-1, 1, "0.0.12"},
	} {
		if got := versions(c.offset, c.limit); got != c.want {
			t.Errorf("offset %d limit %d: %q, want %q", c.offset, c.limit, got, c.want)
		}
	}
	if list, total, err := n.NewestReleases("monero", 0, 0, 10); err != nil || total != 0 || len(list) != 0 {
		t.Errorf("another project: %v %d %v", list, total, err)
	}
}
