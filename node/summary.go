package node

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"maps"
	"math/bits"
	"slices"
	"strings"

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
	if len(b) < 2+stampLen || b[0] != summaryFormat {
		return stamp, s, errBadSummary
	}
	copy(stamp[:], b[1:1+stampLen])
	code := int(b[1+stampLen])
	if code >= len(verdictCodes) {
		return stamp, s, errBadSummary
	}
	s.Verdict = verdictCodes[code]
	b = b[2+stampLen:]
	for _, p := range []*int{&s.BuilderCount, &s.TrustedCount, &s.Artifacts, &s.Agreed, &s.Divergent, &s.UntrustedCount, &s.RejectedCount} {
		v, k := binary.Uvarint(b)
		// Canonical only: no overlong encoding, and a count fits an int32.
		if k <= 0 || v > 1<<31-1 || k != max(1, (bits.Len64(v)+6)/7) {
			return stamp, s, errBadSummary
		}
		*p, b = int(v), b[k:]
	}
	if len(b) != 0 {
		return stamp, s, errBadSummary
	}
	s.Builders, s.Untrusted, s.Rejected = s.BuilderCount, s.UntrustedCount, s.RejectedCount
	return stamp, s, nil
}

// Releases summarises every release the store knows, for project (all
// when empty). Each line is read from the summary cache when it is valid
// for the current documents, trust set and quorum, else judged afresh
// (and, on a writable node, cached).
func (n *Node) Releases(project string, quorum int) ([]ReleaseSummary, error) {
	cached, readTs, err := n.store.Summaries()
	if err != nil {
		return nil, err
	}
	ts, err := n.TrustSet()
	if err != nil {
		return nil, err
	}
	stamp := summaryStamp(ts, n.quorum(quorum))
	out := []ReleaseSummary{}
	projects := map[string]bool{}
	fresh := map[store.ReleaseKey][]byte{}
	size := 0
	for _, c := range cached {
		k := c.Release
		projects[k.Project] = true
		if project != "" && k.Project != project {
			continue
		}
		if st, s, err := decodeSummary(c.Value); err == nil && st == stamp {
			s.Project, s.Version = k.Project, k.Version
			out = append(out, s)
			continue
		}
		r, err := n.status(k.Project, k.Version, quorum, ts)
		if errors.Is(err, ErrUnknownRelease) {
			continue // its untrusted documents were dropped since the listing
		}
		if err != nil {
			return nil, err
		}
		s := summarise(r)
		out = append(out, s)
		fresh[k] = encodeSummary(stamp, s)
		size += len(fresh[k]) + len(k.Project) + len(k.Version) + 16
	}
	if project != "" && len(out) == 0 && len(projects) > 0 {
		return nil, usagef("unknown project %q: this node has releases of %s", project, strings.Join(slices.Sorted(maps.Keys(projects)), ", "))
	}
	if !n.ro && len(fresh) > 0 {
		// The cache only saves time: a full disk or a failed write leaves
		// the next listing to judge these releases again.
		if err := n.room(size); err != nil {
			n.log.Debug().Err(err).Msg("release summaries not cached")
		} else if err := n.store.PutSummaries(readTs, fresh); err != nil {
			n.log.Warn().Err(err).Msg("release summaries not cached")
		}
	}
	return out, nil
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
