package store

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/rbnode/rbnode/attest"
)

func openMemStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(Options{InMemory: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// untrustedEntry is a stored document of release (project, version)
// signed by fp; i makes it unique.
func untrustedEntry(i int, project, version, fp string) *Entry {
	var id attest.ID
	binary.BigEndian.PutUint64(id[:], uint64(i))
	id[31] = 1
	return &Entry{
		Record: Record{ID: id, Kind: attest.KindManifest, Project: project, Version: version, Signer: "s",
			Name: "all.SHA256SUMS", Body: []byte("body"), Signature: []byte("sig"), ReceivedAt: time.Unix(1, 0).UTC(), Source: "gossip"},
		Meta:      Meta{ID: id, Verification: attest.Verification{Status: attest.StatusGood, Fingerprint: fp, KeyID: fp[:4]}},
		Artifacts: []attest.Entry{{Name: "a.tar.gz", SHA256: "00"}},
	}
}

// TestUntrustedCapIsAtomic: 15,000 untrusted documents arriving on many
// goroutines at once leave exactly the cap, in the index and in the store.
func TestUntrustedCapIsAtomic(t *testing.T) {
	s := openMemStore(t)
	const total, workers = 15000, 8
	never := func(string) bool { return false }
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < total; i += workers {
				if _, err := s.PutUntrusted(untrustedEntry(i, "p", "1.0", "MALLORY0"), UntrustedLimit{}, never); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, err := s.Untrusted(); err != nil || n != MaxUntrusted {
		t.Fatalf("untrusted index holds %d (%v), want the cap %d", n, err, MaxUntrusted)
	}
	if n, err := s.Count(); err != nil || n != MaxUntrusted {
		t.Fatalf("store holds %d documents (%v), want the cap %d", n, err, MaxUntrusted)
	}
	docs, err := s.Release("p", "1.0")
	if err != nil || len(docs) != MaxUntrusted {
		t.Fatalf("release lists %d documents (%v), want %d", len(docs), err, MaxUntrusted)
	}
}

// TestUntrustedEviction: the oldest untrusted document goes first, unless
// its signer has been trusted since; a release left without documents is
// no longer listed, and nothing else is touched.
func TestUntrustedEviction(t *testing.T) {
	s := openMemStore(t)
	trusted := map[string]bool{}
	isTrusted := func(fp string) bool { return trusted[fp] }
	put := func(e *Entry) {
		t.Helper()
		if added, err := s.PutUntrusted(e, UntrustedLimit{Count: 2}, isTrusted); err != nil || !added {
			t.Fatalf("put %d: %v %v", e.Record.ID[7], added, err)
		}
	}
	e0 := untrustedEntry(0, "p", "1.0", "ALICE000")
	e1 := untrustedEntry(1, "q", "2.0", "MALLORY0")
	put(e0)
	put(e1)
	if added, err := s.PutUntrusted(e1, UntrustedLimit{Count: 2}, isTrusted); err != nil || added {
		t.Fatalf("the same document again: added %v, %v", added, err)
	}
	trusted["ALICE000"] = true
	put(untrustedEntry(2, "q", "2.0", "MALLORY0")) // evicts e0's entry: alice is trusted now, it stays
	put(untrustedEntry(3, "q", "2.0", "MALLORY0")) // evicts e1: gone
	for _, c := range []struct {
		e    *Entry
		want bool
	}{{e0, true}, {e1, false}} {
		if has, _ := s.Has(c.e.Record.ID); has != c.want {
			t.Errorf("document %d stored: %v, want %v", c.e.Record.ID[7], has, c.want)
		}
	}
	put(untrustedEntry(4, "r", "3.0", "MALLORY0"))
	put(untrustedEntry(5, "r", "3.0", "MALLORY0")) // q 2.0 has no documents left
	rels, err := s.Releases()
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 2 || rels[0] != (ReleaseKey{"p", "1.0"}) || rels[1] != (ReleaseKey{"r", "3.0"}) {
		t.Fatalf("releases after eviction: %v", rels)
	}
	var served []attest.ID
	if err := s.Range(nil, isTrusted, func(id attest.ID) bool { served = append(served, id); return true }); err != nil {
		t.Fatal(err)
	}
	if len(served) != 1 || served[0] != e0.Record.ID {
		t.Fatalf("served to peers: %v, want only alice's document", served)
	}
}

// TestLegacyQuarantine: the quarantine an earlier rbnode kept is read back
// envelope by envelope, then deleted whole; nothing else is touched.
func TestLegacyQuarantine(t *testing.T) {
	s := openMemStore(t)
	if _, err := s.PutUntrusted(untrustedEntry(1, "p", "1.0", "MALLORY0"), UntrustedLimit{}, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	var id attest.ID
	id[0] = 7
	err := s.db.Update(func(txn *badger.Txn) error {
		for _, k := range [][]byte{
			key(pQuar, id[:]), key(pQuarMeta, id[:]), key(pQuarRel, []byte("p\x001.0\x00"), id[:]),
			key(pQuarOrder, seqKey(0)), key(pQuarVer, []byte("1.0\x00p")),
			key(pSetting, []byte("quarantine-first")), key(pSetting, []byte("quarantine-next")),
		} {
			if err := txn.Set(k, []byte("envelope")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var envs []string
	if err := s.LegacyQuarantine(func(env []byte) bool { envs = append(envs, string(env)); return true }); err != nil || len(envs) != 1 || envs[0] != "envelope" {
		t.Fatalf("legacy quarantine read: %q %v", envs, err)
	}
	if err := s.DropLegacyQuarantine(); err != nil {
		t.Fatal(err)
	}
	left := 0
	for _, p := range [][]byte{pQuar, pQuarMeta, pQuarRel, pQuarOrder, pQuarVer, []byte("1/s/quarantine")} {
		s.keys(p, func([]byte) bool { left++; return true })
	}
	if n, _ := s.Count(); left != 0 || n != 1 {
		t.Fatalf("after dropping: %d legacy keys left, %d documents (want 0, 1)", left, n)
	}
}

// TestUntrustedByteCap: the untrusted index is bounded in bytes as well
// as in count: large documents push out the oldest until the total fits,
// and the newest is always kept.
func TestUntrustedByteCap(t *testing.T) {
	s := openMemStore(t)
	never := func(string) bool { return false }
	// Sizes stay small: the in-memory test store keeps values inline.
	limit := UntrustedLimit{Count: 1000, Bytes: 250}
	for i := range 20 {
		e := untrustedEntry(i, "p", "1.0", "MALLORY0")
		e.Record.Body = make([]byte, 50) // and 3 bytes of signature
		if _, err := s.PutUntrusted(e, limit, never); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Untrusted()
	if err != nil || n != 4 {
		t.Fatalf("%d untrusted documents kept (%v), want the 4 newest that fit in 250 bytes", n, err)
	}
	for i := range 20 {
		e := untrustedEntry(i, "p", "1.0", "MALLORY0")
		if has, _ := s.Has(e.Record.ID); has != (i >= 16) {
			t.Errorf("document %d stored: %v", i, has)
		}
	}
	// A document larger than the whole budget is still kept, alone.
	big := untrustedEntry(99, "p", "1.0", "MALLORY0")
	big.Record.Body = make([]byte, 50)
	if _, err := s.PutUntrusted(big, UntrustedLimit{Count: 1000, Bytes: 20}, never); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Untrusted(); n != 1 {
		t.Errorf("after one over-budget document: %d kept, want 1", n)
	}
}
