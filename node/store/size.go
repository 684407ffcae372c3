package store

import (
	"errors"
	"os"
	"path/filepath"
)

// Size is the store's size on disk in bytes: every file of its directory
// (LSM tables, value log, manifest). An in-memory store is 0.
func (s *Store) Size() int64 {
	dir := s.db.Opts().Dir
	if dir == "" {
		return 0
	}
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// Check reads from the store and reports whether it answers: nil, or the
// reason it does not (closed, broken).
func (s *Store) Check() error {
	_, err := s.GetSetting("health-check")
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
