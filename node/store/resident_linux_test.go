package store

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// fillAndRead writes n values of size bytes (to the value log), then
// reads every one back through Badger's memory maps, and checks them.
func fillAndRead(t *testing.T, s *Store, n, size int) {
	t.Helper()
	key := func(i int) []byte { return []byte(fmt.Sprintf("1/test/%05d", i)) }
	val := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, size) }
	wb := s.db.NewWriteBatch()
	for i := range n {
		if err := wb.Set(key(i), val(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	err := s.db.View(func(txn *badger.Txn) error {
		for i := range n {
			it, err := txn.Get(key(i))
			if err != nil {
				return err
			}
			if err := it.Value(func(b []byte) error {
				if !bytes.Equal(b, val(i)) {
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
// and every value still reads back unchanged.
func TestPageOutDropsResidentFilePages(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), Logger: zerolog.Nop(), maxResidentFiles: 1 << 40})
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

// TestStoreKeepsResidentFilePagesUnderItsLimit: a writable store pages
// its mappings out on its own once the process's resident file pages pass
// the limit.
func TestStoreKeepsResidentFilePagesUnderItsLimit(t *testing.T) {
	limit := fileResident() + 8<<20
	s, err := Open(Options{Dir: t.TempDir(), Logger: zerolog.Nop(), maxResidentFiles: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fillAndRead(t, s, 768, 64<<10)
	deadline := time.Now().Add(10 * time.Second)
	for fileResident() > limit {
		if time.Now().After(deadline) {
			t.Fatalf("resident file pages %d MiB, over the limit of %d MiB 10 s after the reads", fileResident()>>20, limit>>20)
		}
		time.Sleep(residentCheck)
	}
}
