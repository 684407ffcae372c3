package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// resident returns the process's resident memory and the part of it
// that is file-backed (or shared), in bytes, from /proc/self/statm; 0, 0
// when it cannot be read.
func resident() (total, files int64) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, 0
	}
	f := bytes.Fields(b)
	if len(f) < 3 {
		return 0, 0
	}
	rss, err1 := strconv.ParseInt(string(f[1]), 10, 64)
	shared, err2 := strconv.ParseInt(string(f[2]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	page := int64(os.Getpagesize())
	return rss * page, shared * page
}

// pageOut gives back the process's resident pages of the store's files.
// Pages of files Badger will not unmap or move meanwhile (the tables,
// pinned by an open iterator, and the value-log files no longer written,
// whose deletion the iterator defers) are unmapped with MADV_DONTNEED:
// they stay in the page cache, and the next read maps them again at the
// cost of a minor fault. The rest (the memtable logs, the value-log file
// being written, which a rotation truncates and remaps) are paged out
// with MADV_PAGEOUT, which is harmless even on memory mapped again by
// someone else in between, but drops the pages from the page cache too:
// a catch-up served from a store paged out that way read its documents
// from disk again and again (the daemon's CPU 15.3 s against 5.7 s
// without a limit, for 100,000 documents). It returns how many mappings
// it advised.
func (s *Store) pageOut() (int, error) {
	if s.dir == "" {
		return 0, nil
	}
	// /proc/self/maps names files by their real path: a home under a
	// symbolic link (a million-document daemon's, here) had none of its
	// mappings found, and its resident set grew past 800 MB.
	dir, err := filepath.EvalSymlinks(s.dir)
	if err == nil {
		dir, err = filepath.Abs(dir)
	}
	if err != nil {
		return 0, err
	}
	// Tables in the tree both before and after the iterator opened were
	// in it when it did, and so are pinned (a table never returns once
	// compacted away).
	before := s.tableIDs()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	pinned := s.tableIDs()
	for id := range pinned {
		if !before[id] {
			delete(pinned, id)
		}
	}
	maps, err := storeMappings(dir)
	if err != nil {
		return 0, err
	}
	var lastVlog uint64
	for _, m := range maps {
		if id, ok := fileID(m.name, ".vlog"); ok {
			lastVlog = max(lastVlog, id)
		}
	}
	n := 0
	for _, m := range maps {
		advice := unix.MADV_PAGEOUT
		if id, ok := fileID(m.name, ".sst"); ok && pinned[id] {
			advice = unix.MADV_DONTNEED
		} else if id, ok := fileID(m.name, ".vlog"); ok && id < lastVlog {
			advice = unix.MADV_DONTNEED
		}
		// A mapping unmapped since the listing gives ENOMEM: nothing to do.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, uintptr(advice)); e != 0 && e != unix.ENOMEM {
			return n, fmt.Errorf("madvise %s: %w", m.name, e)
		}
		n++
	}
	return n, nil
}

// tableIDs returns the IDs of the tables in the store's tree.
func (s *Store) tableIDs() map[uint64]bool {
	ids := map[uint64]bool{}
	for _, t := range s.db.Tables() {
		ids[t.ID] = true
	}
	return ids
}

// mapping is one memory mapping of a file in the store's directory.
type mapping struct {
	start, end uintptr
	name       string // the file's base name
}

// storeMappings lists the process's mappings of files in dir, from
// /proc/self/maps.
func storeMappings(dir string) ([]mapping, error) {
	prefix := []byte(dir + "/")
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 6 || !bytes.HasPrefix(fields[5], prefix) {
			continue
		}
		lo, hi, ok := bytes.Cut(fields[0], []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, mapping{start: uintptr(start), end: uintptr(end), name: string(fields[5][len(prefix):])})
	}
	return out, sc.Err()
}

// fileID returns the number of a Badger file name such as 000042.sst.
func fileID(name, ext string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, ext)
	if !ok || num == "" || strings.Contains(num, "/") {
		return 0, false
	}
	id, err := strconv.ParseUint(num, 10, 64)
	return id, err == nil
}
