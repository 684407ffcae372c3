package store

import (
	"encoding/json"
	"errors"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// pBuild keys build records by start time: 1/b/<unix nanos, big-endian>.
var pBuild = []byte("1/b/")

// PutBuild stores a build record (JSON as the builder made it) under its
// start time.
func (s *Store) PutBuild(started time.Time, record []byte) error {
	if !json.Valid(record) {
		return errInvalidRecord
	}
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(key(pBuild, seqKey(uint64(started.UnixNano()))), record)
	})
}

var errInvalidRecord = errors.New("build record is not JSON")

// Builds returns every build record, oldest first.
func (s *Store) Builds() ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pBuild, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	return out, err
}
