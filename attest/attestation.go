package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// AttestationSchema is the only schema string DecodeAttestation accepts.
const AttestationSchema = "cuprate-guix-attestation/v1"

// MaxAttestationSize caps an attestation.json. The seed's files are about
// 1 KiB; 64 KiB leaves room for long toolchain strings and nothing else.
const MaxAttestationSize = 64 << 10

// attestedAtLayout is the seed's "YYYY-MM-DDTHH:MM:SSZ".
const attestedAtLayout = "2006-01-02T15:04:05Z"

// ErrMalformed is wrapped by every decoding error of a signed document.
var ErrMalformed = errors.New("malformed document")

// Attestation is one builder's signed statement about one artifact, in the
// seed's cuprate-guix-attestation/v1 format. Optional fields the seed writes
// as null are nil pointers.
type Attestation struct {
	Schema            string
	Package           string
	Version           string
	GitCommit         string // 40 lowercase hex
	SourceDateEpoch   int64
	GuixSystem        string
	RustTarget        string
	Artifact          File
	Distsrc           File
	GuixChannelCommit *string
	RustcVersion      *string
	CargoVersion      *string
	BuilderID         string
	AttestedAt        time.Time
}

// File names one output of a build and its sha256 (lowercase hex). Size is
// -1 when the format does not carry it (the distsrc).
type File struct {
	Filename string
	SHA256   string
	Size     int64
}

// wire mirrors the JSON; pointers tell a missing field from a zero one.
// Numbers and nullable strings are raw: encoding/json sets a pointer to nil
// for a JSON null (a null field would look missing) and decodes a quoted
// "123" into a json.Number (a string would pass for a number). A RawMessage
// receives the value's exact text and stays empty when the field is absent.
type attestationWire struct {
	Schema            *string         `json:"schema"`
	Package           *string         `json:"package"`
	Version           *string         `json:"version"`
	GitCommit         *string         `json:"git_commit"`
	SourceDateEpoch   json.RawMessage `json:"source_date_epoch"`
	GuixSystem        *string         `json:"guix_system"`
	RustTarget        *string         `json:"rust_target"`
	Artifact          *fileWire       `json:"artifact"`
	Distsrc           *fileWire       `json:"distsrc"`
	GuixChannelCommit json.RawMessage `json:"guix_channel_commit"`
	RustcVersion      json.RawMessage `json:"rustc_version"`
	CargoVersion      json.RawMessage `json:"cargo_version"`
	BuilderID         *string         `json:"builder_id"`
	AttestedAt        *string         `json:"attested_at"`
}

type fileWire struct {
	Filename *string         `json:"filename"`
	SHA256   *string         `json:"sha256"`
	Size     json.RawMessage `json:"size"`
}

// DecodeAttestation parses and checks an attestation.json exactly as signed.
// Unknown extra fields are tolerated; duplicate keys, missing or mistyped
// required fields, unsafe names and malformed hashes are errors.
func DecodeAttestation(b []byte) (*Attestation, error) {
	if len(b) > MaxAttestationSize {
		return nil, fmt.Errorf("attestation is %d bytes, more than %d: %w", len(b), MaxAttestationSize, ErrMalformed)
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("attestation is not UTF-8: %w", ErrMalformed)
	}
	if err := checkJSONObject(b, attestationKeys); err != nil {
		return nil, fmt.Errorf("attestation: %w: %w", err, ErrMalformed)
	}
	var w attestationWire
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("attestation: %s: %w", jsonErr(err), ErrMalformed)
	}
	a, err := w.check()
	if err != nil {
		return nil, fmt.Errorf("attestation: %w: %w", err, ErrMalformed)
	}
	return a, nil
}

