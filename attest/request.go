package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The kinds of the request loop: a release manager asks builders to build
// a commit before any tag exists, and a builder whose build fails says so.
const (
	// KindRequest is a signed build request (request.json).
	KindRequest Kind = "request"
	// KindBuildFailure is a builder's signed account of a failed build
	// (build-failure.json).
	KindBuildFailure Kind = "build-failure"
)

// File names of the two documents, and their schemas.
const (
	RequestName   = "request.json"
	FailureName   = "build-failure.json"
	RequestSchema = "rbnode-build-request/v1"
	FailureSchema = "rbnode-build-failure/v1"
)

// Bounds of the two documents: what a stranger can make a node store.
const (
	// MaxRequestSize caps a request.json or build-failure.json.
	MaxRequestSize = 16 << 10
	// MaxNote caps a request's note, in bytes.
	MaxNote = 1024
	// MaxLogLines and MaxLogLine cap a failure's log tail.
	MaxLogLines = 20
	MaxLogLine  = 256
	// MaxFailureError caps a failure's error message, in bytes.
	MaxFailureError = 1024
)

// requestTimeLayout is how both documents write their times.
const requestTimeLayout = "2006-01-02T15:04:05Z"

// BuildRequest asks builders to build GitCommit as Version of Project. Who
// asks is the key that signs it; Requester is a display name only.
type BuildRequest struct {
	Project     string
	Version     string
	GitCommit   string // 40 lowercase hex
	Requester   string
	RequestedAt time.Time // whole seconds, UTC
	Note        string
}

// BuildFailure is a builder's signed statement that it could not build a
// request: where it stopped, how, and the last lines of its log.
type BuildFailure struct {
	Project   string
	Version   string
	GitCommit string // the requested commit
	Request   ID     // the request answered
	BuilderID string
	Stage     string // the pipeline stage that failed ("source" for git)
	ExitCode  int    // -1: killed, timed out or never started
	Error     string
	LogTail   []string
	FailedAt  time.Time
}

// The wire forms list fields in alphabetical order: encoding/json writes
// them in field order, so Encode is canonical JSON (sorted keys, no
// white space, one final newline) and a decoder can demand exactly it.
type requestWire struct {
	GitCommit   string `json:"git_commit"`
	Note        string `json:"note"`
	Project     string `json:"project"`
	RequestedAt string `json:"requested_at"`
	Requester   string `json:"requester"`
	Schema      string `json:"schema"`
	Version     string `json:"version"`
}

type failureWire struct {
	BuilderID string   `json:"builder_id"`
	Error     string   `json:"error"`
	ExitCode  int      `json:"exit_code"`
	FailedAt  string   `json:"failed_at"`
	GitCommit string   `json:"git_commit"`
	LogTail   []string `json:"log_tail"`
	Project   string   `json:"project"`
	Request   string   `json:"request"`
	Schema    string   `json:"schema"`
	Stage     string   `json:"stage"`
	Version   string   `json:"version"`
}

var (
	requestKeys = jsonKeys(requestWire{})
	failureKeys = jsonKeys(failureWire{})
)

// Encode writes the request as canonical JSON. It does not check the
// request: DecodeRequest of the bytes does.
func (r *BuildRequest) Encode() []byte {
	return canonical(requestWire{
		GitCommit: r.GitCommit, Note: r.Note, Project: r.Project,
		RequestedAt: r.RequestedAt.UTC().Format(requestTimeLayout), Requester: r.Requester,
		Schema: RequestSchema, Version: r.Version,
	})
}

// Encode writes the failure as canonical JSON.
func (f *BuildFailure) Encode() []byte {
	tail := f.LogTail
	if tail == nil {
		tail = []string{}
	}
	return canonical(failureWire{
		BuilderID: f.BuilderID, Error: f.Error, ExitCode: f.ExitCode,
		FailedAt: f.FailedAt.UTC().Format(requestTimeLayout), GitCommit: f.GitCommit, LogTail: tail,
		Project: f.Project, Request: f.Request.String(), Schema: FailureSchema, Stage: f.Stage, Version: f.Version,
	})
}

