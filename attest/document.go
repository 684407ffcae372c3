package attest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Kind says which format a document's signed bytes are in.
type Kind string

// The document kinds rbnode reads.
const (
	// KindAttestation is the seed's attestation.json.
	KindAttestation Kind = "attestation"
	// KindManifest is a guix.sigs SHA256SUMS file.
	KindManifest Kind = "manifest"
)

// ErrContext is wrapped when a document's unsigned context (where it was
// found) contradicts or cannot be bound to what it signs.
var ErrContext = errors.New("context mismatch")

// Document is one signed statement exactly as its signer made it, and the
// context the signature does not cover.
type Document struct {
	Kind Kind
	// Version is the release the document is about. A manifest's version
	// exists only in its path, so it must be given; an attestation's is
	// read from the signed body and, if given, must agree.
	Version string
	// Signer is the directory the document was found in (a guix.sigs
	// signer or the sanitized builder id): a display name, never identity.
	Signer string
	// Name is the file name: "noncodesigned.SHA256SUMS", "attestation.json".
	Name      string
	Body      []byte // the exact signed bytes
	Signature []byte // the detached signature as received
}

// ID names a document by its content: the kind, the signed bytes, the
// binary signature packet and, for a manifest, the version it is bound to
// (an attestation's version is inside its signed bytes). Armour, file and
// directory names are not part of it, so one document found twice is
// stored once.
type ID [32]byte

// String returns the id in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 12 hex digits, for display.
func (id ID) Short() string { return id.String()[:12] }

// ParseID reads a 64-hex document id.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("document id %q is not 64 hex digits", s)
	}
	copy(id[:], b)
	return id, nil
}

// Statement is what a document claims, in the terms the verdict counts.
type Statement struct {
	Project   string
	Version   string
	GitCommit string // empty for manifests, which do not name one
	BuilderID string // the attestation's builder_id; empty for manifests
	Artifacts []Entry
	// Env describes the build environment an attestation reports
	// (toolchain, Guix commit, source archive), to explain divergence.
	Env map[string]string
	// Request and Failure are set for the documents of the request loop
	// (KindRequest, KindBuildFailure), which name no artifacts.
	Request *BuildRequest
	Failure *BuildFailure
}

// Parsed is a document checked for form and bound to its context. Its
// signature has not been verified yet.
type Parsed struct {
	Doc       *Document
	ID        ID
	Sig       *Signature
	Statement Statement
}

// Parse decodes the document's body and signature and checks the context:
// names are path-safe, an attestation's version and directory agree with
// what it signs, and a manifest names its version in every artifact.
func (d *Document) Parse() (*Parsed, error) {
	sig, err := ParseSignature(d.Signature)
	if err != nil {
		return nil, err
	}
	p := &Parsed{Doc: d, Sig: sig}
	if err := d.parseBody(p); err != nil {
		return nil, err
	}
	p.ID = docID(d.Kind, d.idVersion(), d.Body, sig.Bytes())
	return p, nil
}

// ID computes the document's id without decoding its body: cheap enough
// for every message a peer sends. It equals Parse's ID for any document
// Parse accepts.
func (d *Document) ID() (ID, error) {
	sig, err := ParseSignature(d.Signature)
	if err != nil {
		return ID{}, err
	}
	return docID(d.Kind, d.idVersion(), d.Body, sig.Bytes()), nil
}

// idVersion is the version part of the id: a manifest's (from its
// context), none for an attestation (it signs its own).
func (d *Document) idVersion() string {
	if d.Kind == KindManifest {
		return d.Version
	}
	return ""
}

// Statement decodes what the document claims, with the same checks as
// Parse, but leaves the signature alone: for documents already verified
// and stored.
func (d *Document) Statement() (*Statement, error) {
	var p Parsed
	if err := d.parseBody(&p); err != nil {
		return nil, err
	}
	return &p.Statement, nil
}

func (d *Document) parseBody(p *Parsed) error {
	var err error
	switch d.Kind {
	case KindAttestation:
		err = d.parseAttestation(p)
	case KindManifest:
		err = d.parseManifest(p)
	case KindRequest:
		err = d.parseRequest(p)
	case KindBuildFailure:
		err = d.parseFailure(p)
	default:
		err = fmt.Errorf("unknown document kind %q: %w", d.Kind, ErrMalformed)
	}
	if err != nil {
		return err
	}
	if d.Name != "" {
		return CheckName("document name", d.Name)
	}
	return nil
}

