package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node/store"
)

// ImportOptions adjust Import.
type ImportOptions struct {
	// Version and Signer give the context of a lone SHA256SUMS file, which
	// its signature does not cover. Default: the names of its grandparent
	// and parent directories, as in a guix.sigs tree.
	Version, Signer string
	// Workers verifying in parallel; default twice GOMAXPROCS, so that a
	// worker waiting on a file read leaves no core idle.
	Workers int
	// Progress, if set, is called after every batch written to the store.
	Progress func(ImportProgress)
	// Document, if set, is called with the id of every document of the
	// tree that is now stored (new or already there), after it is durable.
	Document func(attest.ID)
}

// ImportProgress counts documents so far. Stored counts only documents
// already durable in the store.
type ImportProgress struct {
	Seen      int `json:"seen"`
	Stored    int `json:"stored"`
	Duplicate int `json:"duplicate"`
	Rejected  int `json:"rejected"`
}

// ImportSummary is the outcome of an import.
type ImportSummary struct {
	ImportProgress
	Keys       int                   `json:"keys"`
	ByStatus   map[attest.Status]int `json:"stored_by_status"`
	ByReason   map[string]int        `json:"rejected_by_reason"`
	Rejections []store.Rejection     `json:"rejections"` // the first few, for display
	// Elapsed is kept for readers of elapsed_ns (deprecated: read
	// elapsed_ms).
	Elapsed   time.Duration `json:"elapsed_ns"`
	ElapsedMS int64         `json:"elapsed_ms"`
}

// newImportSummary returns an empty summary whose lists and maps print as
// [] and {}, never null.
func newImportSummary() *ImportSummary {
	return &ImportSummary{ByStatus: map[attest.Status]int{}, ByReason: map[string]int{}, Rejections: []store.Rejection{}}
}

// finish stamps the summary's duration.
func (s *ImportSummary) finish(start time.Time) {
	s.Elapsed = time.Since(start)
	s.ElapsedMS = s.Elapsed.Milliseconds()
}

// importBatch is how many documents go into one store batch: the unit of
// durability and of progress reports.
const importBatch = 256

// maxShownRejections bounds ImportSummary.Rejections.
const maxShownRejections = 50

// Import reads a guix.sigs tree (<version>/<signer>/*.SHA256SUMS + .asc,
// with keys in builder-keys/), a contrib/guix/sigs tree
// (<version>/<builder>/attestation.json + .asc), or one document with its
// signature, verifies every document and stores the good ones and the ones
// whose key is not known yet. Files are streamed: memory does not grow with
// the tree. Importing the same tree twice changes nothing.
func (n *Node) Import(ctx context.Context, path string, opts ImportOptions) (*ImportSummary, error) {
	start := time.Now()
	fi, err := os.Stat(path)
	if err != nil {
		return nil, usageErr(err)
	}
	sum := newImportSummary()
	// Keys in builder-keys/ load while the documents are read and parsed;
	// verification waits for them.
	keysDone := make(chan struct{})
	var keys keyDirResult
	go func() {
		defer close(keysDone)
		if kd := filepath.Join(path, "builder-keys"); fi.IsDir() && isDir(kd) {
			keys = n.importKeyDir(kd)
		}
	}()
	var kr *attest.Keyring
	keyring := sync.OnceValue(func() error {
		<-keysDone
		if keys.err != nil {
			return keys.err
		}
		var err error
		kr, err = n.Keyring()
		return err
	})
	workers := opts.Workers
	if workers <= 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan importJob, workers*4)
	results := make(chan importResult, workers*4)
	var walkErr error
	go func() {
		defer close(jobs)
		if fi.IsDir() {
			walkErr = walkTree(ctx, path, jobs)
		} else {
			walkErr = singleJob(ctx, path, opts, jobs)
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				results <- n.checkJob(j, func() (*attest.Keyring, error) {
					err := keyring() // sets kr: call it before reading kr
					return kr, err
				})
			}
		})
	}
	go func() { wg.Wait(); close(results) }()

	werr := n.writeResults(results, sum, opts.Progress, opts.Document)
	<-keysDone
	sum.Keys = keys.count
	for _, r := range keys.rejections {
		sum.note(r)
	}
	if werr == nil {
		werr = keys.err
	}
	if werr != nil {
		cancel()
		for range results { // let the workers finish
		}
		return sum, werr
	}
	if walkErr != nil {
		return sum, walkErr
	}
	n.refreshSummaries()
	sum.finish(start)
	return sum, ctx.Err()
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// keyDirResult is what importKeyDir did.
type keyDirResult struct {
	count      int
	rejections []store.Rejection
	err        error
}

