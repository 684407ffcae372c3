package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/rs/zerolog"

	"github.com/rbnode/rbnode/attest"
)

// Layout is the version of the key layout this package writes.
const Layout = "1"

// ErrLocked is returned when another process has the store open.
var ErrLocked = errors.New("store is in use by another rbnode process")

// ErrNotFound is returned for a document or key the store does not hold.
var ErrNotFound = errors.New("not found")

// Store is an open Badger store.
type Store struct {
	db       *badger.DB
	dir      string // "" in memory
	log      zerolog.Logger
	readOnly bool
	// stopResident ends watchResident (writable stores on disk); closed
	// once, by Close, which then waits for residentDone.
	stopResident, residentDone chan struct{}
	closeOnce                  sync.Once
	// summariesStale: a read-only open found the store written after the
	// last clean close of a writable session (summary.go); no cached
	// summary or list is used.
	summariesStale bool
	// untrustedMu serialises PutUntrusted: each admission reads and moves
	// the untrusted index's bounds, and Badger (without conflict
	// detection) would let two transactions take the same sequence number
	// and leak an entry past the cap.
	untrustedMu sync.Mutex
	// generation moves after every write that may change which documents
	// are stored or how they verified (Generation).
	generation atomic.Uint64
}

// Generation moves after every write that may change which documents the
// store holds or their verifications has become visible, and never
// returns to an earlier value: sync serving reuses one scan of the store
// while it stays the same (gossip.VersionedInventory).
func (s *Store) Generation() uint64 { return s.generation.Load() }

func isLockError(err error) bool {
	return strings.Contains(err.Error(), "Cannot acquire directory lock")
}

// Options configure Open.
type Options struct {
	Dir      string // ignored when InMemory
	InMemory bool
	// ReadOnly opens the store shared, for commands that only read: it
	// takes a fraction of a millisecond where a writable open takes
	// several, and any number of readers may have it open at once. A
	// store that does not exist yet, or that a crashed writer left with
	// an unreplayed log, cannot be opened read-only; Open then falls back
	// to a writable open, which creates or replays it.
	ReadOnly bool
	Logger   zerolog.Logger

	// vlogFileSize and memTableSize, when set, replace the defaults (tests
	// of value-log reclaim need small files); maxResident replaces
	// MaxResident.
	vlogFileSize, memTableSize, maxResident int64
}

// Open opens (creating if needed) the store in opts.Dir.
func Open(opts Options) (*Store, error) {
	bo := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithLogger(badgerLogger{opts.Logger.With().Str("component", "badger").Logger()}).
		WithMemTableSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumMemtables(2).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithDetectConflicts(false).
		WithValueThreshold(256).
		WithCompression(options.None).WithBlockCacheSize(0).
		// Every open reads each table's block index and Bloom filter:
		// 16 KiB blocks make the index a quarter of 4 KiB ones', and 8 MiB
		// tables a quarter as many files. A million documents' store went
		// from 98 tables to 25 and its read-only open from 34.5 to 17.8 ms
		// (a loaded machine; docs/performance.md). Tables written before
		// keep their size.
		WithBlockSize(16 << 10).WithBaseTableSize(8 << 20)
	if opts.vlogFileSize > 0 {
		bo = bo.WithValueLogFileSize(opts.vlogFileSize)
	}
	if opts.memTableSize > 0 {
		bo = bo.WithMemTableSize(opts.memTableSize)
	}
	dir := opts.Dir
	if opts.InMemory {
		bo.Dir, bo.ValueDir, dir = "", "", ""
	}
	if opts.ReadOnly && !opts.InMemory && Exists(opts.Dir) {
		db, err := badger.Open(bo.WithReadOnly(true))
		if err == nil {
			return opened(&Store{db: db, dir: dir, log: opts.Logger, readOnly: true})
		}
		if isLockError(err) {
			return nil, fmt.Errorf("open store %s: %w", opts.Dir, ErrLocked)
		}
		opts.Logger.Debug().Err(err).Msg("read-only open failed; opening writable to recover")
	}
	if dir != "" {
		// A writable open on a full disk would end in a SIGBUS.
		if err := checkFree(dir, MinFree); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	db, err := badger.Open(bo)
	if err != nil {
		if isLockError(err) {
			return nil, fmt.Errorf("open store %s: %w", opts.Dir, ErrLocked)
		}
		return nil, fmt.Errorf("open store %s: %w", opts.Dir, err)
	}
	s, err := opened(&Store{db: db, dir: dir, log: opts.Logger})
	if err == nil && dir != "" {
		limit := int64(MaxResident)
		if opts.maxResident != 0 {
			limit = opts.maxResident
		}
		s.stopResident, s.residentDone = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(s.residentDone)
			s.watchResident(s.stopResident, limit)
		}()
	}
	return s, err
}

