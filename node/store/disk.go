package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	badger "github.com/dgraph-io/badger/v4"
)

// ErrDiskFull is returned when the store's file system has less free space
// than a write needs. Badger writes through memory-mapped files: on a file
// system that is really full such a write is a SIGBUS, not an error, so
// rbnode checks the free space itself before writing.
var ErrDiskFull = errors.New("not enough free disk space")

// MinFree is the free space a writable open needs: room for Badger to
// flush a full memtable (8 MiB) and start new files when it closes.
const MinFree = 16 << 20

// FreeSpace returns the bytes available to this user on the file system
// holding path, or on its nearest existing parent.
func FreeSpace(path string) (int64, error) {
	for {
		var st syscall.Statfs_t
		err := syscall.Statfs(path, &st)
		if err == nil {
			return int64(st.Bavail) * int64(st.Bsize), nil
		}
		parent := filepath.Dir(path)
		if !errors.Is(err, os.ErrNotExist) || parent == path {
			return 0, fmt.Errorf("free space of %s: %w", path, err)
		}
		path = parent
	}
}

// checkFree returns ErrDiskFull (wrapped, with the figures) when the file
// system of dir has less than need bytes free. An error reading the free
// space is not a refusal: the write goes ahead as it would have.
func checkFree(dir string, need int64) error {
	free, err := FreeSpace(dir)
	if err != nil || free >= need {
		return nil
	}
	return fmt.Errorf("%s: %d MiB free, %d MiB needed: %w", dir, free>>20, (need+(1<<20)-1)>>20, ErrDiskFull)
}

// pScratch holds a key written only to be dropped (Reclaim).
var pScratch = []byte("1/z/")

// Room returns ErrDiskFull (wrapped) unless writing size more bytes would
// leave at least reserve free. An in-memory store always has room.
func (s *Store) Room(size, reserve int64) error {
	if s.dir == "" {
		return nil
	}
	return checkFree(s.dir, reserve+size)
}

// Reclaim gives back the space of deleted and overwritten values: it
// compacts the tree (so Badger learns which value-log entries are garbage)
// then rewrites value-log files that are at least half garbage until none
// is left. Nothing reclaims that space otherwise. It returns how many
// files were rewritten.
func (s *Store) Reclaim() (int, error) {
	if s.readOnly || s.dir == "" {
		return 0, nil
	}
	// Badger learns what is garbage only while compacting tables, and
	// has no call to flush its memtable: dropping a scratch key's prefix
	// does that flush.
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key(pScratch, []byte("reclaim")), nil) }); err != nil {
		return 0, fmt.Errorf("compact store: %w", err)
	}
	if err := s.db.DropPrefix(pScratch); err != nil {
		return 0, fmt.Errorf("flush store: %w", err)
	}
	if err := s.db.Flatten(1); err != nil {
		return 0, fmt.Errorf("compact store: %w", err)
	}
	n := 0
	for {
		err := s.db.RunValueLogGC(0.5)
		switch {
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return n, nil
		case err != nil:
			return n, fmt.Errorf("value-log gc: %w", err)
		}
		n++
	}
}
