package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// fileResident returns the process's resident file-backed (and shared)
// memory in bytes, from /proc/self/statm; 0 when it cannot be read.
func fileResident() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 3 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// pageOut asks the kernel to page out every mapping of a file in the
// store's directory (MADV_PAGEOUT: the pages are written if dirty and
// dropped; their contents never change). It returns how many mappings it
// advised.
func (s *Store) pageOut() (int, error) {
	if s.dir == "" {
		return 0, nil
	}
	dir, err := filepath.Abs(s.dir)
	if err != nil {
		return 0, err
	}
	prefix := []byte(dir + "/")
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
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
		// A mapping unmapped since the listing gives ENOMEM: nothing to do.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); e != 0 && e != unix.ENOMEM {
			return n, fmt.Errorf("madvise %s: %w", fields[5], e)
		}
		n++
	}
	return n, sc.Err()
}
