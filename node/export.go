package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// ExportDoc is a stored document with a good signature, as the exports
// write it: the exact signed bytes, the signature as received and the
// signer's public key (armoured).
type ExportDoc struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Version     string `json:"version"`
	Signer      string `json:"signer"`
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	Body        []byte `json:"body"`
	Signature   []byte `json:"signature"`
	Key         []byte `json:"key"`
}

// ReleaseDocuments returns the documents of a release whose signature is
// good, in id order, each with its signer's key. Documents without a good
// signature (key not known yet) are left out: nobody could verify them.
func (n *Node) ReleaseDocuments(project, version string) ([]ExportDoc, error) {
	project, err := n.ResolveProject(project, version)
	if err != nil {
		return nil, err
	}
	docs, err := n.store.Release(project, version)
	if err != nil {
		return nil, fmt.Errorf("read release %s %s: %w", project, version, err)
	}
	kr, err := n.Keyring()
	if err != nil {
		return nil, err
	}
	out := []ExportDoc{}
	for _, d := range docs {
		v := d.Meta.Verification
		if !v.OK() {
			continue
		}
		k := kr.Get(v.Fingerprint)
		if k == nil {
			continue
		}
		r := d.Record
		out = append(out, ExportDoc{
			ID: r.ID.String(), Kind: string(r.Kind), Version: r.Version, Signer: r.Signer, Name: r.Name,
			Fingerprint: v.Fingerprint, Body: r.Body, Signature: r.Signature, Key: k.Armored(),
		})
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s %s: %w", project, version, ErrUnknownRelease)
	}
	return out, nil
}

// Document returns a stored document: its exact bytes and signature.
func (n *Node) Document(id attest.ID) (*attest.Document, error) {
	rec, _, err := n.store.Get(id)
	if err != nil {
		return nil, err
	}
	return rec.Document(), nil
}

// ExportSummary is what an export to guix.sigs wrote.
type ExportSummary struct {
	Dir       string   `json:"dir"`
	Documents []string `json:"documents"` // paths relative to Dir
	Keys      []string `json:"keys"`
	Unchanged int      `json:"unchanged"` // files already there with the same bytes
}

// ErrUnsafeName is returned for a stored name that would leave the export
// directory or is no plain path.
var ErrUnsafeName = errors.New("unsafe name")

// ErrExists is returned when an export would overwrite a different file.
var ErrExists = errors.New("a different file is already there")

// exportPath joins the parts of a path inside the export directory,
// checking each: a part may hold '/' (a directory-style artifact name),
// but no component may be empty, "." or "..", hold a backslash or a
// control character, or make the path absolute.
func exportPath(parts ...string) (string, error) {
	var comps []string
	for _, p := range parts {
		for c := range strings.SplitSeq(p, "/") {
			if c == "" || c == "." || c == ".." || strings.ContainsFunc(c, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
				return "", fmt.Errorf("%q: %w", strings.Join(parts, "/"), ErrUnsafeName)
			}
			comps = append(comps, c)
		}
	}
	rel := path.Join(comps...)
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", fmt.Errorf("%q: %w", rel, ErrUnsafeName)
	}
	return rel, nil
}

// WriteGuixSigs writes documents into dir in the guix.sigs layout:
// VERSION/SIGNER/NAME with NAME.asc beside it, and each signer's key as
// builder-keys/SIGNER.gpg. Bytes are written as stored, so `gpg --verify
// NAME.asc NAME` passes. Every path is checked (exportPath) and written
// through an os.Root on dir, so neither a hostile name nor a symbolic link
// already in dir can make it write outside. A file already there with the
// same bytes is kept; one with other bytes is an error (ErrExists), and
// nothing is overwritten.
func WriteGuixSigs(dir string, docs []ExportDoc) (*ExportSummary, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	defer root.Close()
	sum := &ExportSummary{Dir: dir, Documents: []string{}, Keys: []string{}}
	keyFile := map[string]string{} // fingerprint -> file written
	for _, d := range docs {
		rel, err := exportPath(d.Version, d.Signer, d.Name)
		if err != nil {
			return sum, fmt.Errorf("export document %s: %w", shortID(d.ID), err)
		}
		for _, f := range []struct {
			rel string
			b   []byte
		}{{rel, d.Body}, {rel + ".asc", d.Signature}} {
			same, err := writeNew(root, f.rel, f.b)
			if err != nil {
				return sum, fmt.Errorf("export document %s: %w", shortID(d.ID), err)
			}
			if same {
				sum.Unchanged++
			}
		}
		sum.Documents = append(sum.Documents, rel)
		if _, ok := keyFile[d.Fingerprint]; ok || len(d.Key) == 0 {
			continue
		}
		// One file per signer name; a second key under the same name gets
		// its fingerprint in the file name.
		kr, err := exportPath("builder-keys", d.Signer+".gpg")
		if err == nil && slices.Contains(sum.Keys, kr) {
			kr, err = exportPath("builder-keys", d.Signer+"."+d.Fingerprint+".gpg")
		}
		if err != nil {
			return sum, fmt.Errorf("export key %s: %w", d.Fingerprint, err)
		}
		same, err := writeNew(root, kr, d.Key)
		if errors.Is(err, ErrExists) {
			// The repository has its own copy of this signer's key (perhaps
			// with other signatures on it): keep it.
			same, err = true, nil
		}
		if err != nil {
			return sum, fmt.Errorf("export key %s: %w", d.Fingerprint, err)
		}
		if same {
			sum.Unchanged++
		}
		keyFile[d.Fingerprint] = kr
		sum.Keys = append(sum.Keys, kr)
	}
	return sum, nil
}

func shortID(id string) string { return id[:min(12, len(id))] }

// writeNew writes b at rel inside root, creating directories. It reports
// true when an identical file was already there, and ErrExists when a
// different one is.
func writeNew(root *os.Root, rel string, b []byte) (same bool, err error) {
	if err := root.MkdirAll(path.Dir(rel), 0o755); err != nil {
		return false, fmt.Errorf("create directory for %s: %w", rel, err)
	}
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		old, rerr := root.ReadFile(rel)
		if rerr == nil && bytes.Equal(old, b) {
			return true, nil
		}
		return false, fmt.Errorf("%s: %w", rel, ErrExists)
	}
	if err != nil {
		return false, fmt.Errorf("write %s: %w", rel, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return false, fmt.Errorf("write %s: %w", rel, err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("write %s: %w", rel, err)
	}
	return false, nil
}

// InTotoExport returns the in-toto Statement v1 of a report (indented
// JSON), or, with sk, the statement in a DSSE envelope signed by sk at now.
func InTotoExport(r *attest.Report, sk *attest.SecretKey, now time.Time) ([]byte, error) {
	st := attest.NewInTotoStatement(r).Encode()
	if sk == nil {
		return st, nil
	}
	env, err := sk.SignDSSE(attest.InTotoPayloadType, st, now)
	if err != nil {
		return nil, fmt.Errorf("sign the statement: %w", err)
	}
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
