package store

import "time"

// Badger reads and writes its files through shared memory maps, so every
// page of the store a process touches (a document served, a table block
// searched) counts in its resident set until the kernel needs the memory
// back. A daemon serving a full catch-up of a million documents would so
// show the whole store, over a gigabyte, as resident. A writable store
// therefore watches the process's resident memory and, past MaxResident,
// gives its file pages back (pageOut): the files Badger cannot unmap
// meanwhile are unmapped and stay in the page cache, so the next read
// costs a minor fault while the machine has memory to spare; the others
// are paged out, which is safe even on a range Badger unmaps (and the
// address space reuses) in between, since paging out never changes what
// memory holds.
const (
	// MaxResident is the process's resident memory past which a writable
	// store gives its file pages back: the target of a node at a million
	// documents is 256 MB, and this leaves room for what the heap and
	// the next reads add in a check's time. The file pages get whatever
	// the heap leaves: with a fixed 64 MiB for them, a daemon serving
	// 100,000 documents (a 108 MB store) dropped and faulted its pages
	// back all through a catch-up.
	MaxResident = 208 << 20
	// minResidentFiles is the file-backed resident memory under which
	// nothing is given back, however large the heap: there is little to
	// gain.
	minResidentFiles = 16 << 20
	// residentCheck is how often it looks.
	residentCheck = 100 * time.Millisecond
)

// watchResident runs until stop closes, giving the store's file pages
// back whenever the process's resident memory passes limit.
func (s *Store) watchResident(stop <-chan struct{}, limit int64) {
	tick := time.NewTicker(residentCheck)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if total, files := resident(); total <= limit || files <= minResidentFiles {
			continue
		}
		if n, err := s.pageOut(); err != nil {
			s.log.Debug().Err(err).Msg("page out the store's mappings")
		} else {
			_, files := resident()
			s.log.Debug().Int("mappings", n).Int64("file_resident_after", files).Msg("paged out the store's mappings")
		}
	}
}