func opened(s *Store) (*Store, error) {
	if err := s.checkLayout(); err != nil {
		s.db.Close()
		return nil, err
	}
	if s.dir != "" {
		if err := s.checkSummaries(); err != nil {
			s.db.Close()
			return nil, fmt.Errorf("open store: check the summary cache: %w", err)
		}
	}
	return s, nil
}

// Close closes the store. It is safe to call more than once.
// ReadOnly says whether the store was opened read-only: a writable open
// (a read-only one that fell back to recover, or a new store) says false.
func (s *Store) ReadOnly() bool { return s.readOnly }

func (s *Store) Close() error {
	if s.db.IsClosed() {
		return nil
	}
	s.closeOnce.Do(func() {
		if s.stopResident != nil {
			close(s.stopResident)
			<-s.residentDone
		}
		// Unsealed (a full disk), the next open only distrusts the
		// summary cache.
		if err := s.sealSummaries(); err != nil {
			s.log.Warn().Err(err).Msg("seal the summary cache")
		}
	})
	return s.db.Close()
}

func (s *Store) checkLayout() error {
	k := []byte("1/m/layout")
	update := s.db.Update
	if s.readOnly {
		update = s.db.View
	}
	return update(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) && !s.readOnly {
			return txn.Set(k, []byte(Layout))
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if string(v) != Layout {
				return fmt.Errorf("store layout is %q, this rbnode reads %q", v, Layout)
			}
			return nil
		})
	})
}

// Record is a stored document: its exact bytes, where it came from and its
// statement's coordinates.
type Record struct {
	ID         attest.ID   `json:"-"`
	Kind       attest.Kind `json:"kind"`
	Project    string      `json:"project"`
	Version    string      `json:"version"`
	Signer     string      `json:"signer"`
	Name       string      `json:"name"`
	Body       []byte      `json:"-"`
	Signature  []byte      `json:"-"`
	ReceivedAt time.Time   `json:"received_at"`
	Source     string      `json:"source"`
}

// Document returns the record as an attest.Document.
func (r *Record) Document() *attest.Document {
	return &attest.Document{Kind: r.Kind, Version: r.Version, Signer: r.Signer, Name: r.Name, Body: r.Body, Signature: r.Signature}
}

// encodeRecord writes a record compactly: a format byte, the small fields
// as JSON, then the body and signature raw, each length-prefixed. Raw bytes
// instead of base64 keep the store a third smaller, and writes cheaper.
func encodeRecord(r *Record) ([]byte, error) {
	head, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 1+3*binary.MaxVarintLen32+len(head)+len(r.Body)+len(r.Signature))
	b = append(b, recordFormat)
	for _, part := range [][]byte{head, r.Body, r.Signature} {
		b = binary.AppendUvarint(b, uint64(len(part)))
		b = append(b, part...)
	}
	return b, nil
}

const recordFormat = 1

func decodeRecord(b []byte, r *Record) error {
	if len(b) == 0 || b[0] != recordFormat {
		return errors.New("unknown record format")
	}
	b = b[1:]
	var parts [3][]byte
	for i := range parts {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return errors.New("truncated record")
		}
		parts[i], b = b[k:k+int(n)], b[k+int(n):]
	}
	if err := json.Unmarshal(parts[0], r); err != nil {
		return err
	}
	r.Body = append([]byte(nil), parts[1]...)
	r.Signature = append([]byte(nil), parts[2]...)
	return nil
}

func getRecord(txn *badger.Txn, id attest.ID, r *Record) error {
	item, err := txn.Get(key(pDoc, id[:]))
	if err != nil {
		return err
	}
	r.ID = id
	return item.Value(func(b []byte) error {
		if err := decodeRecord(b, r); err != nil {
			return fmt.Errorf("document %s: %w", id.Short(), err)
		}
		return nil
	})
}

// Meta is how a stored document's signature was judged, and by whom. It
// is rewritten when the signer's key changes; the document never is.
type Meta struct {
	ID           attest.ID           `json:"-"`
	Verification attest.Verification `json:"verification"`
}

// Entry is a document to store: its record, meta and the artifacts it
// names (for the indexes).
type Entry struct {
	Record    Record
	Meta      Meta
	Artifacts []attest.Entry
}

