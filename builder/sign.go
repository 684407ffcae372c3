package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// Signed is a document the builder signed and wrote.
type Signed struct {
	// Document is what was written, exactly: the node can Parse it and
	// publish it as is.
	Document attest.Document
	Path     string // the body (attestation.json or <name>.SHA256SUMS)
	SigPath  string // its detached signature, Path + ".asc"
}

// AttestRequest says how to sign an existing output directory.
type AttestRequest struct {
	// Kind is attest.KindAttestation (the default) for a Cuprate Guix
	// output directory, attest.KindManifest for a generic pipeline's.
	Kind attest.Kind
	// Version must be the one the outputs are of (guix-attest's VERSION).
	Version string
	// Commit, if set (40 hex), must be build-metadata.json's git_commit.
	Commit string
	// Project, for a manifest, is the project its entries must name.
	Project string
	Sign    Signing
	// Now is the signature's time and the attestation's attested_at.
	Now time.Time
}

// Attest checks an output directory the pipeline filled (the scripts run by
// hand, as before guix-attest) and signs it: an attestation.json for a Guix
// directory, its SHA256SUMS for a manifest. Nothing is written unless
// every check passes; a failed check is a *CheckError.
func Attest(ctx context.Context, outDir string, req AttestRequest) (*Signed, error) {
	if err := attest.CheckName("version", req.Version); err != nil {
		return nil, usagef("%v", err)
	}
	if req.Commit != "" && !isHex(req.Commit, 40, 40) {
		return nil, usagef("commit %q is not 40 hex digits", req.Commit)
	}
	if req.Now.IsZero() {
		return nil, usagef("attest needs the time to sign at")
	}
	id, err := req.Sign.check()
	if err != nil {
		return nil, err
	}
	switch req.Kind {
	case attest.KindAttestation, "":
		if req.Project != "" {
			return nil, usagef("a project applies to a manifest only")
		}
		a, _, err := checkGuix(ctx, outDir, want{version: req.Version, commit: strings.ToLower(req.Commit)})
		if err != nil {
			return nil, err
		}
		return signAttestation(ctx, a, req.Sign, id, req.Now)
	case attest.KindManifest:
		if req.Commit != "" {
			return nil, usagef("a manifest does not name a commit; --commit applies to a Guix output directory")
		}
		body, _, err := checkManifest(ctx, outDir, req.Version, req.Project)
		if err != nil {
			return nil, err
		}
		return signManifest(ctx, body, req.Version, req.Sign, id, req.Now)
	}
	return nil, usagef("unknown document kind %q", req.Kind)
}

// signAttestation completes a (checked) attestation with the builder and
// the time, signs it and writes it under s.Dest.
func signAttestation(ctx context.Context, a *attest.Attestation, s Signing, id string, now time.Time) (*Signed, error) {
	a.BuilderID = s.BuilderID
	a.AttestedAt = now.UTC()
	body := a.Encode()
	// Sign only what every node will read back as it was meant.
	back, err := attest.DecodeAttestation(body)
	if err != nil {
		return nil, checkErr("attestation.json", RuleAttestation, err, "the attestation made from the outputs would be refused: %v", err)
	}
	if !bytes.Equal(back.Encode(), body) {
		return nil, checkErr("attestation.json", RuleAttestation, nil, "the attestation made from the outputs does not read back as written")
	}
	doc := attest.Document{Kind: attest.KindAttestation, Version: a.Version, Signer: id, Name: "attestation.json", Body: body}
	dir := filepath.Join(s.Dest, "contrib", "guix", "sigs", a.Version, id)
	return sign(ctx, doc, dir, s.Signer, now)
}

// signManifest signs the exact SHA256SUMS bytes as a guix.sigs manifest.
func signManifest(ctx context.Context, body []byte, version string, s Signing, id string, now time.Time) (*Signed, error) {
	doc := attest.Document{Kind: attest.KindManifest, Version: version, Signer: id, Name: s.Name + ".SHA256SUMS", Body: body}
	return sign(ctx, doc, filepath.Join(s.Dest, version, id), s.Signer, now)
}

func sign(ctx context.Context, doc attest.Document, dir string, signer Signer, now time.Time) (*Signed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sig, err := signer.Sign(doc.Body, now)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", doc.Name, err)
	}
	doc.Signature = sig
	if _, err := doc.Parse(); err != nil {
		return nil, fmt.Errorf("sign %s: the signed document would be refused: %w", doc.Name, err)
	}
	s := &Signed{Document: doc, Path: filepath.Join(dir, doc.Name), SigPath: filepath.Join(dir, doc.Name+".asc")}
	if err := writePair(ctx, dir, doc.Name, doc.Body, sig); err != nil {
		return nil, err
	}
	return s, nil
}

// writePair writes name and name.asc into dir so that no reader, and no
// crash, sees a half-written file: both go to synced temporary files
// first, then the signature is renamed into place and the body last. A
// body is therefore never present before its signature.
func writePair(ctx context.Context, dir, name string, body, sig []byte) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmpBody, err := writeTemp(dir, name, body)
	if err != nil {
		return err
	}
	defer removeIfFailed(&err, tmpBody)
	tmpSig, err := writeTemp(dir, name+".asc", sig)
	if err != nil {
		return err
	}
	defer removeIfFailed(&err, tmpSig)
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmpSig, filepath.Join(dir, name+".asc")); err != nil {
		return fmt.Errorf("write %s.asc: %w", name, err)
	}
	if err := os.Rename(tmpBody, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return syncDir(dir)
}

func writeTemp(dir, name string, b []byte) (string, error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return f.Name(), nil
}

func removeIfFailed(err *error, path string) {
	if *err != nil {
		os.Remove(path)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