func canonical(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // strings and ints only
	}
	return b.Bytes()
}

// decodeCanonical reads b into w strictly (no unknown, duplicate or
// missing field) and demands that b be exactly its canonical encoding, so
// one statement has one byte form and one document id.
func decodeCanonical(what string, b []byte, known map[string]string, w any) error {
	if len(b) > MaxRequestSize {
		return fmt.Errorf("%s is %d bytes, more than %d: %w", what, len(b), MaxRequestSize, ErrMalformed)
	}
	if !utf8.Valid(b) {
		return fmt.Errorf("%s is not UTF-8: %w", what, ErrMalformed)
	}
	if err := checkJSONObject(b, known); err != nil {
		return fmt.Errorf("%s: %w: %w", what, err, ErrMalformed)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return fmt.Errorf("%s: %s: %w", what, jsonErr(err), ErrMalformed)
	}
	for _, k := range sortedKeys(known) {
		if _, ok := fields[known[k]]; !ok {
			return fmt.Errorf("%s: required field %q is missing: %w", what, known[k], ErrMalformed)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(w); err != nil {
		return fmt.Errorf("%s: %s: %w", what, jsonErr(err), ErrMalformed)
	}
	if !bytes.Equal(canonical(w), b) {
		return fmt.Errorf("%s is not in canonical form (sorted keys, no spaces, one final newline): %w", what, ErrMalformed)
	}
	return nil
}

// DecodeRequest parses and checks a request.json exactly as signed.
func DecodeRequest(b []byte) (*BuildRequest, error) {
	var w requestWire
	if err := decodeCanonical("request", b, requestKeys, &w); err != nil {
		return nil, err
	}
	bad := func(err error) (*BuildRequest, error) {
		return nil, fmt.Errorf("request: %w: %w", err, ErrMalformed)
	}
	if w.Schema != RequestSchema {
		return bad(fmt.Errorf("schema is %q, want %q", w.Schema, RequestSchema))
	}
	if err := checkNames(w.Project, w.Version); err != nil {
		return bad(err)
	}
	if !isLowerHex(w.GitCommit, 40) {
		return bad(fmt.Errorf("git_commit must be 40 lowercase hex digits"))
	}
	if err := checkDisplayName("requester", w.Requester); err != nil {
		return bad(err)
	}
	if err := checkText("note", w.Note, MaxNote); err != nil {
		return bad(err)
	}
	at, err := parseRequestTime("requested_at", w.RequestedAt)
	if err != nil {
		return bad(err)
	}
	return &BuildRequest{Project: w.Project, Version: w.Version, GitCommit: w.GitCommit, Requester: w.Requester, RequestedAt: at, Note: w.Note}, nil
}

// DecodeFailure parses and checks a build-failure.json exactly as signed.
func DecodeFailure(b []byte) (*BuildFailure, error) {
	var w failureWire
	if err := decodeCanonical("build failure", b, failureKeys, &w); err != nil {
		return nil, err
	}
	bad := func(err error) (*BuildFailure, error) {
		return nil, fmt.Errorf("build failure: %w: %w", err, ErrMalformed)
	}
	if w.Schema != FailureSchema {
		return bad(fmt.Errorf("schema is %q, want %q", w.Schema, FailureSchema))
	}
	if err := checkNames(w.Project, w.Version); err != nil {
		return bad(err)
	}
	if !isLowerHex(w.GitCommit, 40) {
		return bad(fmt.Errorf("git_commit must be 40 lowercase hex digits"))
	}
	if !isLowerHex(w.Request, 64) {
		return bad(fmt.Errorf("request must be a document id, 64 lowercase hex digits"))
	}
	req, _ := ParseID(w.Request)
	if err := checkDisplayName("builder_id", w.BuilderID); err != nil {
		return bad(err)
	}
	if err := CheckName("stage", w.Stage); err != nil {
		return bad(err)
	}
	if w.ExitCode < -1 || w.ExitCode > 255 {
		return bad(fmt.Errorf("exit_code %d is not -1 to 255", w.ExitCode))
	}
	if err := checkText("error", w.Error, MaxFailureError); err != nil {
		return bad(err)
	}
	if w.LogTail == nil {
		return bad(fmt.Errorf("log_tail must be a list"))
	}
	if len(w.LogTail) > MaxLogLines {
		return bad(fmt.Errorf("log_tail has %d lines, more than %d", len(w.LogTail), MaxLogLines))
	}
	for i, l := range w.LogTail {
		if err := checkText(fmt.Sprintf("log_tail[%d]", i), l, MaxLogLine); err != nil {
			return bad(err)
		}
	}
	at, err := parseRequestTime("failed_at", w.FailedAt)
	if err != nil {
		return bad(err)
	}
	return &BuildFailure{
		Project: w.Project, Version: w.Version, GitCommit: w.GitCommit, Request: req, BuilderID: w.BuilderID,
		Stage: w.Stage, ExitCode: w.ExitCode, Error: w.Error, LogTail: w.LogTail, FailedAt: at,
	}, nil
}

// LogTail makes a failure's log tail from the last lines of a log: at
// most MaxLogLines lines, each cut to MaxLogLine bytes, control characters
// shown as U+FFFD, so that any log gives a failure DecodeFailure accepts.
func LogTail(lines []string) []string {
	if len(lines) > MaxLogLines {
		lines = lines[len(lines)-MaxLogLines:]
	}
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, CleanText(l, MaxLogLine))
	}
	return out
}