func key(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	pDoc      = []byte("1/d/")
	pVer      = []byte("1/v/")
	pRelease  = []byte("1/r/")
	pVersion  = []byte("1/n/")
	pArtifact = []byte("1/a/")
	pHash     = []byte("1/h/")
	pIssuer   = []byte("1/i/")
	pKey      = []byte("1/k/")
	pTrust    = []byte("1/t/")
	pSetting  = []byte("1/s/")
	pGood     = []byte("1/g/")
	sep       = []byte{0}
)

// Has reports whether the document is stored.
func (s *Store) Has(id attest.ID) (bool, error) {
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(key(pDoc, id[:]))
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Batch writes many documents with Badger's WriteBatch, which splits work
// into transactions of allowed size (a single transaction caps out with
// ErrTxnTooBig on large imports). Entries are durable against a process
// crash once Flush returns; the batch can then take more.
type Batch struct {
	s  *Store
	wb *badger.WriteBatch
	n  int
	// indexed remembers the release-level index keys already written in
	// this batch's life: the twenty builders of a release share them, and
	// writing each once keeps the store and its flushes small.
	indexed map[string]struct{}
}

// maxIndexed bounds Batch.indexed; it is cleared when full.
const maxIndexed = 1 << 16

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch {
	return &Batch{s: s, wb: s.db.NewWriteBatch(), indexed: map[string]struct{}{}}
}

// Put adds a document and its indexes. Put of a document already stored
// rewrites identical bytes: documents are content-addressed.
func (b *Batch) Put(e *Entry) error {
	index := func(k []byte) error {
		if _, ok := b.indexed[string(k)]; ok {
			return nil
		}
		if len(b.indexed) >= maxIndexed {
			clear(b.indexed)
		}
		b.indexed[string(k)] = struct{}{}
		return b.wb.Set(k, nil)
	}
	if err := putEntry(e, b.wb.Set, index); err != nil {
		return err
	}
	b.n++
	return nil
}

// putEntry writes a document and its indexes through set; index writes
// the release-level index keys, which many documents share.
func putEntry(e *Entry, set func(k, v []byte) error, index func(k []byte) error) error {
	r := &e.Record
	rec, err := encodeRecord(r)
	if err != nil {
		return err
	}
	meta, err := json.Marshal(e.Meta)
	if err != nil {
		return err
	}
	id := r.ID[:]
	proj, vers := []byte(r.Project), []byte(r.Version)
	kvs := []struct{ k, v []byte }{
		{key(pDoc, id), rec},
		{key(pVer, id), meta},
		{key(pRelease, proj, sep, vers, sep, id), nil},
	}
	if v := e.Meta.Verification; v.Authentic() {
		kvs = append(kvs, struct{ k, v []byte }{key(pGood, id), []byte(v.Fingerprint)})
	}
	if kid := e.Meta.Verification.KeyID; kid != "" {
		kvs = append(kvs, struct{ k, v []byte }{key(pIssuer, []byte(kid), []byte("/"), id), nil})
	}
	for _, kv := range kvs {
		if err := set(kv.k, kv.v); err != nil {
			return fmt.Errorf("store document %s: %w", r.ID.Short(), err)
		}
	}
	// Through set, not index: a batch may outlive a summary computed
	// between two of its flushes.
	if err := markChanged(set, r.Project, r.Version); err != nil {
		return fmt.Errorf("store document %s: %w", r.ID.Short(), err)
	}
	idx := [][]byte{key(pVersion, vers, sep, proj)}
	for _, a := range e.Artifacts {
		idx = append(idx, key(pArtifact, []byte(a.Name), sep, proj, sep, vers), key(pHash, []byte(a.SHA256), sep, proj, sep, vers))
		if base := attest.BaseName(a.Name); base != a.Name {
			// A download has the base name of a name with directories.
			idx = append(idx, key(pArtifact, []byte(base), sep, proj, sep, vers))
		}
	}
	for _, k := range idx {
		if err := index(k); err != nil {
			return fmt.Errorf("store document %s: %w", r.ID.Short(), err)
		}
	}
	return nil
}

// Len returns the number of documents put since the batch started.
func (b *Batch) Len() int { return b.n }

// Flush makes everything put so far durable. The batch stays usable.
func (b *Batch) Flush() error {
	// Badger commits a batch in parts as it grows, so some of it may be
	// visible before Flush: the generation moves after, however it ends.
	defer b.s.generation.Add(1)
	if err := b.wb.Flush(); err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	b.wb = b.s.db.NewWriteBatch()
	return nil
}

// Cancel discards the batch.
func (b *Batch) Cancel() {
	b.wb.Cancel()
	b.s.generation.Add(1) // parts may have been committed
}

// Get returns a stored document and its meta.
func (s *Store) Get(id attest.ID) (*Record, *Meta, error) {
	r, m := &Record{}, &Meta{ID: id}
	err := s.db.View(func(txn *badger.Txn) error {
		if err := getRecord(txn, id, r); err != nil {
			return err
		}
		return getJSON(txn, key(pVer, id[:]), m)
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil, fmt.Errorf("document %s: %w", id.Short(), ErrNotFound)
	}
	if err != nil {
		return nil, nil, err
	}
	return r, m, nil
}

func getJSON(txn *badger.Txn, k []byte, out any) error {
	item, err := txn.Get(k)
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode %q: %w", k[:4], err)
		}
		return nil
	})
}

