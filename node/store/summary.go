package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	badger "github.com/dgraph-io/badger/v4"
)

// The per-release summary cache. A summary is what the node computed for
// a release (its line of the release list), stored with the read
// timestamp of the snapshot it was computed from. Every write that can
// change a release's report (a document stored or deleted, its
// verification rewritten, a rejection logged or dropped) also writes the
// release's change marker, in the same transaction or a later one. Badger
// stamps each write with its commit timestamp, so a summary is valid
// exactly when no marker of its release is newer than its snapshot: a
// summary computed before a change and written after it (by a concurrent
// reader) is never taken for fresh. The node adds what the store does not
// see (the trust set and the quorum) to the summary itself.
//
//	1/o/<version>\0<project>\0s   the summary: 8-byte snapshot ts, then the node's bytes
//	1/o/<version>\0<project>\0m   the release's change marker (empty)
//	1/o/<version>\0\0m            the version's marker: rejections that name no project
//	1/og                          the store's change marker, written with every other
//	1/ol                          the whole release list, as 1/o/...s: read with one
//	                              Get while no change came after it
//	1/oc                          written last by every writable session that
//	                              closes cleanly (see sealSummaries)
//	1/oe                          the cache's epoch: a summary or list from a
//	                              snapshot older than this key is never used
var (
	pSummary   = []byte("1/o/")
	listMarker = []byte("1/og")
	listKey    = []byte("1/ol")
	cleanKey   = []byte("1/oc")
	epochKey   = []byte("1/oe")
)

// The markers are only as good as every writer keeping them: an rbnode
// older than the cache (after a downgrade) writes documents without them.
// Every writable session of this package therefore ends (Close) by writing
// cleanKey, and at the next open that key must be the store's newest
// write. When it is not (another program wrote after it, or the last
// session did not close), a writable open writes epochKey, which outdates
// every cached summary and list, and a read-only open uses none.

// checkSummaries is run by Open: it sets epochKey (writable) or
// summariesStale (read-only) unless the last write is cleanKey.
func (s *Store) checkSummaries() error {
	clean := false
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(cleanKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		clean = item.Version() == s.db.MaxVersion()
		return nil
	})
	if err != nil || clean {
		return err
	}
	if s.readOnly {
		s.summariesStale = true
		return nil
	}
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(epochKey, nil) })
}

// sealSummaries writes cleanKey, the last write of a writable session.
func (s *Store) sealSummaries() error {
	if s.readOnly || s.dir == "" {
		return nil
	}
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(cleanKey, nil) })
}

// epoch returns the commit timestamp of epochKey, 0 when it was never
// written.
func epoch(txn *badger.Txn) (uint64, error) {
	item, err := txn.Get(epochKey)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return item.Version(), nil
}

func summaryKey(project, version string, kind byte) []byte {
	return key(pSummary, []byte(version), sep, []byte(project), sep, []byte{kind})
}

// markChanged writes the change marker of a release (project "": of
// every project with that version).
func markChanged(set func(k, v []byte) error, project, version string) error {
	if err := set(summaryKey(project, version, 'm'), nil); err != nil {
		return err
	}
	return set(listMarker, nil)
}

// CachedList returns the whole release list the node stored with PutList,
// or nil when none is stored or a change came after the snapshot it was
// computed from.
func (s *Store) CachedList() ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(listKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		b, err := item.ValueCopy(nil)
		if err != nil || len(b) < 8 {
			return err
		}
		mark, err := epoch(txn)
		if err != nil {
			return err
		}
		switch m, err := txn.Get(listMarker); {
		case err == nil:
			mark = max(mark, m.Version())
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		if binary.BigEndian.Uint64(b) >= mark && !s.summariesStale {
			out = b[8:]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the release list: %w", err)
	}
	return out, nil
}

// PutList stores the whole release list, computed from reads made after
// the snapshot readTs (from Summaries).
func (s *Store) PutList(readTs uint64, list []byte) error {
	if s.readOnly {
		return ErrReadOnly
	}
	val := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(list)), readTs)
	err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(listKey, append(val, list...)) })
	if err != nil {
		return fmt.Errorf("store the release list: %w", err)
	}
	return nil
}

// CachedSummary is one release of the release list and, when the cache
// holds a valid one, the bytes the node stored for it.
type CachedSummary struct {
	Release ReleaseKey
	// Value is nil when no summary is stored or a change came after it.
	Value []byte
}