// CleanText returns s as valid UTF-8 without control characters, cut to at
// most max bytes on a rune boundary: free text fit for a signed document.
func CleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
	for len(s) > max {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

func checkNames(project, version string) error {
	if err := CheckName("project", project); err != nil {
		return err
	}
	return CheckName("version", version)
}

func checkDisplayName(what, s string) error {
	if len(s) > MaxNameLen {
		return fmt.Errorf("%s is longer than %d bytes", what, MaxNameLen)
	}
	_, err := SanitizeBuilderID(s)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func checkText(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s is longer than %d bytes", what, max)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("%s holds a control character", what)
	}
	return nil
}

func parseRequestTime(what, s string) (time.Time, error) {
	t, err := time.Parse(requestTimeLayout, s)
	if err != nil || t.Format(requestTimeLayout) != s {
		return time.Time{}, fmt.Errorf("%s %q is not YYYY-MM-DDTHH:MM:SSZ", what, s)
	}
	return t, nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// parseRequest binds a request to its context: its version, and the
// directory of its requester's sanitized name.
func (d *Document) parseRequest(p *Parsed) error {
	r, err := DecodeRequest(d.Body)
	if err != nil {
		return err
	}
	if err := d.bind(r.Version, r.Requester, RequestName); err != nil {
		return err
	}
	p.Statement = Statement{Project: r.Project, Version: r.Version, GitCommit: r.GitCommit, Request: r}
	return nil
}

func (d *Document) parseFailure(p *Parsed) error {
	f, err := DecodeFailure(d.Body)
	if err != nil {
		return err
	}
	if err := d.bind(f.Version, f.BuilderID, FailureName); err != nil {
		return err
	}
	p.Statement = Statement{Project: f.Project, Version: f.Version, GitCommit: f.GitCommit, BuilderID: f.BuilderID, Failure: f}
	return nil
}

// bind checks (or fills) the unsigned context of a request or failure.
func (d *Document) bind(version, name, file string) error {
	if d.Version != "" && d.Version != version {
		return fmt.Errorf("found under version %q but signs version %q: %w", d.Version, version, ErrContext)
	}
	dir, _ := SanitizeBuilderID(name)
	if d.Signer != "" && d.Signer != dir {
		return fmt.Errorf("found in directory %q but signed by %q (directory %q): %w", d.Signer, name, dir, ErrContext)
	}
	if d.Name != "" && d.Name != file {
		return fmt.Errorf("a %s document is named %s, not %q: %w", d.Kind, file, d.Name, ErrContext)
	}
	d.Version, d.Signer = version, dir
	if d.Name == "" {
		d.Name = file
	}
	return nil
}