func (w *attestationWire) check() (*Attestation, error) {
	var a Attestation
	var err error
	req := func(name string, p *string) string {
		if err == nil && p == nil {
			err = fmt.Errorf("required field %q is missing", name)
		}
		if p == nil {
			return ""
		}
		return *p
	}
	a.Schema = req("schema", w.Schema)
	a.Package = req("package", w.Package)
	a.Version = req("version", w.Version)
	a.GitCommit = req("git_commit", w.GitCommit)
	a.GuixSystem = req("guix_system", w.GuixSystem)
	a.RustTarget = req("rust_target", w.RustTarget)
	a.BuilderID = req("builder_id", w.BuilderID)
	at := req("attested_at", w.AttestedAt)
	if err != nil {
		return nil, err
	}
	if a.Schema != AttestationSchema {
		return nil, fmt.Errorf("schema is %q, want %q", a.Schema, AttestationSchema)
	}
	for _, n := range []struct{ what, v string }{
		{"package", a.Package}, {"version", a.Version},
		{"guix_system", a.GuixSystem}, {"rust_target", a.RustTarget},
	} {
		if err := CheckName(n.what, n.v); err != nil {
			return nil, err
		}
	}
	if a.GitCommit, err = hexField("git_commit", a.GitCommit, 40); err != nil {
		return nil, err
	}
	if a.SourceDateEpoch, err = intField("source_date_epoch", w.SourceDateEpoch); err != nil {
		return nil, err
	}
	if w.Artifact == nil {
		return nil, errors.New(`required field "artifact" is missing`)
	}
	if a.Artifact, err = w.Artifact.check("artifact", true); err != nil {
		return nil, err
	}
	if w.Distsrc == nil {
		return nil, errors.New(`required field "distsrc" is missing`)
	}
	if a.Distsrc, err = w.Distsrc.check("distsrc", false); err != nil {
		return nil, err
	}
	if a.GuixChannelCommit, err = nullableString("guix_channel_commit", w.GuixChannelCommit); err != nil {
		return nil, err
	}
	if a.GuixChannelCommit != nil {
		c, err := hexField("guix_channel_commit", *a.GuixChannelCommit, 40)
		if err != nil {
			return nil, err
		}
		a.GuixChannelCommit = &c
	}
	if a.RustcVersion, err = nullableString("rustc_version", w.RustcVersion); err != nil {
		return nil, err
	}
	if a.CargoVersion, err = nullableString("cargo_version", w.CargoVersion); err != nil {
		return nil, err
	}
	if _, err := SanitizeBuilderID(a.BuilderID); err != nil {
		return nil, err
	}
	if len(a.BuilderID) > MaxNameLen {
		return nil, fmt.Errorf("builder_id is longer than %d bytes", MaxNameLen)
	}
	t, perr := time.Parse(attestedAtLayout, at)
	if perr != nil || t.Format(attestedAtLayout) != at {
		return nil, fmt.Errorf("attested_at %q is not YYYY-MM-DDTHH:MM:SSZ", at)
	}
	a.AttestedAt = t
	return &a, nil
}

func (f *fileWire) check(what string, sized bool) (File, error) {
	var out File
	if f.Filename == nil {
		return out, fmt.Errorf("required field %q is missing", what+".filename")
	}
	if f.SHA256 == nil {
		return out, fmt.Errorf("required field %q is missing", what+".sha256")
	}
	if err := CheckName(what+".filename", *f.Filename); err != nil {
		return out, err
	}
	h, err := hexField(what+".sha256", *f.SHA256, 64)
	if err != nil {
		return out, err
	}
	out = File{Filename: *f.Filename, SHA256: h, Size: -1}
	if sized {
		if out.Size, err = intField(what+".size", f.Size); err != nil {
			return out, err
		}
	}
	return out, nil
}

// hexField checks an n-digit hex string and returns it in lowercase.
func hexField(what, s string, n int) (string, error) {
	if len(s) != n {
		return "", fmt.Errorf("%s must be %d hex digits, got %d characters", what, n, len(s))
	}
	out := []byte(s)
	for i, c := range out {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			out[i] = c + ('a' - 'A')
		default:
			return "", fmt.Errorf("%s has a non-hex character at %d", what, i)
		}
	}
	return string(out), nil
}

