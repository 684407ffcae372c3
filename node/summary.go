package node

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"maps"
	"math/bits"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node/store"
)

// The release list reads each release's line from the store's summary
// cache (node/store/summary.go) where it is valid: the store knows when
// documents, verifications or rejections changed since; the summary
// itself carries a stamp of what the store does not see, the trust set
// and the quorum it was judged with. Anything else is judged afresh, and
// a writable node stores what it judged.

// summaryFormat is the first byte of an encoded summary.
const summaryFormat = 1

// stampLen is the length of the stamp of the trust set and quorum.
const stampLen = 16

// summaryStamp digests the inputs of a judgement that the store's change
// markers do not cover: the trust set (fingerprints and names) and the
// quorum.
func summaryStamp(ts attest.TrustSet, quorum int) [stampLen]byte {
	h := sha256.New()
	var b []byte
	b = binary.AppendUvarint(b, uint64(max(quorum, 0)))
	for _, fp := range slices.Sorted(maps.Keys(ts)) {
		b = append(b, fp...)
		b = append(b, 0)
		b = append(b, ts[fp]...)
		b = append(b, 0)
	}
	h.Write(b)
	var s [stampLen]byte
	copy(s[:], h.Sum(nil))
	return s
}

// verdictCodes are the verdicts a summary can hold, by their code.
var verdictCodes = []attest.Verdict{attest.Pending, attest.Consensus, attest.Divergence}

// encodeSummary writes a summary (its counts and verdict; project and
// version are the cache's key) after the stamp it was judged under.
func encodeSummary(stamp [stampLen]byte, s ReleaseSummary) []byte {
	b := make([]byte, 0, 2+stampLen+7*binary.MaxVarintLen32)
	b = append(b, summaryFormat)
	b = append(b, stamp[:]...)
	return appendCounts(b, s)
}

// appendCounts writes a summary's verdict and counts.
func appendCounts(b []byte, s ReleaseSummary) []byte {
	b = append(b, byte(slices.Index(verdictCodes, s.Verdict)))
	for _, v := range []int{s.BuilderCount, s.TrustedCount, s.Artifacts, s.Agreed, s.Divergent, s.UntrustedCount, s.RejectedCount} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	return b
}

var errBadSummary = errors.New("malformed release summary")

// decodeSummary reads a summary written by encodeSummary. Only the
// canonical encoding is accepted, so encoding what it returns gives the
// same bytes.
func decodeSummary(b []byte) (stamp [stampLen]byte, s ReleaseSummary, err error) {
	stamp, b, err = readStamp(b)
	if err != nil {
		return stamp, s, err
	}
	if s, b, err = readCounts(b); err != nil {
		return stamp, s, err
	}
	if len(b) != 0 {
		return stamp, s, errBadSummary
	}
	return stamp, s, nil
}

// readStamp reads the format byte and the stamp.
func readStamp(b []byte) (stamp [stampLen]byte, rest []byte, err error) {
	if len(b) < 1+stampLen || b[0] != summaryFormat {
		return stamp, nil, errBadSummary
	}
	copy(stamp[:], b[1:1+stampLen])
	return stamp, b[1+stampLen:], nil
}

// readCounts reads what appendCounts wrote, canonical only.
func readCounts(b []byte) (s ReleaseSummary, rest []byte, err error) {
	if len(b) < 1 || int(b[0]) >= len(verdictCodes) {
		return s, nil, errBadSummary
	}
	s.Verdict = verdictCodes[b[0]]
	b = b[1:]
	for _, p := range []*int{&s.BuilderCount, &s.TrustedCount, &s.Artifacts, &s.Agreed, &s.Divergent, &s.UntrustedCount, &s.RejectedCount} {
		v, k := readUvarint(b)
		if k <= 0 || v > 1<<31-1 {
			return s, nil, errBadSummary
		}
		*p, b = int(v), b[k:]
	}
	s.Builders, s.Untrusted, s.Rejected = s.BuilderCount, s.UntrustedCount, s.RejectedCount
	return s, b, nil
}

