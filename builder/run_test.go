package builder

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func testRunner(t *testing.T, progress func(Progress)) *runner {
	return &runner{env: os.Environ(), logDir: t.TempDir(), grace: 200 * time.Millisecond, progress: progress, clock: testClock}
}

// TestRunOutput: stdout's last line is returned; the log holds both
// streams; the record says how it went.
func TestRunOutput(t *testing.T) {
	t.Parallel()
	r := testRunner(t, nil)
	// stdout and stderr are copied concurrently: which of them wrote last
	// is only known within one stream.
	out, err := r.run(t.Context(), command{stage: StageDistsrc, timeout: time.Minute,
		argv: []string{"sh", "-c", `echo building; echo "warning: x" >&2; echo "done" >&2; printf '/out/cuprate-src.tar.gz\n\n'`}})
	if err != nil || out != "/out/cuprate-src.tar.gz" {
		t.Fatalf("run = %q, %v", out, err)
	}
	rec := r.stages[0]
	if rec.ExitCode != 0 || rec.LastLine != "done" && rec.LastLine != out || rec.Stage != StageDistsrc || rec.Log != filepath.Join(r.logDir, "guix-mk-distsrc.log") || !rec.StartedAt.Equal(testTime) {
		t.Errorf("record %+v", rec)
	}
	log, _ := os.ReadFile(rec.Log)
	for _, s := range []string{"$ sh -c ", "building\n", "warning: x\n", "/out/cuprate-src.tar.gz\n", "# guix-mk-distsrc done in "} {
		if !strings.Contains(string(log), s) {
			t.Errorf("log lacks %q:\n%s", s, log)
		}
	}
}

// TestRunExitStatus: a non-zero exit is a StageError with the status.
func TestRunExitStatus(t *testing.T) {
	t.Parallel()
	r := testRunner(t, nil)
	_, err := r.run(t.Context(), command{stage: StageBuild, timeout: time.Minute, argv: []string{"sh", "-c", "echo boom >&2; exit 3"}})
	var se *StageError
	var ee *exec.ExitError
	if !errors.As(err, &se) || se.ExitCode != 3 || se.LastLine != "boom" || !errors.As(err, &ee) || !errExit(err, 3) {
		t.Fatalf("error %v", err)
	}
	if want := `stage guix-build exited with status 3 (log: ` + se.Log + `): "boom"`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

// TestRunNotFound: a program not on the build's PATH fails to start.
func TestRunNotFound(t *testing.T) {
	t.Parallel()
	r := testRunner(t, nil)
	r.env = []string{"PATH=" + t.TempDir()}
	_, err := r.run(t.Context(), command{stage: StageSource, timeout: time.Minute, argv: []string{"git", "status"}})
	var se *StageError
	if !errors.As(err, &se) || !errors.Is(err, exec.ErrNotFound) || se.ExitCode != -1 {
		t.Fatalf("error %v", err)
	}
}

// TestRunCancelKillsGroup: the leader and its child both ignore SIGTERM;
// cancelling sends SIGTERM, then SIGKILL to the whole group after the
// grace period.
func TestRunCancelKillsGroup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var child int
	r := testRunner(t, func(p Progress) {
		if pid, ok := strings.CutPrefix(p.LastLine, "child "); ok && child == 0 {
			child, _ = strconv.Atoi(pid)
			cancel()
		}
	})
	start := time.Now()
	_, err := r.run(ctx, command{stage: StageBuild, timeout: time.Minute,
		argv: []string{"sh", "-c", `trap '' TERM; sleep 600 & echo "child $!"; wait; wait`}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if d := time.Since(start); d < r.grace {
		t.Errorf("killed after %s, before the grace period of %s", d, r.grace)
	}
	if child == 0 {
		t.Fatal("never saw the child")
	}
	processGone(t, child)
	rec := r.stages[0]
	if !rec.Cancelled || rec.Signal != "killed" || rec.ExitCode != -1 {
		t.Errorf("record %+v", rec)
	}
}

// TestRunTimeout: a stage is stopped at its timeout.
func TestRunTimeout(t *testing.T) {
	t.Parallel()
	r := testRunner(t, nil)
	_, err := r.run(t.Context(), command{stage: StagePipeline, timeout: 100 * time.Millisecond, argv: []string{"sleep", "600"}})
	if !errors.Is(err, ErrTimeout) || errors.Is(err, context.Canceled) {
		t.Fatalf("error %v", err)
	}
	if rec := r.stages[0]; !rec.TimedOut || rec.Signal != "terminated" {
		t.Errorf("record %+v", rec)
	}
}

// TestRunLeftovers: a background process the leader leaves behind is
// killed with the group when the leader exits.
func TestRunLeftovers(t *testing.T) {
	t.Parallel()
	r := testRunner(t, nil)
	out, err := r.run(t.Context(), command{stage: StagePipeline, timeout: time.Minute,
		argv: []string{"sh", "-c", `sleep 600 >/dev/null 2>&1 & echo $!`}})
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(out)
	if err != nil {
		t.Fatal(err)
	}
	processGone(t, pid)
}

// TestRunAlreadyCancelled: nothing starts once the build is cancelled.
func TestRunAlreadyCancelled(t *testing.T) {
	t.Parallel()
	r := testRunner(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := r.run(ctx, command{stage: StageBuild, timeout: time.Minute, argv: []string{"true"}})
	if !errors.Is(err, context.Canceled) || !r.stages[0].Cancelled {
		t.Fatalf("error %v", err)
	}
}

func TestLookPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	exe := filepath.Join(dir, "guix")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "plain"), nil, 0o644)
	env := []string{"PATH=/nonexistent", "PATH=relative:" + dir}
	if p, err := lookPath("guix", env); err != nil || p != exe {
		t.Errorf("lookPath(guix) = %q, %v", p, err)
	}
	if _, err := lookPath("plain", env); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("a file that is not executable was found: %v", err)
	}
	if _, err := lookPath("guix", []string{"PATH=" + dir, "PATH=/nonexistent"}); err == nil {
		t.Error("the first PATH entry was used; the last must win")
	}
}

func TestCleanEnv(t *testing.T) {
	t.Parallel()
	got := cleanEnv([]string{"HOME=/h", "GIT_DIR=/elsewhere/.git", "GIT_WORK_TREE=/w", "GIT_AUTHOR_NAME=a", "PATH=/bin"})
	if strings.Join(got, " ") != "HOME=/h GIT_AUTHOR_NAME=a PATH=/bin" {
		t.Errorf("cleanEnv = %v", got)
	}
}

// TestPrintable: names print as they are unless a character would not
// print plainly; then the whole name is quoted.
func TestPrintable(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/home/u/cuprate": "/home/u/cuprate",
		"Zoë ☃ builds":    "Zoë ☃ builds",
		"a\nb":            `"a\nb"`,
		"x\x1b[2Jy":       `"x\x1b[2Jy"`,
		"tab\there":       `"tab\there"`,
		"bad\xffutf8":     `"bad\xffutf8"`,
		"\u202eevil":      `"\u202eevil"`,
		"":                "",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %s, want %s", in, got, want)
		}
	}
}
