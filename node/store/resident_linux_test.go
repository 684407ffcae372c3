package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
	"unsafe"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// fileResident returns the process's file-backed resident memory.
func fileResident() int64 {
	_, files := resident()
	return files
}

// fillAndRead writes n values of size bytes (to the value log), then
// reads every one back through Badger's memory maps, and checks them.
func fillAndRead(t *testing.T, s *Store, n, size int) {
	t.Helper()
	writeValues(t, s, 0, n, size)
	readValues(t, s, 0, n, size)
}

func testKey(i int) []byte         { return []byte(fmt.Sprintf("1/test/%05d", i)) }
func testValue(i, size int) []byte { return bytes.Repeat([]byte{byte(i)}, size) }

// writeValues writes values from .. from+n-1 in one batch.
func writeValues(t *testing.T, s *Store, from, n, size int) {
	t.Helper()
	wb := s.db.NewWriteBatch()
	for i := from; i < from+n; i++ {
		if err := wb.Set(testKey(i), testValue(i, size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
}

// readValues reads values from .. from+n-1 back and checks them.
func readValues(t *testing.T, s *Store, from, n, size int) {
	t.Helper()
	err := s.db.View(func(txn *badger.Txn) error {
		for i := from; i < from+n; i++ {
			it, err := txn.Get(testKey(i))
			if err != nil {
				return err
			}
			if err := it.Value(func(b []byte) error {
				if !bytes.Equal(b, testValue(i, size)) {
					return fmt.Errorf("value %d changed", i)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPageOutDropsResidentFilePages: 48 MiB written and read back make
// the process hold them as resident file pages; pageOut gives them back,
// and every value still reads back unchanged. The store is opened through
// a symbolic link, as a home often is.
func TestPageOutDropsResidentFilePages(t *testing.T) {
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	s, err := Open(Options{Dir: link, Logger: zerolog.Nop(), maxResident: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n, size = 768, 64 << 10 // 48 MiB
	fillAndRead(t, s, n, size)
	before := fileResident()
	m, err := s.pageOut()
	if err != nil {
		t.Fatal(err)
	}
	after := fileResident()
	t.Logf("%d mappings paged out: resident file pages %d MiB before, %d MiB after", m, before>>20, after>>20)
	if m == 0 || before-after < 32<<20 {
		t.Fatalf("paging out %d mappings gave back %d MiB of 48 read", m, (before-after)>>20)
	}
	fillAndRead(t, s, n, size) // rewritten and read again, from disk
}

// TestStoreKeepsResidentFilePagesUnderItsLimit: a writable store gives
// its file pages back on its own once the process's resident memory
// passes the limit.
func TestStoreKeepsResidentFilePagesUnderItsLimit(t *testing.T) {
	total, _ := resident()
	limit := total + 8<<20
	s, err := Open(Options{Dir: t.TempDir(), Logger: zerolog.Nop(), maxResident: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fillAndRead(t, s, 768, 64<<10)
	deadline := time.Now().Add(10 * time.Second)
	// The values read are also on the heap: the file pages go back.
	for {
		total, files := resident()
		if total <= limit || files <= minResidentFiles {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resident %d MiB (%d MiB of files), over the limit of %d MiB 10 s after the reads", total>>20, files>>20, limit>>20)
		}
		time.Sleep(residentCheck)
	}
}

// TestPageOutKeepsThePageCache: giving back the pages of value-log files
// no longer written leaves them in the page cache (paging them out, as
// the store once did for every file, read them from disk again at the
// next touch); the values still read back unchanged.
func TestPageOutKeepsThePageCache(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Logger: zerolog.Nop(), maxResident: 1 << 40, vlogFileSize: 8 << 20, memTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for b := range 6 { // 48 MiB over six value-log files
		writeValues(t, s, b*128, 128, 64<<10)
	}
	readValues(t, s, 0, 768, 64<<10)
	before := fileResident()
	if _, err := s.pageOut(); err != nil {
		t.Fatal(err)
	}
	after := fileResident()
	vlogs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	sort.Strings(vlogs)
	if len(vlogs) < 4 {
		t.Fatalf("%d value-log files, want several", len(vlogs))
	}
	var cached, pages int
	for _, f := range vlogs[:len(vlogs)-1] { // the last one is being written
		c, n := pageCached(t, f)
		cached, pages = cached+c, pages+n
	}
	t.Logf("resident file pages %d MiB before, %d MiB after; %d of %d pages of the finished value-log files still cached", before>>20, after>>20, cached, pages)
	if before-after < 32<<20 {
		t.Errorf("gave back %d MiB of 48 read", (before-after)>>20)
	}
	if cached < pages*3/4 {
		t.Errorf("%d of %d pages of the finished value-log files left in the page cache, want nearly all", cached, pages)
	}
	readValues(t, s, 0, 768, 64<<10)
}

// pageCached returns how many of the file's pages the page cache holds,
// and how many it has.
func pageCached(t *testing.T, path string) (cached, pages int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return 0, 0
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	vec := make([]byte, (len(b)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	for _, v := range vec {
		cached += int(v & 1)
	}
	return cached, len(vec)
}

// TestPageOutWhileWriting: giving pages back in a loop while batches
// rotate value-log files, flush memtables and start compactions (each
// unmapping or moving mappings) leaves every value as written.
func TestPageOutWhileWriting(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), Logger: zerolog.Nop(), maxResident: 1 << 40, vlogFileSize: 1 << 20, memTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop, done := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			if _, err := s.pageOut(); err != nil {
				t.Error(err)
			}
			n++
		}
	}()
	// Each round 200 KiB to the value log and 2,000 small values to the
	// tables (about 250 KiB): 30 rounds flush and compact tables too.
	const rounds, big, small = 30, 50, 2000
	for r := range rounds {
		writeValues(t, s, r*big, big, 4<<10)
		writeValues(t, s, 1e6+r*small, small, 100)
		readValues(t, s, r*big, big, 4<<10)
	}
	close(stop)
	t.Logf("%d page-outs while writing; %d tables", <-done, len(s.db.Tables()))
	readValues(t, s, 0, rounds*big, 4<<10)
	readValues(t, s, 1e6, rounds*small, 100)
}