func intField(what string, n json.RawMessage) (int64, error) {
	if len(n) == 0 {
		return 0, fmt.Errorf("required field %q is missing", what)
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s must be a non-negative integer, got %.40s", what, n)
	}
	return v, nil
}

// maxFreeText caps toolchain strings, which only ever hold one line.
const maxFreeText = 1024

func nullableString(what string, raw json.RawMessage) (*string, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("required field %q is missing (it may be null)", what)
	}
	if string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s must be a string or null", what)
	}
	if len(s) > maxFreeText {
		return nil, fmt.Errorf("%s is longer than %d bytes", what, maxFreeText)
	}
	return &s, nil
}

// checkJSONObject makes sure b is one JSON object with no duplicate keys at
// any depth and nothing after it. Two parsers that resolve duplicates
// differently would read two different statements from one signature.
// encoding/json matches keys to fields without regard to case, so keys that
// differ only in case are duplicates too, and a key that is one of known
// (folded name -> name) spelled in another case is refused: Python would
// not see it at all.
func checkJSONObject(b []byte, known map[string]string) error {
	if !json.Valid(b) {
		// The slow path, for the error message only.
		dec := json.NewDecoder(bytes.NewReader(b))
		var v any
		if err := dec.Decode(&v); err != nil {
			return errors.New(jsonErr(err))
		}
		return errors.New("data after the JSON object")
	}
	sc := jsonScanner{b: b, known: known}
	sc.space()
	if sc.i >= len(b) || b[sc.i] != '{' {
		return errors.New("not a JSON object")
	}
	sc.i++
	return sc.object(1)
}

const maxJSONDepth = 16

// jsonScanner walks JSON that json.Valid accepted, looking only at the
// keys of objects: a fraction of the cost of encoding/json's tokenizer.
type jsonScanner struct {
	b     []byte
	i     int
	known map[string]string
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// str reads the string starting at s.i (a quote) and returns it decoded.
func (s *jsonScanner) str() string {
	start := s.i
	s.i++
	escaped := false
	for s.b[s.i] != '"' {
		if s.b[s.i] == '\\' {
			escaped = true
			s.i++
		}
		s.i++
	}
	s.i++
	if !escaped {
		return string(s.b[start+1 : s.i-1])
	}
	var out string
	_ = json.Unmarshal(s.b[start:s.i], &out) // valid JSON: cannot fail
	return out
}

// object checks the members of an object whose '{' was just read.
func (s *jsonScanner) object(depth int) error {
	if depth > maxJSONDepth {
		return errors.New("JSON nested too deeply")
	}
	seen := map[string]string{} // folded key -> key
	for {
		s.space()
		if s.b[s.i] == '}' {
			s.i++
			return nil
		}
		if s.b[s.i] == ',' {
			s.i++
			s.space()
		}
		key := s.str()
		f := foldKey(key)
		if prev, ok := seen[f]; ok {
			if prev == key {
				return fmt.Errorf("duplicate key %q", key)
			}
			return fmt.Errorf("duplicate key: %q and %q differ only in case", prev, key)
		}
		if name, ok := s.known[f]; ok && name != key {
			return fmt.Errorf("key %q must be spelled %q", key, name)
		}
		seen[f] = key
		s.space()
		s.i++ // ':'
		if err := s.value(depth); err != nil {
			return err
		}
	}
}

func (s *jsonScanner) value(depth int) error {
	s.space()
	switch s.b[s.i] {
	case '{':
		s.i++
		return s.object(depth + 1)
	case '[':
		s.i++
		if depth+1 > maxJSONDepth {
			return errors.New("JSON nested too deeply")
		}
		for {
			s.space()
			switch s.b[s.i] {
			case ']':
				s.i++
				return nil
			case ',':
				s.i++
			}
			if err := s.value(depth + 1); err != nil {
				return err
			}
		}
	case '"':
		s.str()
	default: // number, true, false, null
		for s.i < len(s.b) && !strings.ContainsRune(",]} \t\n\r", rune(s.b[s.i])) {
			s.i++
		}
	}
	return nil
}

// foldKey folds a key as encoding/json does when it matches keys to struct
// fields: ASCII case and Unicode simple folding ("ſ" matches "s").
func foldKey(s string) string {
	return strings.Map(func(r rune) rune {
		for {
			f := unicode.SimpleFold(r)
			if f <= r {
				return f
			}
			r = f
		}
	}, s)
}

// jsonKeys maps the folded JSON names of the fields of the given structs to
// the names.
func jsonKeys(structs ...any) map[string]string {
	m := map[string]string{}
	for _, s := range structs {
		t := reflect.TypeOf(s)
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			m[foldKey(name)] = name
		}
	}
	return m
}

