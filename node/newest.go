package node

import (
	"slices"
	"strings"

	"github.com/rbnode/rbnode/node/store"
)

// NewestReleases summarises one page of the release list, newest version
// first (then by project): at most limit releases after skipping offset,
// for project (all when empty). It also returns how many releases there
// are in all. Only the page's releases are judged, so a page costs the
// same on a store of ten releases or ten thousand.
func (n *Node) NewestReleases(project string, quorum, offset, limit int) ([]ReleaseSummary, int, error) {
	keys, err := n.store.Releases()
	if err != nil {
		return nil, 0, err
	}
	if project != "" {
		keys = slices.DeleteFunc(keys, func(k store.ReleaseKey) bool { return k.Project != project })
	}
	slices.SortStableFunc(keys, func(a, b store.ReleaseKey) int {
		switch {
		case store.VersionLess(b.Version, a.Version):
			return -1
		case store.VersionLess(a.Version, b.Version):
			return 1
		}
		return strings.Compare(a.Project, b.Project)
	})
	total := len(keys)
	offset = min(max(offset, 0), total)
	keys = keys[offset:min(offset+max(limit, 0), total)]
	ts, err := n.TrustSet()
	if err != nil {
		return nil, 0, err
	}
	out := []ReleaseSummary{}
	for _, k := range keys {
		r, err := n.status(k.Project, k.Version, quorum, ts)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, summarise(r))
	}
	return out, total, nil
}
