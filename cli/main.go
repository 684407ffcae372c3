package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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

// usageError is a mistake in the call itself.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }

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
	err := app.RunContext(ctx, interspersed(app, args))
	if ferr := out.Flush(); ferr != nil && err == nil {
		err = fmt.Errorf("write output: %w", ferr)
	}
	return report(err, stderr)
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
	fmt.Fprintf(stderr, "rbnode: error: %s\n", strings.TrimSpace(err.Error()))
	if hint != "" {
		fmt.Fprintf(stderr, "hint: %s\n", hint)
	}
	return code
}

func classify(err error) (int, string) {
	var ue *usageError
	var ce *builder.CheckError
	var se *builder.StageError
	switch {
	case errors.Is(err, builder.ErrNoGuix), errors.Is(err, builder.ErrUsage), errors.Is(err, builder.ErrUnknownRelease):
		return ExitUsage, builder.Hint(err)
	case errors.As(err, &ce):
		return ExitNegative, builder.Hint(err)
	case errors.As(err, &se) && errors.Is(err, context.Canceled):
		return ExitInconclusive, "the build was interrupted; nothing was signed"
	case errors.As(err, &se):
		return ExitInternal, builder.Hint(err)
	case errors.Is(err, node.ErrNoBuilderKey):
		return ExitUsage, "create one with `rbnode key generate --name NAME --email EMAIL`, or import yours with `rbnode key import FILE` (from gpg --export-secret-keys --armor)"
	case errors.Is(err, store.ErrLocked):
		return ExitInconclusive, "another rbnode process has this home open; try again when it has finished"
	case errors.Is(err, node.ErrNoDaemon):
		return ExitInconclusive, "start one with `rbnode daemon`"
	case errors.Is(err, node.ErrUnknownRelease):
		return ExitInconclusive, "import or sync documents first (rbnode import PATH); `rbnode status` lists the releases this node knows"
	case errors.Is(err, context.Canceled):
		return ExitInconclusive, ""
	case errors.As(err, &ue), errors.Is(err, node.ErrUsage), isFlagError(err):
		return ExitUsage, ""
	}
	return ExitInternal, "this is a bug or an environment problem; run again with --log-level debug and report what it says"
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
		ExitErrHandler: func(*ucli.Context, error) {},
		Suggest:        true,
		Flags:          globalFlags(),
		OnUsageError: func(_ *ucli.Context, err error, _ bool) error {
			return &usageError{err}
		},
		Commands: []*ucli.Command{
			initCommand(),
			keyCommand(),
			trustCommand(),
			importCommand(),
			signCommand(),
			statusCommand(),
			verifyCommand(),
			daemonCommand(),
			syncCommand(),
			publishCommand(),
			idCommand(),
			peersCommand(),
			buildCommand(),
			attestCommand(),
			buildsCommand(),
			exportCommand(),
		},
	}
	setUsageErrors(app.Commands)
	return app
}

// setUsageErrors makes every command's flag errors usage errors (exit 2),
// printed once by Main instead of urfave's help dump.
func setUsageErrors(cmds []*ucli.Command) {
	for _, c := range cmds {
		c.OnUsageError = func(_ *ucli.Context, err error, _ bool) error { return &usageError{err} }
		setUsageErrors(c.Subcommands)
	}
}
