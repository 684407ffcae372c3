package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	ucli "github.com/urfave/cli/v2"

	"github.com/rbnode/rbnode/builder"
	"github.com/rbnode/rbnode/node"
	"github.com/rbnode/rbnode/node/store"
)

// Exit codes, documented in docs/cli.md. A number is never reused.
const (
	ExitOK           = 0 // verified: quorum reached, no trusted builder disagrees
	ExitNegative     = 1 // divergence, equivocation, a file that matches no consensus hash
	ExitUsage        = 2 // usage or configuration error
	ExitInconclusive = 3 // quorum not reached yet, or the daemon is unreachable
	ExitInternal     = 4 // internal error
)

// version is stamped at build time with -ldflags "-X ...cli.version=...".
var version = "dev"

// exitError carries an exit code chosen by a command (a verdict), with an
// optional message for stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func exitWith(code int) error { return &exitError{code: code} }

// usageError is a mistake in the call itself, with what to do about it.
type usageError struct {
	err  error
	hint string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return &usageError{err: fmt.Errorf(format, a...)} }

func init() { ucli.HelpPrinter = wrapHelp }

// Main runs rbnode with args (args[0] is the program name) and returns the
// process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// RBNODE_CPUPROFILE=FILE writes a CPU profile of the command: for
	// `make pgo` (cmd/rbnode/default.pgo) and for reports of slowness.
	if p := os.Getenv("RBNODE_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			defer f.Close() // after StopCPUProfile has written the profile
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	ctx, stop := signalContext(stderr)
	defer stop()
	// Results are written in one go: a status matrix is hundreds of
	// small writes, each a system call when unbuffered.
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	app := newApp(stdin, out, stderr)
	args = interspersed(app, args)
	err := checkCommandPath(app, args)
	if err == nil {
		err = app.RunContext(ctx, args)
	}
	code := report(err, stderr)
	if err != nil && code != ExitOK && wantsJSON(args) {
		printJSONError(out, err)
	}
	if ferr := out.Flush(); ferr != nil && err == nil {
		fmt.Fprintf(stderr, "rbnode: error: write output: %v\n", ferr)
		return ExitInternal
	}
	return code
}

// wantsJSON reports whether the command line asks for --json output.
func wantsJSON(args []string) bool {
	for _, a := range args[1:] {
		switch a {
		case "--":
			return false
		case "--json", "-json", "--json=true", "-json=true":
			return true
		}
	}
	return false
}

// jsonError is what a command run with --json prints on stdout when it
// fails before it could print its result (docs/json.md).
type jsonError struct {
	Error string `json:"error"`
	Kind  string `json:"kind"`
	Hint  string `json:"hint,omitempty"`
}

// printJSONError writes err as a jsonError, unless the command chose its
// exit code itself: then it has printed its own result (a verdict, a
// report).
func printJSONError(w io.Writer, err error) {
	var ee *exitError
	if errors.As(err, &ee) {
		return
	}
	_, kind, hint := classifyKind(err)
	_ = printJSON(w, jsonError{Error: oneMessage(strings.TrimSpace(err.Error())), Kind: kind, Hint: hint})
}

// signalContext is cancelled by the first SIGINT or SIGTERM; a second one
// exits at once.
func signalContext(stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
			fmt.Fprintln(stderr, "rbnode: stopping (interrupt again to exit now)")
			cancel()
		case <-done:
			return
		}
		select {
		case <-ch:
			fmt.Fprintln(stderr, "rbnode: exiting now")
			os.Exit(130)
		case <-done:
		}
	}()
	return ctx, func() { signal.Stop(ch); close(done); cancel() }
}

// report prints err (if any) with a hint and returns the exit code.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintf(stderr, "rbnode: %s\n", ee.msg)
		}
		return ee.code
	}
	code, hint := classify(err)
	fmt.Fprintf(stderr, "rbnode: error: %s\n", oneMessage(strings.TrimSpace(err.Error())))
	if hint != "" {
		fmt.Fprintf(stderr, "hint: %s\n", hint)
	}
	return code
}

func classify(err error) (int, string) {
	code, _, hint := classifyKind(err)
	return code, hint
}