// importKeyDir adds every key file of a builder-keys directory to the
// keyring (not to the trust set). A file that cannot be read is logged as
// a rejection; the others still load. A file already imported byte for
// byte is not parsed again.
func (n *Node) importKeyDir(dir string) keyDirResult {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return keyDirResult{err: fmt.Errorf("read %s: %w", dir, err)}
	}
	// Reading a key verifies its self-signatures: spread the files over
	// the cores.
	type parsed struct {
		keys []*attest.Key
		seen string // the file's hash, when new
		rej  *store.Rejection
	}
	results := make([]parsed, len(entries))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				e := entries[i]
				p := filepath.Join(dir, e.Name())
				b, err := readCapped(p, attest.MaxKeyFileSize)
				var ks []*attest.Key
				if err == nil {
					sum := sha256.Sum256(b)
					seen := "keyfile/" + hex.EncodeToString(sum[:])
					if _, err := n.store.GetSetting(seen); err == nil {
						continue // imported before, unchanged
					}
					results[i].seen = seen
					ks, err = attest.ReadKeys(b)
				}
				if err != nil {
					results[i].rej = &store.Rejection{Time: n.now().UTC(), Source: p, File: e.Name(), Reason: "bad_key", Detail: err.Error()}
					continue
				}
				results[i].keys = ks
			}
		})
	}
	for i, e := range entries {
		if e.Type().IsRegular() {
			next <- i
		}
	}
	close(next)
	wg.Wait()
	var out keyDirResult
	var keys []*attest.Key
	for _, r := range results {
		keys = append(keys, r.keys...)
		if r.rej != nil {
			out.rejections = append(out.rejections, *r.rej)
		}
	}
	if err := n.store.AddRejections(out.rejections); err != nil {
		return keyDirResult{err: err}
	}
	if _, err := n.AddKeys(keys); err != nil {
		return keyDirResult{err: err}
	}
	for _, r := range results {
		if r.seen != "" && r.rej == nil {
			if err := n.store.PutSetting(r.seen, []byte("1")); err != nil {
				return keyDirResult{err: err}
			}
		}
	}
	out.count = len(keys)
	return out
}

type importJob struct {
	doc, sig string
	kind     attest.Kind
	version  string // manifests only
	signer   string
	rej      *store.Rejection // a problem found while walking
}

type importResult struct {
	entry *store.Entry
	dup   bool
	id    attest.ID // of the entry or the duplicate
	rej   *store.Rejection
}

// docKind tells whether a file name is a signed document rbnode reads.
func docKind(name string) (attest.Kind, bool) {
	switch {
	case name == attest.RequestName:
		return attest.KindRequest, true
	case name == attest.FailureName:
		return attest.KindBuildFailure, true
	case strings.HasSuffix(name, "SHA256SUMS"):
		return attest.KindManifest, true
	case strings.HasSuffix(name, ".json"):
		return attest.KindAttestation, true
	}
	return "", false
}

func walkTree(ctx context.Context, root string, jobs chan<- importJob) error {
	send := func(j importJob) error {
		select {
		case jobs <- j:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return usagef("read %s: %w", p, err)
			}
			// An unreadable directory (or entry) is one rejection; the
			// rest of the tree is still imported.
			j := importJob{doc: p, rej: &store.Rejection{Reason: "unreadable", Detail: err.Error()}}
			j.signer, j.version = contextOf(p)
			if serr := send(j); serr != nil {
				return serr
			}
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p != root && (d.Name() == "builder-keys" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		if strings.HasSuffix(name, ".asc") {
			docName := strings.TrimSuffix(name, ".asc")
			kind, ok := docKind(docName)
			if !ok {
				return nil
			}
			doc := filepath.Join(filepath.Dir(p), docName)
			j := importJob{doc: doc, sig: p, kind: kind}
			j.signer, j.version = contextOf(doc)
			if !d.Type().IsRegular() {
				j.rej = &store.Rejection{Reason: "not_regular_file", Detail: "signature is not a regular file (symlinks are not followed)"}
			}
			return send(j)
		}
		if kind, ok := docKind(name); ok && (kind != attest.KindAttestation || name == "attestation.json") {
			if _, err := os.Lstat(p + ".asc"); err != nil {
				j := importJob{doc: p, kind: kind, rej: &store.Rejection{Reason: "missing_signature", Detail: "no " + name + ".asc beside it"}}
				j.signer, j.version = contextOf(p)
				return send(j)
			}
		}
		return nil
	})
}

