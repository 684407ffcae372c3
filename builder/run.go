package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stage names one step of a build. The strings are stable: records, logs
// and progress lines carry them.
type Stage string

// The stages of a build, in the order they run. A subprocess stage writes
// <LogDir>/<stage>.log; check and sign run in process and only report
// progress.
const (
	StageSource    Stage = "source"          // git: resolve the release, clone it
	StageDistsrc   Stage = "guix-mk-distsrc" // contrib/guix/guix-mk-distsrc
	StageBuild     Stage = "guix-build"      // contrib/guix/guix-build
	StageChecksums Stage = "guix-checksums"  // contrib/guix/guix-checksums
	StagePipeline  Stage = "pipeline"        // the generic pipeline command (sh -c)
	StageCleanup   Stage = "cleanup"         // remove the clone
	StageCheck     Stage = "check"           // checking the outputs against the contract
	StageSign      Stage = "sign"            // signing and writing the document
)

// Progress is what a running build reports, for a live progress line.
type Progress struct {
	Stage    Stage
	Elapsed  time.Duration // since the stage started
	LastLine string        // the last non-blank line the stage wrote, "" before any
}

// How often a running stage reports progress: at least every
// progressTick, and on new output at most every progressGap.
const (
	progressTick = time.Second
	progressGap  = 100 * time.Millisecond
	maxLastLine  = 4096
)

// runner runs the subprocesses of one build: each in its own process group,
// its output in a log file, its life bounded by a timeout and the build's
// context.
type runner struct {
	env      []string
	logDir   string
	grace    time.Duration
	progress func(Progress)
	clock    func() time.Time
	stages   []StageRecord
}

// command is one subprocess.
type command struct {
	stage   Stage
	argv    []string // argv[0] is looked up in the build's PATH
	dir     string
	env     []string // added to the build's environment; later entries win
	timeout time.Duration
}

func (r *runner) report(p Progress) {
	if r.progress != nil {
		r.progress(p)
	}
}

// run runs c to completion and returns the last non-blank line of its
// stdout. A failure is a *StageError. Cancelling ctx, or the stage's
// timeout, sends SIGTERM to the whole process group and SIGKILL after the
// grace period; when the leader exits, whatever is left of its group is
// killed too, so no stage leaves processes behind.
func (r *runner) run(ctx context.Context, c command) (string, error) {
	logPath := filepath.Join(r.logDir, string(c.stage)+".log")
	rec := StageRecord{
		Stage: c.stage, Command: c.argv, Dir: c.dir, Log: logPath,
		StartedAt: r.clock().UTC(), ExitCode: -1,
	}
	start := time.Now()
	last, err := r.exec(ctx, c, &rec)
	rec.DurationMS = time.Since(start).Milliseconds()
	r.stages = append(r.stages, rec)
	if err != nil {
		return "", &StageError{Stage: c.stage, ExitCode: rec.ExitCode, Log: logPath, LastLine: rec.LastLine, Err: err}
	}
	return last, nil
}

