package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// vlogBytes is the disk space the store's value-log files take.
func vlogBytes(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".vlog") {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, e.Name()), &st); err != nil {
			t.Fatal(err)
		}
		n += st.Blocks * 512 // allocated, not apparent: value logs are sparse
	}
	return n
}

// TestReclaimGivesBackDeletedValues: values deleted from the store leave
// their space in the value log until Reclaim rewrites it.
func TestReclaimGivesBackDeletedValues(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Logger: zerolog.Nop(), vlogFileSize: 1 << 20, memTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := bytes.Repeat([]byte("x"), 64<<10)
	key := func(i int) []byte { return []byte(fmt.Sprintf("1/test/%04d", i)) }
	for i := range 160 { // 10 MiB over ten value-log files
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key(i), val) }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 150 {
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(key(i)) }); err != nil {
			t.Fatal(err)
		}
	}
	before := vlogBytes(t, dir)
	n, err := s.Reclaim()
	if err != nil {
		t.Fatal(err)
	}
	after := vlogBytes(t, dir)
	t.Logf("value log %d KiB before, %d KiB after; %d files rewritten", before>>10, after>>10, n)
	if n == 0 || after > before/2 {
		t.Fatalf("reclaim rewrote %d files: value log %d KiB before, %d KiB after", n, before>>10, after>>10)
	}
	// What was kept reads back.
	for i := 150; i < 160; i++ {
		err := s.db.View(func(txn *badger.Txn) error {
			it, err := txn.Get(key(i))
			if err != nil {
				return err
			}
			return it.Value(func(b []byte) error {
				if !bytes.Equal(b, val) {
					return errors.New("value changed")
				}
				return nil
			})
		})
		if err != nil {
			t.Fatalf("key %d after reclaim: %v", i, err)
		}
	}
}

// TestWritableOpenRefusesAFullDisk: opening a store for writing on a file
// system with less than MinFree free is ErrDiskFull, not a SIGBUS later.
func TestWritableOpenRefusesAFullDisk(t *testing.T) {
	dir := smallTmpfs(t, 24<<20)
	filler := filepath.Join(dir, "filler")
	fill(t, filler, 12<<20)
	_, err := Open(Options{Dir: filepath.Join(dir, "store"), Logger: zerolog.Nop()})
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("open with 12 MiB free: %v, want ErrDiskFull", err)
	}
}

// smallTmpfs mounts a tmpfs of size bytes for the test, or skips it when
// mounting is not allowed (not root, or in a container without the right).
func smallTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): run as root to test a full disk", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes a file of n bytes (or until the disk is full).
func fill(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n > 0 {
		k, err := f.Write(buf[:min(n, len(buf))])
		if err != nil {
			return
		}
		n -= k
	}
}