// StoredDoc is a stored document with its meta.
type StoredDoc struct {
	Record *Record
	Meta   *Meta
}

// Release returns every document stored for (project, version), in id
// order.
func (s *Store) Release(project, version string) ([]StoredDoc, error) {
	prefix := key(pRelease, []byte(project), sep, []byte(version), sep)
	var out []StoredDoc
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var id attest.ID
			copy(id[:], it.Item().Key()[len(prefix):])
			d := StoredDoc{Record: &Record{}, Meta: &Meta{ID: id}}
			if err := getRecord(txn, id, d.Record); err != nil {
				return err
			}
			if err := getJSON(txn, key(pVer, id[:]), d.Meta); err != nil {
				return fmt.Errorf("read document %s: %w", id.Short(), err)
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// ReleaseKey names a release.
type ReleaseKey struct {
	Project string `json:"project"`
	Version string `json:"version"`
}

// Projects returns the projects that have documents for version, sorted.
func (s *Store) Projects(version string) ([]string, error) {
	var out []string
	err := s.keys(key(pVersion, []byte(version), sep), func(k []byte) bool {
		out = append(out, string(k))
		return true
	})
	return out, err
}

// Releases returns every release with stored documents, ordered by
// project, then version in natural order.
func (s *Store) Releases() ([]ReleaseKey, error) {
	var out []ReleaseKey
	err := s.keys(pVersion, func(k []byte) bool {
		v, p, _ := bytes.Cut(k, sep)
		out = append(out, ReleaseKey{Project: string(p), Version: string(v)})
		return true
	})
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Project != out[j].Project {
			return out[i].Project < out[j].Project
		}
		return VersionLess(out[i].Version, out[j].Version)
	})
	return out, err
}

// ReleasesWith returns the releases naming an artifact (by=name, which
// also finds "dir/name" by its base name) or carrying a hash (by=sha256).
func (s *Store) ReleasesWith(artifact, sha256 string) (byName, byHash []ReleaseKey, err error) {
	split := func(k []byte) ReleaseKey {
		p, v, _ := bytes.Cut(k, sep)
		return ReleaseKey{Project: string(p), Version: string(v)}
	}
	if artifact != "" {
		err = s.keys(key(pArtifact, []byte(artifact), sep), func(k []byte) bool {
			byName = append(byName, split(k))
			return true
		})
	}
	if err == nil && sha256 != "" {
		err = s.keys(key(pHash, []byte(sha256), sep), func(k []byte) bool {
			byHash = append(byHash, split(k))
			return true
		})
	}
	return byName, byHash, err
}

// keys calls fn with the rest of every key under prefix, in order.
func (s *Store) keys(prefix []byte, fn func(rest []byte) bool) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if !fn(it.Item().KeyCopy(nil)[len(prefix):]) {
				break
			}
		}
		return nil
	})
}

// Range calls fn for each stored document with an authentic signature
// (attest.Verification.Authentic) by a key for which keep returns true,
// whose id starts with prefix, in ascending order, until fn returns false:
// with keep reporting the trust set, the set a node shares with its peers.
func (s *Store) Range(prefix []byte, keep func(fingerprint string) bool, fn func(id attest.ID) bool) error {
	p := key(pGood, prefix)
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var id attest.ID
			copy(id[:], it.Item().Key()[len(pGood):])
			fp, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(fp) == 0 {
				// Written before the index named the signer.
				var m Meta
				if err := getJSON(txn, key(pVer, id[:]), &m); err != nil {
					return fmt.Errorf("read document %s: %w", id.Short(), err)
				}
				fp = []byte(m.Verification.Fingerprint)
			}
			if keep(string(fp)) && !fn(id) {
				break
			}
		}
		return nil
	})
}

// Signer returns the fingerprint of the key that made a stored document's
// authentic signature, and false when the document is not stored or its
// signature is not authentic (yet).
func (s *Store) Signer(id attest.ID) (string, bool, error) {
	fp, ok := "", false
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key(pGood, id[:]))
		if err != nil {
			return err
		}
		b, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if len(b) == 0 {
			var m Meta
			if err := getJSON(txn, key(pVer, id[:]), &m); err != nil {
				return err
			}
			b = []byte(m.Verification.Fingerprint)
		}
		fp, ok = string(b), true
		return nil
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", false, nil
	}
	return fp, ok, err
}