func docID(kind Kind, version string, body, sig []byte) ID {
	h := sha256.New()
	var n [4]byte
	h.Write([]byte("rbnode-document-v1\x00"))
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(version))
	h.Write([]byte{0})
	binary.BigEndian.PutUint32(n[:], uint32(len(body)))
	h.Write(n[:])
	h.Write(body)
	binary.BigEndian.PutUint32(n[:], uint32(len(sig)))
	h.Write(n[:])
	h.Write(sig)
	var id ID
	h.Sum(id[:0])
	return id
}

func (d *Document) parseAttestation(p *Parsed) error {
	a, err := DecodeAttestation(d.Body)
	if err != nil {
		return err
	}
	if d.Version != "" && d.Version != a.Version {
		return fmt.Errorf("found under version %q but attests version %q: %w", d.Version, a.Version, ErrContext)
	}
	dir, _ := SanitizeBuilderID(a.BuilderID)
	if d.Signer != "" && d.Signer != dir {
		return fmt.Errorf("found in directory %q but signed by builder id %q (directory %q): %w", d.Signer, a.BuilderID, dir, ErrContext)
	}
	if d.Signer == "" {
		d.Signer = dir
	}
	if d.Version == "" {
		d.Version = a.Version
	}
	env := map[string]string{
		"guix_system":         a.GuixSystem,
		"rust_target":         a.RustTarget,
		"source_date_epoch":   strconv.FormatInt(a.SourceDateEpoch, 10),
		"distsrc_sha256":      a.Distsrc.SHA256,
		"guix_channel_commit": optString(a.GuixChannelCommit),
		"rustc_version":       optString(a.RustcVersion),
		"cargo_version":       optString(a.CargoVersion),
	}
	p.Statement = Statement{
		Project:   a.Package,
		Version:   a.Version,
		GitCommit: a.GitCommit,
		BuilderID: a.BuilderID,
		Artifacts: []Entry{
			{Name: a.Artifact.Filename, SHA256: a.Artifact.SHA256},
			{Name: a.Distsrc.Filename, SHA256: a.Distsrc.SHA256},
		},
		Env: env,
	}
	return nil
}

func optString(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}

func (d *Document) parseManifest(p *Parsed) error {
	if err := CheckName("version", d.Version); err != nil {
		return fmt.Errorf("a manifest's version comes from its directory: %w", err)
	}
	if err := CheckName("signer", d.Signer); err != nil {
		return err
	}
	m, err := ParseManifest(d.Body)
	if err != nil {
		return err
	}
	project, err := BindManifest(m, d.Version)
	if err != nil {
		return err
	}
	p.Statement = Statement{Project: project, Version: d.Version, Artifacts: m.Entries}
	return nil
}

// BindManifest ties a manifest to the version of the directory it was found
// in, which its signature does not cover. Every artifact's base name must
// be `<project>-<version>` followed by '-' or by an extension ('.' and a
// letter), with one project throughout; so a manifest signed for 24.0.1
// cannot be replayed as 24.0, nor one for 26.0rc1 as 26.0. It returns the
// project.
func BindManifest(m *Manifest, version string) (string, error) {
	project := ""
	for _, e := range m.Entries {
		p, ok := projectOf(BaseName(e.Name), version)
		if !ok {
			return "", fmt.Errorf("artifact %q does not carry version %q in its name, so the manifest cannot be bound to that version: %w", e.Name, version, ErrContext)
		}
		if project == "" {
			project = p
		} else if p != project {
			return "", fmt.Errorf("artifacts name two projects, %q and %q: %w", project, p, ErrContext)
		}
	}
	return project, nil
}

func projectOf(name, version string) (string, bool) {
	for off := 0; ; {
		i := strings.Index(name[off:], "-"+version)
		if i < 0 {
			return "", false
		}
		i += off
		rest := name[i+1+len(version):]
		if i > 0 && (strings.HasPrefix(rest, "-") ||
			len(rest) >= 2 && rest[0] == '.' && unicode.IsLetter(rune(rest[1]))) {
			return name[:i], true
		}
		off = i + 1
	}
}