// readUvarint is binary.Uvarint that refuses overlong encodings (k <= 0
// then), so that only one encoding of a value is read.
func readUvarint(b []byte) (uint64, int) {
	v, k := binary.Uvarint(b)
	if k <= 0 || k != max(1, (bits.Len64(v)+6)/7) {
		return 0, 0
	}
	return v, k
}

// encodeList writes the whole release list, in its order, after the
// stamp it was judged under.
func encodeList(stamp [stampLen]byte, list []ReleaseSummary) []byte {
	b := make([]byte, 0, 1+stampLen+binary.MaxVarintLen32+len(list)*48)
	b = append(b, summaryFormat)
	b = append(b, stamp[:]...)
	b = binary.AppendUvarint(b, uint64(len(list)))
	for _, s := range list {
		for _, str := range []string{s.Project, s.Version} {
			b = binary.AppendUvarint(b, uint64(len(str)))
			b = append(b, str...)
		}
		b = appendCounts(b, s)
	}
	return b
}

// decodeList reads a list written by encodeList, canonical only.
func decodeList(b []byte) (stamp [stampLen]byte, list []ReleaseSummary, err error) {
	stamp, b, err = readStamp(b)
	if err != nil {
		return stamp, nil, err
	}
	n, k := readUvarint(b)
	// Each entry takes at least 10 bytes: no count past what b can hold.
	if k <= 0 || n > uint64(len(b))/10 {
		return stamp, nil, errBadSummary
	}
	b = b[k:]
	list = make([]ReleaseSummary, 0, n)
	var project string // the last one: a project's releases come together
	for range n {
		var strs [2]string
		for i := range strs {
			l, k := readUvarint(b)
			if k <= 0 || l > uint64(len(b)-k) {
				return stamp, nil, errBadSummary
			}
			v := b[k : k+int(l)]
			if i == 0 && string(v) == project {
				strs[i] = project
			} else {
				strs[i] = string(v)
			}
			b = b[k+int(l):]
		}
		project = strs[0]
		s, rest, err := readCounts(b)
		if err != nil {
			return stamp, nil, err
		}
		s.Project, s.Version, b = strs[0], strs[1], rest
		list = append(list, s)
	}
	if len(b) != 0 {
		return stamp, nil, errBadSummary
	}
	return stamp, list, nil
}

