package builder

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrNoGuix is returned (wrapped) when the Cuprate Guix pipeline is asked
// for and no guix executable is on the PATH the build would run with.
// Nothing has been started when it is returned.
var ErrNoGuix = errors.New("guix is not on PATH")

// ErrUsage is wrapped by every error in a Request or AttestRequest itself
// (a missing field, an unsafe version, a work directory in use): the call
// is wrong, nothing was run.
var ErrUsage = errors.New("invalid build request")

// ErrUnknownRelease is wrapped when the release tag of a version, or an
// explicit commit, is not in the repository. The builder never fetches.
var ErrUnknownRelease = errors.New("release not found in the repository")

// ErrNoPipeline is wrapped when the commit to build has no
// contrib/guix/guix-build. Nothing has been run but git.
var ErrNoPipeline = errors.New("this release predates the pipeline")

// ErrTimeout is wrapped by a StageError when the stage ran out of its time.
var ErrTimeout = errors.New("timed out")

// StageError reports a pipeline stage (a subprocess) that did not succeed:
// it exited non-zero, was killed, timed out or was cancelled. Err is an
// *exec.ExitError, ErrTimeout, context.Canceled or a start failure.
type StageError struct {
	Stage    Stage
	ExitCode int    // -1 when killed by a signal or never started
	Log      string // the stage's log file
	LastLine string // the last line the stage wrote, for the message
	Err      error
}

func (e *StageError) Error() string {
	var what string
	switch {
	case errors.Is(e.Err, context.Canceled):
		what = "cancelled"
	case errors.Is(e.Err, ErrTimeout):
		what = e.Err.Error()
	case e.ExitCode > 0:
		what = fmt.Sprintf("exited with status %d", e.ExitCode)
	default:
		what = e.Err.Error()
	}
	msg := fmt.Sprintf("stage %s %s (log: %s)", e.Stage, what, Printable(e.Log))
	if e.LastLine != "" {
		msg += fmt.Sprintf(": %q", e.LastLine)
	}
	return msg
}

func (e *StageError) Unwrap() error { return e.Err }

// Rule names the part of the pipeline's contract an output broke.
type Rule string

// The rules of the output checks. Their strings are stable: records and JSON
// output carry them.
const (
	RuleMissing       Rule = "missing-file"       // a required file is absent
	RuleNotRegular    Rule = "not-regular-file"   // a symlink, directory or device where a file belongs
	RuleName          Rule = "unsafe-name"        // fails attest.CheckName (path safety)
	RuleMalformed     Rule = "malformed"          // a file the pipeline writes cannot be parsed
	RuleSums          Rule = "sha256sums"         // SHA256SUMS disagrees with the files or the contract
	RuleSidecar       Rule = "sidecar"            // a .SHA256SUM disagrees with its file
	RuleMetadata      Rule = "build-metadata"     // build-metadata.json disagrees with the request or the files
	RuleNativeFlags   Rule = "native-arch-flag"   // a log shows -march=native, -mcpu=native or target-cpu=native
	RuleDiagnostic    Rule = "diagnostic-file"    // a host-dependent diagnostic (ldd-*.diag.txt) is listed to be hashed
	RuleManifestBound Rule = "manifest-version"   // a manifest's artifacts do not carry <project>-<version>
	RuleAttestation   Rule = "attestation-format" // the attestation made from the outputs would not decode
)

// CheckError reports an output that breaks the pipeline's contract. When
// it is returned nothing has been signed.
type CheckError struct {
	File   string `json:"file"` // the file at fault, relative to the output directory
	Rule   Rule   `json:"rule"`
	Detail string `json:"detail"`
	Err    error  `json:"-"` // the underlying error, if any (attest.ErrBadName, ...)
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("check %s: %s: %s", Printable(e.File), e.Rule, e.Detail)
}

func (e *CheckError) Unwrap() error { return e.Err }

func checkErr(file string, rule Rule, err error, format string, args ...any) *CheckError {
	return &CheckError{File: file, Rule: rule, Detail: fmt.Sprintf(format, args...), Err: err}
}

// Hint returns a line the user can act on for err, or "" when there is
// none. The CLI prints it after the error as "hint: ...".
func Hint(err error) string {
	var se *StageError
	var ce *CheckError
	switch {
	case errors.Is(err, ErrNoGuix):
		return "install GNU Guix (https://guix.gnu.org/manual/en/html_node/Binary-Installation.html) and put guix on PATH, or build another project with --pipeline COMMAND"
	case errors.Is(err, ErrNoPipeline):
		return "build a commit that has the pipeline (--commit COMMIT), or give the build command with --pipeline COMMAND"
	case errors.Is(err, ErrUnknownRelease):
		return "fetch the release tags into the checkout (git fetch --tags) or pass --commit; rbnode never fetches"
	case errors.As(err, &se):
		if errors.Is(err, ErrTimeout) {
			return "raise the stage's timeout, or read its log: " + Printable(se.Log)
		}
		if errors.Is(err, context.Canceled) {
			return ""
		}
		return "read the stage's log: " + Printable(se.Log)
	case errors.As(err, &ce):
		return "the pipeline's outputs break its contract, so nothing was signed; inspect " + Printable(filepath.ToSlash(ce.File)) + " in the output directory"
	}
	return ""
}

// Printable returns s as it is when every character prints plainly, else
// Go-quoted, so that a file name with control characters (a newline, an
// escape sequence) cannot forge or hide a line of a message or a listing.
func Printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' }) < 0 {
		return s
	}
	return strconv.Quote(s)
}
