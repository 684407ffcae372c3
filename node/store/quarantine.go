package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rbnode/rbnode/attest"
)

// Documents from the network signed by keys this node does not trust are
// stored like any other (status lists them as untrusted, and counts them
// the moment their key is trusted), but their number is bounded: each is
// also entered, in arrival order, in the untrusted index.
//
//	1/u/<seq>   the id of the seq-th document admitted while untrusted,
//	            then its size (8 bytes, big-endian; absent in old entries)
//	1/um/<id>   its seq
//
// Once the index holds more than the cap in count or in bytes, the oldest
// entry leaves it; its document is deleted unless its signer is trusted by
// then.
var (
	pUntrusted   = []byte("1/u/")
	pUntrustedID = []byte("1/um/")
)

// MaxUntrusted and MaxUntrustedBytes bound the documents kept from the
// network whose signers this node does not trust; the oldest go first.
const (
	MaxUntrusted      = 10000
	MaxUntrustedBytes = 128 << 20
)

// UntrustedLimit bounds the untrusted index: a count and a total of
// document sizes (body and signature). Zero means the default.
type UntrustedLimit struct {
	Count int
	Bytes int64
}

// PutUntrusted stores a document whose signer is not trusted, with its
// indexes, and enters it in the untrusted index in the same transaction,
// dropping the oldest entries beyond the limit. A dropped entry's document
// is deleted unless trusted(its signer) holds then. It reports whether the
// document was new.
func (s *Store) PutUntrusted(e *Entry, limit UntrustedLimit, trusted func(fingerprint string) bool) (bool, error) {
	if limit.Count <= 0 {
		limit.Count = MaxUntrusted
	}
	if limit.Bytes <= 0 {
		limit.Bytes = MaxUntrustedBytes
	}
	size := uint64(len(e.Record.Body) + len(e.Record.Signature))
	s.untrustedMu.Lock()
	defer s.untrustedMu.Unlock()
	added := false
	err := s.db.Update(func(txn *badger.Txn) error {
		id := e.Record.ID
		if _, err := txn.Get(key(pDoc, id[:])); err == nil {
			return nil
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		set := txn.Set
		if err := putEntry(e, set, func(k []byte) error { return set(k, nil) }); err != nil {
			return err
		}
		first, next, err := counters(txn, "untrusted-first", "untrusted-next")
		if err != nil {
			return err
		}
		bytes, _, err := counters(txn, "untrusted-bytes", "untrusted-bytes")
		if err != nil {
			return err
		}
		if err := set(key(pUntrusted, seqKey(next)), append(id[:len(id):len(id)], seqKey(size)...)); err != nil {
			return err
		}
		if err := set(key(pUntrustedID, id[:]), seqKey(next)); err != nil {
			return err
		}
		next++
		bytes += size
		for ; next-first > uint64(limit.Count) || bytes > uint64(limit.Bytes) && first < next-1; first++ {
			freed, err := s.evictUntrusted(txn, first, trusted)
			if err != nil {
				return err
			}
			bytes -= min(freed, bytes)
		}
		added = true
		if err := set(key(pSetting, []byte("untrusted-bytes")), seqKey(bytes)); err != nil {
			return err
		}
		if err := set(key(pSetting, []byte("untrusted-first")), seqKey(first)); err != nil {
			return err
		}
		return set(key(pSetting, []byte("untrusted-next")), seqKey(next))
	})
	if err != nil {
		return false, fmt.Errorf("store untrusted document %s: %w", e.Record.ID.Short(), err)
	}
	if added {
		// Only an admission writes (and evicts): a stranger sending the
		// same document again does not make sync scan the store anew.
		s.generation.Add(1)
	}
	return added, nil
}

// evictUntrusted takes entry seq out of the untrusted index and deletes
// its document unless its signer is trusted now. It returns the size the
// entry counted for.
func (s *Store) evictUntrusted(txn *badger.Txn, seq uint64, trusted func(string) bool) (uint64, error) {
	k := key(pUntrusted, seqKey(seq))
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, err
	}
	var id attest.ID
	copy(id[:], v)
	var size uint64
	if len(v) == len(id)+8 {
		size = binary.BigEndian.Uint64(v[len(id):])
	}
	if err := txn.Delete(k); err != nil {
		return 0, err
	}
	if err := txn.Delete(key(pUntrustedID, id[:])); err != nil {
		return 0, err
	}
	var m Meta
	switch err := getJSON(txn, key(pVer, id[:]), &m); {
	case errors.Is(err, badger.ErrKeyNotFound):
		return size, nil
	case err != nil:
		return 0, err
	}
	if m.Verification.Fingerprint != "" && trusted(m.Verification.Fingerprint) {
		return size, nil
	}
	s.log.Debug().Str("document", id.Short()).Msg("dropped the oldest untrusted document")
	return size, deleteDocument(txn, id, m)
}

