package store

import "time"

// Badger reads and writes its files through shared memory maps, so every
// page of the store a process touches (a document served, a table block
// searched) counts in its resident set until the kernel needs the memory
// back. A daemon serving a full catch-up of a million documents would so
// show the whole store, over a gigabyte, as resident. A writable store
// therefore watches its file-backed resident pages and, past
// MaxResidentFiles, gives them back (pageOut): the files Badger cannot
// unmap meanwhile are unmapped and stay in the page cache, so the next
// read costs a minor fault while the machine has memory to spare; the
// others are paged out, which is safe even on a range Badger unmaps (and
// the address space reuses) in between, since paging out never changes
// what memory holds.
const (
	// MaxResidentFiles is the file-backed resident memory past which a
	// writable store pages its mappings out.
	MaxResidentFiles = 64 << 20
	// residentCheck is how often it looks.
	residentCheck = 100 * time.Millisecond
)

// watchResident runs until stop closes, paging the store's mappings out
// whenever the process's file-backed resident memory passes limit.
func (s *Store) watchResident(stop <-chan struct{}, limit int64) {
	tick := time.NewTicker(residentCheck)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if fileResident() <= limit {
			continue
		}
		if n, err := s.pageOut(); err != nil {
			s.log.Debug().Err(err).Msg("page out the store's mappings")
		} else {
			s.log.Debug().Int("mappings", n).Int64("resident_after", fileResident()).Msg("paged out the store's mappings")
		}
	}
}
