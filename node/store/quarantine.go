package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rbnode/rbnode/attest"
)

// Quarantine keys:
//
//	1/q/<id>                              the envelope (attest.Envelope encoding)
//	1/qm/<id>                             its QuarantineEntry (JSON)
//	1/qr/<project>\x00<version>\x00<id>   by release, for status
//	1/qs/<seq>                            arrival order, for eviction
//	1/qn/<version>\x00<project>             which projects have a version
var (
	pQuarVer   = []byte("1/qn/")
	pQuar      = []byte("1/q/")
	pQuarMeta  = []byte("1/qm/")
	pQuarRel   = []byte("1/qr/")
	pQuarOrder = []byte("1/qs/")
)

// MaxQuarantine bounds the quarantine; the oldest entries go first.
const MaxQuarantine = 10000

// QuarantineEntry describes a validly signed document from a key this node
// does not trust: kept, shown as untrusted, never relayed, never counted.
type QuarantineEntry struct {
	ID           attest.ID           `json:"-"`
	Project      string              `json:"project"`
	Version      string              `json:"version"`
	Signer       string              `json:"signer"`
	File         string              `json:"file"`
	Verification attest.Verification `json:"verification"`
	ReceivedAt   time.Time           `json:"received_at"`
	Seq          uint64              `json:"seq"`
}

// Quarantine keeps an envelope. It reports false when it was already held.
func (s *Store) Quarantine(e QuarantineEntry, envelope []byte) (bool, error) {
	added := false
	err := s.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(key(pQuar, e.ID[:])); err == nil {
			return nil
		}
		first, next, err := counters(txn, "quarantine-first", "quarantine-next")
		if err != nil {
			return err
		}
		e.Seq = next
		meta, err := json.Marshal(e)
		if err != nil {
			return err
		}
		for _, kv := range []struct{ k, v []byte }{
			{key(pQuar, e.ID[:]), envelope},
			{key(pQuarMeta, e.ID[:]), meta},
			{key(pQuarRel, []byte(e.Project), sep, []byte(e.Version), sep, e.ID[:]), nil},
			{key(pQuarOrder, seqKey(next)), e.ID[:]},
			{key(pQuarVer, []byte(e.Version), sep, []byte(e.Project)), nil},
		} {
			if err := txn.Set(kv.k, kv.v); err != nil {
				return err
			}
		}
		next++
		for ; next-first > MaxQuarantine; first++ {
			if err := dropQuarantined(txn, first); err != nil {
				return err
			}
		}
		added = true
		if err := txn.Set(key(pSetting, []byte("quarantine-first")), seqKey(first)); err != nil {
			return err
		}
		return txn.Set(key(pSetting, []byte("quarantine-next")), seqKey(next))
	})
	return added, err
}

func dropQuarantined(txn *badger.Txn, seq uint64) error {
	item, err := txn.Get(key(pQuarOrder, seqKey(seq)))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	idb, err := item.ValueCopy(nil)
	if err != nil {
		return err
	}
	var id attest.ID
	copy(id[:], idb)
	return removeQuarantined(txn, id, seq)
}

func removeQuarantined(txn *badger.Txn, id attest.ID, seq uint64) error {
	var e QuarantineEntry
	if err := getJSON(txn, key(pQuarMeta, id[:]), &e); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	for _, k := range [][]byte{
		key(pQuar, id[:]), key(pQuarMeta, id[:]),
		key(pQuarRel, []byte(e.Project), sep, []byte(e.Version), sep, id[:]),
		key(pQuarOrder, seqKey(seq)),
	} {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Unquarantine removes an entry (promoted to the store, say).
func (s *Store) Unquarantine(id attest.ID) error {
	return s.db.Update(func(txn *badger.Txn) error {
		var e QuarantineEntry
		if err := getJSON(txn, key(pQuarMeta, id[:]), &e); err != nil {
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil
			}
			return err
		}
		return removeQuarantined(txn, id, e.Seq)
	})
}

// QuarantinedIn returns the quarantine entries of one release.
func (s *Store) QuarantinedIn(project, version string) ([]QuarantineEntry, error) {
	prefix := key(pQuarRel, []byte(project), sep, []byte(version), sep)
	var out []QuarantineEntry
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var e QuarantineEntry
			copy(e.ID[:], it.Item().Key()[len(prefix):])
			if err := getJSON(txn, key(pQuarMeta, e.ID[:]), &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Quarantined calls fn for every quarantined envelope, oldest first, until
// fn returns false.
func (s *Store) Quarantined(fn func(e QuarantineEntry, envelope []byte) bool) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pQuarOrder, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			idb, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var e QuarantineEntry
			copy(e.ID[:], idb)
			if err := getJSON(txn, key(pQuarMeta, idb), &e); err != nil {
				return err
			}
			item, err := txn.Get(key(pQuar, idb))
			if err != nil {
				return err
			}
			env, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if !fn(e, env) {
				return nil
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