// Summaries returns every release with stored documents, ordered as
// Releases orders them, with its cached summary where one is valid, and
// the snapshot they were read at: summaries the caller computes for the
// others from reads made after this call may be stored with PutSummaries
// under that snapshot.
func (s *Store) Summaries() ([]CachedSummary, uint64, error) {
	var out []CachedSummary
	var readTs uint64
	err := s.db.View(func(txn *badger.Txn) error {
		readTs = txn.ReadTs()
		// The release list, from the version index.
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pVersion})
		for it.Rewind(); it.Valid(); it.Next() {
			v, p, _ := bytes.Cut(it.Item().Key()[len(pVersion):], sep)
			out = append(out, CachedSummary{Release: ReleaseKey{Project: string(p), Version: string(v)}})
		}
		it.Close()
		if s.summariesStale {
			return nil
		}
		floor, err := epoch(txn)
		if err != nil {
			return err
		}
		// Both lists are in (version, project) order: walk them together.
		it = txn.NewIterator(badger.IteratorOptions{Prefix: pSummary, PrefetchValues: false})
		defer it.Close()
		i := 0
		var markVersion []byte
		var versionMark, releaseMark uint64
		var sum []byte
		var sumTs uint64
		var cur []byte // version\0project of the entries being gathered
		flush := func() {
			if cur == nil {
				return
			}
			v, p, _ := bytes.Cut(cur, sep)
			for i < len(out) && compareRelease(out[i].Release, string(v), string(p)) < 0 {
				i++
			}
			if i < len(out) && compareRelease(out[i].Release, string(v), string(p)) == 0 &&
				sum != nil && sumTs >= max(releaseMark, floor) && (!bytes.Equal(markVersion, v) || sumTs >= versionMark) {
				out[i].Value = sum
			}
			sum, sumTs, releaseMark, cur = nil, 0, 0, nil
		}
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()[len(pSummary):]
			if len(k) < 3 || k[len(k)-2] != 0 {
				continue // not a key this layout writes
			}
			rel, kind := k[:len(k)-2], k[len(k)-1]
			v, p, ok := bytes.Cut(rel, sep)
			if !ok {
				continue
			}
			if len(p) == 0 {
				flush()
				if kind == 'm' {
					markVersion, versionMark = append(markVersion[:0], v...), item.Version()
				}
				continue
			}
			if !bytes.Equal(cur, rel) {
				flush()
				cur = append([]byte(nil), rel...)
			}
			switch kind {
			case 'm':
				releaseMark = item.Version()
			case 's':
				b, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				if len(b) >= 8 {
					sumTs, sum = binary.BigEndian.Uint64(b), b[8:]
				}
			}
		}
		flush()
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read release summaries: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Release, out[j].Release
		if a.Project != b.Project {
			return a.Project < b.Project
		}
		return VersionLess(a.Version, b.Version)
	})
	return out, readTs, nil
}

// compareRelease orders releases as the version index does.
func compareRelease(r ReleaseKey, version, project string) int {
	if c := bytes.Compare([]byte(r.Version), []byte(version)); c != 0 {
		return c
	}
	return bytes.Compare([]byte(r.Project), []byte(project))
}

// ErrReadOnly is returned by writes to a store opened read-only.
var ErrReadOnly = errors.New("store is open read-only")

// ReadTs returns the timestamp a snapshot taken now reads at: what is
// judged from reads made after it may be stored with PutSummaries(ts).
func (s *Store) ReadTs() uint64 {
	var ts uint64
	_ = s.db.View(func(txn *badger.Txn) error { ts = txn.ReadTs(); return nil })
	return ts
}

// PutSummaries stores summaries computed from reads made after the
// snapshot readTs (from Summaries).
func (s *Store) PutSummaries(readTs uint64, sums map[ReleaseKey][]byte) error {
	if len(sums) == 0 {
		return nil
	}
	if s.readOnly {
		return ErrReadOnly
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for k, v := range sums {
		val := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(v)), readTs)
		if err := wb.Set(summaryKey(k.Project, k.Version, 's'), append(val, v...)); err != nil {
			return fmt.Errorf("store release summaries: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store release summaries: %w", err)
	}
	return nil
}