var attestationKeys = jsonKeys(attestationWire{}, fileWire{})

func jsonErr(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q has the wrong type (%s, want %s)", te.Field, te.Value, te.Type)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "truncated JSON"
	}
	return err.Error()
}

// Encode writes a in the bytes guix-attest produces: Python's
// json.dumps(sort_keys=True, indent=2) (ASCII only, ", " and ": "
// separators) and a trailing newline. The builder signs exactly these bytes.
func (a *Attestation) Encode() []byte {
	var b bytes.Buffer
	b.WriteString("{\n")
	field := func(indent, key string, last bool, value func()) {
		b.WriteString(indent)
		pyString(&b, key)
		b.WriteString(": ")
		value()
		if !last {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	str := func(s string) func() { return func() { pyString(&b, s) } }
	num := func(n int64) func() { return func() { b.WriteString(strconv.FormatInt(n, 10)) } }
	opt := func(s *string) func() {
		if s == nil {
			return func() { b.WriteString("null") }
		}
		return str(*s)
	}
	file := func(f File, sized bool) func() {
		return func() {
			b.WriteString("{\n")
			field("    ", "filename", false, str(f.Filename))
			field("    ", "sha256", !sized, str(f.SHA256))
			if sized {
				field("    ", "size", true, num(f.Size))
			}
			b.WriteString("  }")
		}
	}
	// Keys in sorted order, as sort_keys=True writes them.
	field("  ", "artifact", false, file(a.Artifact, true))
	field("  ", "attested_at", false, str(a.AttestedAt.UTC().Format(attestedAtLayout)))
	field("  ", "builder_id", false, str(a.BuilderID))
	field("  ", "cargo_version", false, opt(a.CargoVersion))
	field("  ", "distsrc", false, file(a.Distsrc, false))
	field("  ", "git_commit", false, str(a.GitCommit))
	field("  ", "guix_channel_commit", false, opt(a.GuixChannelCommit))
	field("  ", "guix_system", false, str(a.GuixSystem))
	field("  ", "package", false, str(a.Package))
	field("  ", "rust_target", false, str(a.RustTarget))
	field("  ", "rustc_version", false, opt(a.RustcVersion))
	field("  ", "schema", false, str(a.Schema))
	field("  ", "source_date_epoch", false, num(a.SourceDateEpoch))
	field("  ", "version", true, str(a.Version))
	b.WriteString("}\n")
	return b.Bytes()
}

// pyString writes s as Python's json module does with ensure_ascii=True.
func pyString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	u := func(r rune) {
		b.WriteString(`\u`)
		b.WriteByte(hex[r>>12&0xf])
		b.WriteByte(hex[r>>8&0xf])
		b.WriteByte(hex[r>>4&0xf])
		b.WriteByte(hex[r&0xf])
	}
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || r >= 0x7f && r < 0x10000:
			u(r)
		case r >= 0x10000:
			r -= 0x10000
			u(0xd800 + r>>10)
			u(0xdc00 + r&0x3ff)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}