// Count returns the number of stored documents.
func (s *Store) Count() (int, error) {
	n := 0
	err := s.keys(pDoc, func([]byte) bool { n++; return true })
	return n, err
}

// DocsByKeyID returns the ids of documents whose signature names key id.
func (s *Store) DocsByKeyID(keyID string) ([]attest.ID, error) {
	var out []attest.ID
	err := s.keys(key(pIssuer, []byte(keyID), []byte("/")), func(rest []byte) bool {
		var id attest.ID
		copy(id[:], rest)
		out = append(out, id)
		return true
	})
	return out, err
}

// SetVerification replaces a document's verification (after its key
// changed). It returns ErrNotFound for a document not (or no longer)
// stored.
func (s *Store) SetVerification(id attest.ID, v attest.Verification) error {
	defer s.generation.Add(1)
	return s.db.Update(func(txn *badger.Txn) error {
		var m Meta
		if err := getJSON(txn, key(pVer, id[:]), &m); errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("document %s: %w", id.Short(), ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("document %s: %w", id.Short(), err)
		}
		m.Verification = v
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		var r Record
		if err := getRecord(txn, id, &r); err != nil {
			return err
		}
		if err := markChanged(txn.Set, r.Project, r.Version); err != nil {
			return err
		}
		if v.Authentic() {
			err = txn.Set(key(pGood, id[:]), []byte(v.Fingerprint))
		} else {
			err = txn.Delete(key(pGood, id[:]))
		}
		if err != nil {
			return err
		}
		return txn.Set(key(pVer, id[:]), b)
	})
}

// PutKey stores a public key under its fingerprint, replacing an older
// copy (the caller merges copies first).
func (s *Store) PutKey(k *attest.Key) error {
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(key(pKey, []byte(k.Fingerprint)), k.Bytes())
	})
}

// Keys returns every stored public key, ordered by fingerprint. Keys were
// checked on their way in (node.AddKeys takes only what attest.ReadKeys
// accepted), so they are read back without checking self-signatures again.
func (s *Store) Keys() ([]*attest.Key, error) {
	var raw [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pKey, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			raw = append(raw, b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*attest.Key, 0, len(raw))
	for i, b := range raw {
		k, err := attest.ReadStoredKey(b)
		if err != nil {
			return nil, fmt.Errorf("stored key %d: %w", i, err)
		}
		out = append(out, k)
	}
	return out, nil
}

// KeyBytes returns a stored key's certificate, or ErrNotFound.
func (s *Store) KeyBytes(fp string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key(pKey, []byte(fp)))
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("key %s: %w", fp, ErrNotFound)
	}
	return out, err
}

// TrustEntry is one trusted builder.
type TrustEntry struct {
	Fingerprint string    `json:"fingerprint"`
	Name        string    `json:"name"`
	AddedAt     time.Time `json:"added_at"`
}

// Trust adds (or renames) a trusted fingerprint.
func (s *Store) Trust(e TrustEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(key(pTrust, []byte(e.Fingerprint)), b)
	})
}

// Untrust removes a fingerprint from the trust set. It reports whether it
// was there.
func (s *Store) Untrust(fp string) (bool, error) {
	found := false
	err := s.db.Update(func(txn *badger.Txn) error {
		k := key(pTrust, []byte(fp))
		if _, err := txn.Get(k); err != nil {
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil
			}
			return err
		}
		found = true
		return txn.Delete(k)
	})
	return found, err
}

// Trusted returns the trust set, ordered by fingerprint.
func (s *Store) Trusted() ([]TrustEntry, error) {
	var out []TrustEntry
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pTrust, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var e TrustEntry
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &e) }); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// GetSetting and PutSetting keep small named values (the node's own
// settings and counters).
func (s *Store) GetSetting(name string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key(pSetting, []byte(name)))
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	return out, err
}

// PutSetting stores a small named value.
func (s *Store) PutSetting(name string, v []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(key(pSetting, []byte(name)), v) })
}

// Exists reports whether dir already holds a store.
func Exists(dir string) bool {
	_, err := os.Stat(dir + "/MANIFEST")
	return err == nil
}

type badgerLogger struct{ l zerolog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error().Msgf(strings.TrimSpace(f), a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn().Msgf(strings.TrimSpace(f), a...) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug().Msgf(strings.TrimSpace(f), a...) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.l.Trace().Msgf(strings.TrimSpace(f), a...) }
