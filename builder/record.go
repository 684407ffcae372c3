package builder

import (
	"encoding/json"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// Status is how a build ended.
type Status string

// The statuses of a Record.
const (
	StatusOK        Status = "ok"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Record is the account of one build, for the node to store and for
// `rbnode builds --json` to print. Field names in JSON are stable; new
// fields may be added, none renamed.
type Record struct {
	Kind      string `json:"kind"` // "guix" or "pipeline"
	Pipeline  string `json:"pipeline,omitempty"`
	Repo      string `json:"repo"`
	Version   string `json:"version"`
	Tag       string `json:"tag,omitempty"` // empty when the commit was given
	Commit    string `json:"commit,omitempty"`
	BuilderID string `json:"builder_id,omitempty"`
	WorkDir   string `json:"work_dir"`
	OutDir    string `json:"out_dir,omitempty"`
	// Evidence is where a failed build's contrib/guix/.work (the
	// scripts' build trees) was kept; the node may prune it later.
	Evidence   string        `json:"evidence,omitempty"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt time.Time     `json:"finished_at"`
	Status     Status        `json:"status"`
	Stages     []StageRecord `json:"stages"`
	// Artifacts are the checked outputs: for Guix the distsrc and the
	// artifact, for a pipeline every SHA256SUMS entry.
	Artifacts []Artifact `json:"artifacts,omitempty"`
	// The signed document, when the build was signed.
	DocumentKind  attest.Kind `json:"document_kind,omitempty"`
	DocumentPath  string      `json:"document,omitempty"`
	SignaturePath string      `json:"signature,omitempty"`
	// Error is the failure's message; Check is set when the outputs broke
	// the contract.
	Error string      `json:"error,omitempty"`
	Check *CheckError `json:"check,omitempty"`
}

// MarshalJSON writes the record with its lists never null: a build that
// failed before its first stage has "stages": [].
func (r Record) MarshalJSON() ([]byte, error) {
	type plain Record
	p := plain(r)
	if p.Stages == nil {
		p.Stages = []StageRecord{}
	}
	return json.Marshal(p)
}

// EvidenceDir is the directory of WorkDir where a failed Guix build's
// contrib/guix/.work is kept.
const EvidenceDir = "evidence"

// Duration is how long the build took.
func (r *Record) Duration() time.Duration { return r.FinishedAt.Sub(r.StartedAt) }

// StageRecord is one subprocess of a build.
type StageRecord struct {
	Stage      Stage     `json:"stage"`
	Command    []string  `json:"command"`
	Dir        string    `json:"dir,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
	ExitCode   int       `json:"exit_code"` // -1: killed by a signal or never started
	Signal     string    `json:"signal,omitempty"`
	TimedOut   bool      `json:"timed_out,omitempty"`
	Cancelled  bool      `json:"cancelled,omitempty"`
	Log        string    `json:"log"`
	LastLine   string    `json:"last_line,omitempty"`
}

// Duration is how long the stage ran.
func (s StageRecord) Duration() time.Duration { return time.Duration(s.DurationMS) * time.Millisecond }

// Artifact is one checked output file.
type Artifact struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}