// classifyKind maps an error to its exit code, the "kind" of docs/json.md's
// error object and a hint.
func classifyKind(err error) (code int, kind, hint string) {
	var ue *usageError
	var ce *builder.CheckError
	var se *builder.StageError
	switch {
	case errors.Is(err, builder.ErrNoGuix):
		return ExitUsage, "no_guix", builder.Hint(err)
	case errors.Is(err, builder.ErrUsage):
		return ExitUsage, "usage", builder.Hint(err)
	case errors.Is(err, builder.ErrUnknownRelease):
		return ExitUsage, "unknown_release", builder.Hint(err)
	case errors.Is(err, builder.ErrNoPipeline):
		return ExitUsage, "no_pipeline", builder.Hint(err)
	case errors.As(err, &ce):
		return ExitNegative, "check_failed", builder.Hint(err)
	case errors.As(err, &se) && errors.Is(err, context.Canceled):
		return ExitInconclusive, "interrupted", "the build was interrupted; nothing was signed"
	case errors.As(err, &se):
		return ExitInternal, "stage_failed", builder.Hint(err)
	case errors.Is(err, node.ErrNoBuilderKey):
		return ExitUsage, "no_builder_key", "create one with `rbnode key generate --name NAME --email EMAIL`, or import yours with `rbnode key import FILE` (from gpg --export-secret-keys --armor)"
	case errors.Is(err, store.ErrLocked):
		return ExitInconclusive, "store_locked", "another rbnode process has this home open; try again when it has finished"
	case errors.Is(err, node.ErrPermission), errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return ExitUsage, "permission", "check the permissions of the home and of the paths given (the daemon's API takes changes only from the user it runs as)"
	case errors.Is(err, node.ErrDiskFull):
		return ExitUsage, "disk_full", "free space on the disk that holds the home (rbnode keeps disk_reserve free; docs/config.md), or lower disk_reserve in config.toml"
	case errors.Is(err, node.ErrNoDaemon):
		return ExitInconclusive, "no_daemon", "start one with `rbnode daemon`"
	case errors.Is(err, node.ErrUnknownRelease):
		return ExitInconclusive, "unknown_release", "import or sync documents first (rbnode import PATH); `rbnode status` lists the releases this node knows"
	case errors.Is(err, context.Canceled):
		return ExitInconclusive, "interrupted", ""
	case errors.As(err, &ue):
		return ExitUsage, "usage", ue.hint
	case errors.Is(err, node.ErrUsage), isFlagError(err):
		return ExitUsage, "usage", ""
	}
	return ExitInternal, "internal", "this is a bug or an environment problem; run again with --log-level debug and report what it says"
}

// oneMessage drops a message's repetition of itself: an error wrapped
// with its own text ("x: x") is said once.
func oneMessage(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' && i+2 < len(s) && s[i+1] == ' ' && s[:i] == s[i+2:] {
			return s[:i]
		}
	}
	return s
}

// isFlagError recognises urfave/cli's own parse errors.
func isFlagError(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "flag provided but not defined") ||
		strings.HasPrefix(s, "invalid value") ||
		strings.Contains(s, "Required flag") ||
		strings.HasPrefix(s, "No help topic")
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *ucli.App {
	app := &ucli.App{
		Name:      "rbnode",
		Usage:     "check that independent builders reproduced a release byte for byte",
		Version:   version,
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are printed and mapped to exit codes by Main, never here.
		ExitErrHandler:       func(*ucli.Context, error) {},
		Suggest:              true,
		EnableBashCompletion: true,
		Flags:                globalFlags(),
		OnUsageError: func(_ *ucli.Context, err error, _ bool) error {
			return &usageError{err: err}
		},
		Commands: []*ucli.Command{
			initCommand(),
			keyCommand(),
			trustCommand(),
			importCommand(),
			signCommand(),
			statusCommand(),
			requestCommand(),
			verifyCommand(),
			daemonCommand(),
			syncCommand(),
			publishCommand(),
			idCommand(),
			peersCommand(),
			buildCommand(),
			attestCommand(),
			buildsCommand(),
			completionCommand(),
			exportCommand(),
		},
	}
	decorate(app.Commands, "")
	return app
}