// contextOf reads a document's context from its path:
// .../<version>/<signer>/<file>.
func contextOf(doc string) (signer, version string) {
	dir := filepath.Dir(doc)
	return filepath.Base(dir), filepath.Base(filepath.Dir(dir))
}

func singleJob(ctx context.Context, path string, opts ImportOptions, jobs chan<- importJob) error {
	doc, sig := path, path+".asc"
	if strings.HasSuffix(path, ".asc") {
		doc, sig = strings.TrimSuffix(path, ".asc"), path
	}
	kind, ok := docKind(filepath.Base(doc))
	if !ok {
		return usagef("%s is neither a SHA256SUMS manifest, an attestation .json, a request.json nor a build-failure.json (give a file, its .asc, or a directory tree)", doc)
	}
	j := importJob{doc: doc, sig: sig, kind: kind}
	j.signer, j.version = contextOf(doc)
	if opts.Version != "" {
		j.version = opts.Version
	}
	if opts.Signer != "" {
		j.signer = opts.Signer
	}
	select {
	case jobs <- j:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkJob reads, parses and verifies one document.
func (n *Node) checkJob(j importJob, keyring func() (*attest.Keyring, error)) importResult {
	reject := func(reason, detail string) importResult {
		return importResult{rej: &store.Rejection{
			Time: n.now().UTC(), Source: j.doc, Version: j.version, Signer: j.signer,
			File: filepath.Base(j.doc), Reason: reason, Detail: detail,
		}}
	}
	if j.rej != nil {
		return reject(j.rej.Reason, j.rej.Detail)
	}
	body, err := readCapped(j.doc, int64(n.cfg.MaxDocumentSize))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return reject("missing_document", "signature without its document "+filepath.Base(j.doc))
	case errors.Is(err, errNotRegular):
		return reject("not_regular_file", "document is not a regular file (symlinks are not followed)")
	case errors.Is(err, errTooLarge):
		return reject("too_large", err.Error()+" (max_document_size)")
	case err != nil:
		return reject("unreadable", err.Error())
	}
	sig, err := readCapped(j.sig, attest.MaxSignatureSize)
	switch {
	case errors.Is(err, errNotRegular):
		return reject("not_regular_file", "signature is not a regular file (symlinks are not followed)")
	case errors.Is(err, errTooLarge):
		return reject("too_large", err.Error())
	case err != nil:
		return reject("unreadable", err.Error())
	}
	d := &attest.Document{Kind: j.kind, Name: filepath.Base(j.doc), Body: body, Signature: sig}
	if j.kind == attest.KindManifest {
		d.Version, d.Signer = j.version, j.signer
	}
	return n.checkDoc(d, keyring, j.doc, "import")
}

// checkDoc parses and verifies one document: the result is an entry to
// store (good, or waiting for its key), a duplicate, or a rejection.
func (n *Node) checkDoc(d *attest.Document, keyring func() (*attest.Keyring, error), source, origin string) importResult {
	now := n.now()
	project := ""
	reject := func(reason, detail, keyID string) importResult {
		return importResult{rej: &store.Rejection{
			Time: now.UTC(), Source: source, Project: project, Version: d.Version, Signer: d.Signer,
			File: d.Name, KeyID: keyID, Reason: reason, Detail: detail,
		}}
	}
	if max := int(n.cfg.MaxDocumentSize); len(d.Body) > max {
		return reject("too_large", fmt.Sprintf("document is %d bytes, more than %d (max_document_size)", len(d.Body), max), "")
	}
	p, err := d.Parse()
	if err != nil {
		return reject(parseReason(err), err.Error(), "")
	}
	project = p.Statement.Project
	if has, err := n.store.Has(p.ID); err == nil && has {
		return importResult{dup: true, id: p.ID}
	}
	kr, err := keyring()
	if err != nil {
		return reject("unreadable", "no keyring: "+err.Error(), "")
	}
	v := kr.Verify(d.Body, p.Sig, now)
	// Kept: good signatures, ones voided by their key (revoked, expired:
	// evidence that status lists, as it would had the key's news come
	// later) and ones waiting for their key.
	if !v.Authentic() && v.Status != attest.StatusUnknownKey {
		return reject(string(v.Status), v.Detail, v.KeyID)
	}
	return importResult{id: p.ID, entry: &store.Entry{
		Record: store.Record{
			ID: p.ID, Kind: d.Kind, Project: p.Statement.Project, Version: p.Statement.Version,
			Signer: d.Signer, Name: d.Name, Body: d.Body, Signature: d.Signature,
			ReceivedAt: now.UTC(), Source: origin,
		},
		Meta:      store.Meta{ID: p.ID, Verification: v},
		Artifacts: p.Statement.Artifacts,
	}}
}

// Ingest verifies documents held in memory and stores them as Import does
// (good ones, and those whose key is not known yet). origin labels where
// they came from ("peer:<id>", "build").
func (n *Node) Ingest(ctx context.Context, docs []*attest.Document, origin string) (*ImportSummary, error) {
	start := time.Now()
	kr, err := n.Keyring()
	if err != nil {
		return nil, err
	}
	sum := newImportSummary()
	results := make(chan importResult, 64)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan *attest.Document)
	go func() {
		defer close(next)
		for _, d := range docs {
			select {
			case next <- d:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for d := range next {
				results <- n.checkDoc(d, func() (*attest.Keyring, error) { return kr, nil }, origin+":"+d.Version+"/"+d.Signer+"/"+d.Name, origin)
			}
		})
	}
	go func() { wg.Wait(); close(results) }()
	if err := n.writeResults(results, sum, nil, nil); err != nil {
		cancel()
		for range results {
		}
		return sum, err
	}
	n.refreshSummaries()
	sum.finish(start)
	return sum, ctx.Err()
}