func (r *runner) exec(ctx context.Context, c command, rec *StageRecord) (string, error) {
	if err := ctx.Err(); err != nil {
		rec.Cancelled = true
		return "", err
	}
	env := append(append([]string(nil), r.env...), c.env...)
	prog, err := lookPath(c.argv[0], env)
	if err != nil {
		return "", fmt.Errorf("find %s: %w", c.argv[0], err)
	}
	logf, err := os.OpenFile(rec.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return "", fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "$ %s\n", quoteArgs(c.argv))

	outR, outW, err := os.Pipe()
	if err != nil {
		return "", err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return "", err
	}
	cmd := &exec.Cmd{
		Path:        prog,
		Args:        c.argv,
		Dir:         c.dir,
		Env:         env,
		Stdout:      outW,
		Stderr:      errW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	start := time.Now()
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		fmt.Fprintf(logf, "# could not start: %v\n", err)
		return "", fmt.Errorf("start %s: %w", c.argv[0], err)
	}
	pgid := cmd.Process.Pid

	t := &tail{changed: make(chan struct{}, 1)}
	var copiers sync.WaitGroup
	copiers.Go(func() { t.copy(logf, outR, true) })
	copiers.Go(func() { t.copy(logf, errR, false) })
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	stageCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	tick := time.NewTicker(progressTick)
	defer tick.Stop()
	r.report(Progress{Stage: c.stage})
	var (
		stop       = stageCtx.Done()
		kill       <-chan time.Time
		killTimer  *time.Timer
		signalled  bool
		waitErr    error
		lastReport time.Time
	)
loop:
	for {
		select {
		case waitErr = <-waited:
			break loop
		case <-stop:
			stop = nil
			signalled = true
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			killTimer = time.NewTimer(r.grace)
			kill = killTimer.C
		case <-kill:
			kill = nil
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		case <-tick.C:
			r.report(Progress{Stage: c.stage, Elapsed: time.Since(start), LastLine: t.last()})
		case <-t.changed:
			if time.Since(lastReport) >= progressGap {
				lastReport = time.Now()
				r.report(Progress{Stage: c.stage, Elapsed: time.Since(start), LastLine: t.last()})
			}
		}
	}
	if killTimer != nil {
		killTimer.Stop()
	}
	// The leader is gone; so must be the rest of its group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	drained := make(chan struct{})
	go func() { copiers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(r.grace):
		// Something outside the group still holds the pipes open.
		_ = outR.SetReadDeadline(time.Now())
		_ = errR.SetReadDeadline(time.Now())
		<-drained
	}
	outR.Close()
	errR.Close()

	rec.LastLine = t.last()
	if ps := cmd.ProcessState; ps != nil {
		rec.ExitCode = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			rec.Signal = ws.Signal().String()
		}
	}
	elapsed := time.Since(start).Round(time.Millisecond)
	switch {
	case signalled && ctx.Err() != nil:
		rec.Cancelled = true
		err = ctx.Err()
	case signalled:
		rec.TimedOut = true
		err = fmt.Errorf("%w after %s", ErrTimeout, c.timeout)
	default:
		err = waitErr
	}
	if err != nil {
		fmt.Fprintf(logf, "# %s failed after %s: %v\n", c.stage, elapsed, err)
	} else {
		fmt.Fprintf(logf, "# %s done in %s\n", c.stage, elapsed)
	}
	r.report(Progress{Stage: c.stage, Elapsed: time.Since(start), LastLine: rec.LastLine})
	return t.stdoutLast(), err
}

// tail copies a stage's output into its log and remembers the last
// non-blank line, of stdout and of either stream.
type tail struct {
	mu       sync.Mutex
	any, out string
	changed  chan struct{}
}

func (t *tail) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.any
}

func (t *tail) stdoutLast() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.out
}

func (t *tail) set(line []byte, stdout bool) {
	line = bytes.TrimRight(line, " \t\r\n")
	if len(line) == 0 {
		return
	}
	if len(line) > maxLastLine {
		line = line[:maxLastLine]
	}
	s := string(line)
	t.mu.Lock()
	t.any = s
	if stdout {
		t.out = s
	}
	t.mu.Unlock()
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

func (t *tail) copy(log io.Writer, src io.Reader, stdout bool) {
	buf := make([]byte, 32<<10)
	var partial []byte
	for {
		n, err := src.Read(buf)
		if n > 0 {
			_, _ = log.Write(buf[:n]) // a full disk must not block the child
			partial = append(partial, buf[:n]...)
			if i := bytes.LastIndexByte(partial, '\n'); i >= 0 {
				if l := lastLine(partial[:i]); l != nil {
					t.set(l, stdout)
				}
				partial = append(partial[:0], partial[i+1:]...)
			}
			if len(partial) > maxLastLine {
				partial = append(partial[:0], partial[len(partial)-maxLastLine:]...)
			}
		}
		if err != nil {
			t.set(partial, stdout)
			return
		}
	}
}

// lastLine returns the last non-blank line of b, or nil.
func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, " \t\r\n")
	if len(b) == 0 {
		return nil
	}
	return b[bytes.LastIndexByte(b, '\n')+1:]
}

// lookPath finds name as a shell would with the build's PATH, so the build
// runs what its environment names, not what rbnode's own PATH holds.
// Relative PATH entries are skipped.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(envValue(env, "PATH")) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// envValue returns the value of key in env; the last entry wins, as for
// exec.Cmd.
func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// gitEnvKeys are dropped from the build's environment: they would point
// git at another repository than the one asked for.
var gitEnvKeys = []string{
	"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
	"GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
	"GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM",
}

func cleanEnv(env []string) []string {
	out := make([]string, 0, len(env))
outer:
	for _, kv := range env {
		for _, k := range gitEnvKeys {
			if strings.HasPrefix(kv, k+"=") {
				continue outer
			}
		}
		out = append(out, kv)
	}
	return out
}

// quoteArgs renders argv for a log header.
func quoteArgs(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '=' || r == ':' || r == '+' || r == ',' ||
				'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
		}) < 0 {
			q[i] = a
		} else {
			q[i] = strconv.Quote(a)
		}
	}
	return strings.Join(q, " ")
}

// errExit reports whether err is a stage that exited with status code.
func errExit(err error, code int) bool {
	var se *StageError
	var ee *exec.ExitError
	return errors.As(err, &se) && errors.As(se.Err, &ee) && ee.ExitCode() == code
}
