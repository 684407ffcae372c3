package attest

import (
	"bytes"
	"fmt"
)

// Limits on a SHA256SUMS manifest. Bitcoin Core's largest has about 40
// lines of about 110 bytes.
const (
	MaxManifestSize    = 1 << 20
	MaxManifestEntries = 10000
)

// Manifest is a parsed SHA256SUMS file, entries in the order the signer wrote
// them. Duplicate names are kept: the verdict decides what they mean.
type Manifest struct {
	Entries []Entry
	// CRLF records that the lines ended in "\r\n", so Encode gives the
	// signed bytes back.
	CRLF bool
}

// Entry is one line: `<hex>  <name>` (text mode) or `<hex> *<name>` (binary).
type Entry struct {
	SHA256 string // lowercase hex
	Name   string
	Binary bool
}

// ParseManifest parses sha256sum output. Lines end in "\n" or "\r\n" (the
// last newline may be missing); every name must pass CheckPath.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("manifest is %d bytes, more than %d: %w", len(b), MaxManifestSize, ErrMalformed)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("manifest is empty: %w", ErrMalformed)
	}
	m := &Manifest{}
	crlf, lf := 0, 0
	for n := 1; len(b) > 0; n++ {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
			if l := len(line); l > 0 && line[l-1] == '\r' {
				line = line[:l-1]
				crlf++
			} else {
				lf++
			}
		} else {
			line, b = b, nil
		}
		if len(m.Entries) == MaxManifestEntries {
			return nil, fmt.Errorf("manifest has more than %d entries: %w", MaxManifestEntries, ErrMalformed)
		}
		e, err := parseEntry(line)
		if err != nil {
			return nil, fmt.Errorf("manifest line %d: %w: %w", n, err, ErrMalformed)
		}
		m.Entries = append(m.Entries, e)
	}
	if crlf > 0 && lf > 0 {
		return nil, fmt.Errorf("manifest mixes CRLF and LF line endings: %w", ErrMalformed)
	}
	m.CRLF = crlf > 0
	return m, nil
}

func parseEntry(line []byte) (Entry, error) {
	if len(line) < 64+2+1 {
		return Entry{}, fmt.Errorf("want `<64 hex digits>  <name>`, got %d bytes", len(line))
	}
	h, err := hexField("sha256", string(line[:64]), 64)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{SHA256: h}
	switch string(line[64:66]) {
	case "  ":
	case " *":
		e.Binary = true
	default:
		return Entry{}, fmt.Errorf("want two spaces or \" *\" after the hash, got %q", line[64:66])
	}
	e.Name = string(line[66:])
	if err := CheckPath("artifact name", e.Name); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// Encode writes the manifest back in sha256sum's format. For any input
// ParseManifest accepted with a final newline and lowercase hashes (as
// sha256sum writes them), Encode returns the same bytes.
func (m *Manifest) Encode() []byte {
	var b bytes.Buffer
	for _, e := range m.Entries {
		b.WriteString(e.SHA256)
		if e.Binary {
			b.WriteString(" *")
		} else {
			b.WriteString("  ")
		}
		b.WriteString(e.Name)
		if m.CRLF {
			b.WriteByte('\r')
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}