// Releases summarises every release the store knows, for project (all
// when empty). Each line is read from the summary cache when it is valid
// for the current documents, trust set and quorum, else judged afresh
// (and, on a writable node, cached).
func (n *Node) Releases(project string, quorum int) ([]ReleaseSummary, error) {
	list, err := n.store.CachedList()
	if err != nil {
		return nil, err
	}
	ts, err := n.TrustSet()
	if err != nil {
		return nil, err
	}
	stamp := summaryStamp(ts, n.quorum(quorum))
	if st, all, err := decodeList(list); err == nil && st == stamp {
		return filterProject(all, project)
	}
	cached, readTs, err := n.store.Summaries()
	if err != nil {
		return nil, err
	}
	// Each release of the list, from the cache where its line is valid;
	// the others are judged on every core (an import caches each batch's
	// releases as it stores them; after a trust change, all are judged
	// here).
	type line struct {
		s       ReleaseSummary
		judged  bool // judged now, not read from the cache
		unknown bool // its documents were dropped since the listing
	}
	var lines []line
	var keys []store.ReleaseKey
	var misses []int
	projects := map[string]bool{}
	for _, c := range cached {
		k := c.Release
		projects[k.Project] = true
		if project != "" && k.Project != project {
			continue
		}
		st, s, err := decodeSummary(c.Value)
		if err != nil || st != stamp {
			misses = append(misses, len(lines))
		}
		s.Project, s.Version = k.Project, k.Version
		lines = append(lines, line{s: s})
		keys = append(keys, k)
	}
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, i := range misses {
		g.Go(func() error {
			r, err := n.status(keys[i].Project, keys[i].Version, quorum, ts)
			switch {
			case errors.Is(err, ErrUnknownRelease):
				lines[i].unknown = true
			case err != nil:
				return err
			default:
				lines[i] = line{s: summarise(r), judged: true}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := []ReleaseSummary{}
	fresh := map[store.ReleaseKey][]byte{}
	for i, l := range lines {
		if l.unknown {
			continue
		}
		out = append(out, l.s)
		if l.judged {
			fresh[keys[i]] = encodeSummary(stamp, l.s)
		}
	}
	if project != "" && len(out) == 0 && len(projects) > 0 {
		return nil, unknownProject(project, projects)
	}
	n.cacheSummaries(readTs, fresh)
	if !n.ro && project == "" {
		b := encodeList(stamp, out)
		if err := n.room(len(b)); err != nil {
			n.log.Debug().Err(err).Msg("release list not cached")
		} else if err := n.store.PutList(readTs, b); err != nil {
			n.log.Warn().Err(err).Msg("release list not cached")
		}
	}
	return out, nil
}

// filterProject keeps the releases of project (all when empty); a project
// with none is a usage error naming the projects there are.
func filterProject(list []ReleaseSummary, project string) ([]ReleaseSummary, error) {
	if project == "" {
		return list, nil
	}
	out := []ReleaseSummary{}
	projects := map[string]bool{}
	for _, s := range list {
		projects[s.Project] = true
		if s.Project == project {
			out = append(out, s)
		}
	}
	if len(out) == 0 && len(projects) > 0 {
		return nil, unknownProject(project, projects)
	}
	return out, nil
}

// unknownProject is the error for a project the node has no release of.
func unknownProject(project string, projects map[string]bool) error {
	return usagef("unknown project %q: this node has releases of %s", project, strings.Join(slices.Sorted(maps.Keys(projects)), ", "))
}

// refreshReleases judges the given releases and caches their summaries
// (what Releases does for the stale ones it finds). An import calls it
// after each batch it stores, while the batch's documents are still in
// memory: the listing at its end then finds them fresh, where judging
// every release of a large import at the end read each document back
// from disk (a million documents' summaries took over 11 minutes, the
// store's resident limit paging the tables out as the reads went). A
// release it cannot judge is left to that listing.
func (n *Node) refreshReleases(keys map[store.ReleaseKey]bool) {
	if n.ro || len(keys) == 0 {
		return
	}
	ts, err := n.TrustSet()
	if err != nil {
		return
	}
	readTs := n.store.ReadTs()
	stamp := summaryStamp(ts, n.quorum(0))
	fresh := map[store.ReleaseKey][]byte{}
	for k := range keys {
		if r, err := n.status(k.Project, k.Version, 0, ts); err == nil {
			fresh[k] = encodeSummary(stamp, summarise(r))
		}
	}
	n.cacheSummaries(readTs, fresh)
}

// cacheSummaries stores summaries judged from reads after readTs. The
// cache only saves time: a full disk or a failed write leaves the next
// listing to judge these releases again.
func (n *Node) cacheSummaries(readTs uint64, fresh map[store.ReleaseKey][]byte) {
	if n.ro || len(fresh) == 0 {
		return
	}
	size := 0
	for k, v := range fresh {
		size += len(v) + len(k.Project) + len(k.Version) + 16
	}
	if err := n.room(size); err != nil {
		n.log.Debug().Err(err).Msg("release summaries not cached")
	} else if err := n.store.PutSummaries(readTs, fresh); err != nil {
		n.log.Warn().Err(err).Msg("release summaries not cached")
	}
}

// refreshSummaries judges the releases whose cached summary is missing
// or out of date (after an import or a trust change), so that the next
// listing, even by a read-only command, reads them from the cache. A
// failure is logged: the listing then judges those releases itself.
func (n *Node) refreshSummaries() {
	if n.ro {
		return
	}
	if _, err := n.Releases("", 0); err != nil {
		n.log.Warn().Err(err).Msg("refresh the release summaries")
	}
}