// parseReason maps a parse error to a short reason code.
func parseReason(err error) string {
	switch {
	case errors.Is(err, attest.ErrBadName):
		return "unsafe_name"
	case errors.Is(err, attest.ErrContext):
		return "context_mismatch"
	}
	return "malformed"
}

// writeResults is the single writer: it batches stored documents, counts
// duplicates (also within the run) and logs rejections.
func (n *Node) writeResults(results <-chan importResult, sum *ImportSummary, progress func(ImportProgress), document func(attest.ID)) error {
	batch := n.store.NewBatch()
	pending := map[attest.ID]attest.Status{}
	if document == nil {
		document = func(attest.ID) {}
	}
	var rejs []store.Rejection
	touched := map[store.ReleaseKey]bool{}
	flush := func() error {
		if err := batch.Flush(); err != nil {
			return err
		}
		if err := n.store.AddRejections(rejs); err != nil {
			return err
		}
		n.refreshReleases(touched)
		clear(touched)
		for id, st := range pending {
			sum.Stored++
			sum.ByStatus[st]++
			document(id)
		}
		clear(pending)
		rejs = rejs[:0]
		if progress != nil {
			progress(sum.ImportProgress)
		}
		return nil
	}
	for r := range results {
		sum.Seen++
		switch {
		case r.rej != nil:
			sum.note(*r.rej)
			rejs = append(rejs, *r.rej)
		case r.dup:
			sum.Duplicate++
			document(r.id)
		default:
			id := r.entry.Record.ID
			if _, ok := pending[id]; ok {
				sum.Duplicate++
				continue
			}
			if err := n.room(len(r.entry.Record.Body) + len(r.entry.Record.Signature)); err != nil {
				// What is already in the batch fits: keep it.
				if ferr := flush(); ferr != nil {
					return ferr
				}
				return fmt.Errorf("store document %s: %w", id.Short(), err)
			}
			if err := batch.Put(r.entry); err != nil {
				batch.Cancel()
				return err
			}
			pending[id] = r.entry.Meta.Verification.Status
			touched[store.ReleaseKey{Project: r.entry.Record.Project, Version: r.entry.Record.Version}] = true
		}
		if len(pending)+len(rejs) >= importBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (s *ImportSummary) note(r store.Rejection) {
	s.Rejected++
	s.ByReason[r.Reason]++
	if len(s.Rejections) < maxShownRejections {
		s.Rejections = append(s.Rejections, r)
	}
}

// errTooLarge is returned by readCapped for a file over its cap.
var errTooLarge = errors.New("too large")

// errNotRegular is returned by readCapped for symlinks, devices and the
// like: an import never follows a link out of the tree it was given.
var errNotRegular = errors.New("not a regular file")

// readCapped reads a whole regular file of at most max bytes, in one read
// when the file does not change meanwhile. Symlinks are not followed.
func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s: %w", path, errNotRegular)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", path, errNotRegular)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes, more than %d: %w", path, fi.Size(), max, errTooLarge)
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}