// deleteDocument removes a document and its own index entries, and its
// release from the version index when no other document names it. The
// artifact and hash indexes may keep naming the release: readers of those
// take a release without documents as one that says nothing.
func deleteDocument(txn *badger.Txn, id attest.ID, m Meta) error {
	var r Record
	if err := getRecord(txn, id, &r); err != nil {
		return err
	}
	proj, vers := []byte(r.Project), []byte(r.Version)
	dels := [][]byte{
		key(pDoc, id[:]), key(pVer, id[:]), key(pGood, id[:]),
		key(pRelease, proj, sep, vers, sep, id[:]),
	}
	if kid := m.Verification.KeyID; kid != "" {
		dels = append(dels, key(pIssuer, []byte(kid), []byte("/"), id[:]))
	}
	for _, k := range dels {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	if err := markChanged(txn.Set, r.Project, r.Version); err != nil {
		return err
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: key(pRelease, proj, sep, vers, sep)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		return nil // another document still names the release
	}
	return txn.Delete(key(pVersion, vers, sep, proj))
}

// Untrusted returns how many documents the untrusted index holds.
func (s *Store) Untrusted() (int, error) {
	n := 0
	err := s.keys(pUntrusted, func([]byte) bool { n++; return true })
	return n, err
}

// The quarantine of layout 1 before untrusted documents joined the store:
// envelopes kept apart. A daemon moves them into the store when it starts
// (LegacyQuarantine, DropLegacyQuarantine); nothing writes them any more.
var (
	pQuar      = []byte("1/q/")
	pQuarMeta  = []byte("1/qm/")
	pQuarRel   = []byte("1/qr/")
	pQuarOrder = []byte("1/qs/")
	pQuarVer   = []byte("1/qn/")
)

// LegacyQuarantine calls fn with every envelope of the old quarantine,
// oldest first, until fn returns false.
func (s *Store) LegacyQuarantine(fn func(envelope []byte) bool) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pQuar, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			env, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if !fn(env) {
				return nil
			}
		}
		return nil
	})
}

// DropLegacyQuarantine deletes every key of the old quarantine.
func (s *Store) DropLegacyQuarantine() error {
	for _, p := range [][]byte{pQuar, pQuarMeta, pQuarRel, pQuarOrder, pQuarVer} {
		var ks [][]byte
		if err := s.keys(p, func(rest []byte) bool { ks = append(ks, key(p, rest)); return true }); err != nil {
			return err
		}
		for len(ks) > 0 {
			n := min(len(ks), 1000)
			err := s.db.Update(func(txn *badger.Txn) error {
				for _, k := range ks[:n] {
					if err := txn.Delete(k); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("drop the old quarantine: %w", err)
			}
			ks = ks[n:]
		}
	}
	return s.db.Update(func(txn *badger.Txn) error {
		for _, name := range []string{"quarantine-first", "quarantine-next"} {
			if err := txn.Delete(key(pSetting, []byte(name))); err != nil {
				return err
			}
		}
		return nil
	})
}

// counters reads two uint64 settings (missing ones are 0).
func counters(txn *badger.Txn, a, b string) (uint64, uint64, error) {
	read := func(name string) (uint64, error) {
		item, err := txn.Get(key(pSetting, []byte(name)))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		var n uint64
		err = item.Value(func(b []byte) error {
			if len(b) != 8 {
				return errors.New("bad counter")
			}
			n = binary.BigEndian.Uint64(b)
			return nil
		})
		return n, err
	}
	x, err := read(a)
	if err != nil {
		return 0, 0, err
	}
	y, err := read(b)
	return x, y, err
}
