package node

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbnode/rbnode/builder"
)

// buildHome is a home with a builder key and a stand-in Cuprate checkout
// (builder/testdata), and the environment that builds it with the fake
// guix.
func buildHome(t *testing.T) (home, repo string, env []string) {
	t.Helper()
	home = t.TempDir()
	armored, err := newBuilder(t, "runner").sk.Armored()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, KeyFile), armored, 0o600); err != nil {
		t.Fatal(err)
	}
	repo = filepath.Join(t.TempDir(), "cuprate")
	if out, err := exec.Command("../builder/testdata/make-standin", repo).CombinedOutput(); err != nil {
		t.Fatalf("make-standin: %v\n%s", err, out)
	}
	fake, err := filepath.Abs("../builder/testdata/fakeguix")
	if err != nil {
		t.Fatal(err)
	}
	env = append(os.Environ(), "PATH="+fake+string(os.PathListSeparator)+os.Getenv("PATH"),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	return home, repo, env
}

// TestRunBuildHeartbeat: a running build beats every HeartbeatEvery with
// its stage, times and last line of output, says what it does in its
// live file (RunningBuilds), and FollowBuild shows the stage and the
// log as it grows, then the end; nothing of it is left afterwards.
func TestRunBuildHeartbeat(t *testing.T) {
	t.Parallel()
	home, repo, env := buildHome(t)
	env = append(env, "STANDIN_HANG=build")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		mu    sync.Mutex
		beats []LiveBuild
	)
	type result struct {
		res *builder.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := RunBuild(ctx, home, BuildRequest{
			Repo: repo, Version: "0.0.9", Env: env,
			HeartbeatEvery: 20 * time.Millisecond,
			Heartbeat:      func(l LiveBuild) { mu.Lock(); beats = append(beats, l); mu.Unlock() },
		}, time.Now)
		done <- result{res, err}
	}()
	hanging := func(l LiveBuild) bool {
		return l.Stage == builder.StageBuild && strings.HasPrefix(l.LastLine, "stand-in: build is hanging")
	}
	waitFor(t, time.Minute, "a heartbeat from the hanging guix-build", func() bool {
		mu.Lock()
		defer mu.Unlock()
		select {
		case r := <-done:
			t.Fatalf("the build ended: %v (%d heartbeats)", r.err, len(beats))
		default:
		}
		return len(beats) > 0 && hanging(beats[len(beats)-1])
	})
	mu.Lock()
	last := beats[len(beats)-1]
	mu.Unlock()
	if last.Version != "0.0.9" || last.PID != os.Getpid() || last.StageElapsed(time.Now()) <= 0 || last.Elapsed(time.Now()) < last.StageElapsed(time.Now()) {
		t.Errorf("heartbeat %+v", last)
	}

	var running []LiveBuild
	waitFor(t, time.Minute, "the live file to name the hanging stage", func() bool {
		var err error
		running, err = RunningBuilds(home)
		return err == nil && len(running) == 1 && hanging(running[0])
	})
	r := running[0]
	if r.Gone || r.WorkDir != last.WorkDir || r.Log != filepath.Join(r.WorkDir, "logs", "guix-build.log") {
		t.Errorf("running build %+v", r)
	}

	var (
		fmu    sync.Mutex
		events []FollowEvent
	)
	followed := make(chan error, 1)
	go func() {
		followed <- FollowBuild(t.Context(), r.WorkDir, 20*time.Millisecond, 5, func(e FollowEvent) {
			fmu.Lock()
			events = append(events, e)
			fmu.Unlock()
		})
	}()
	waitFor(t, time.Minute, "FollowBuild to show the stage and its log", func() bool {
		fmu.Lock()
		defer fmu.Unlock()
		var stage, line bool
		for _, e := range events {
			stage = stage || e.State != nil && e.State.Stage == builder.StageBuild
			line = line || strings.HasPrefix(e.Line, "stand-in: build is hanging")
		}
		return stage && line
	})
	cancel()
	res := <-done
	if !errors.Is(res.err, context.Canceled) {
		t.Fatalf("build: %v", res.err)
	}
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	fmu.Lock()
	end := events[len(events)-1]
	fmu.Unlock()
	if !end.Done || end.State == nil || end.State.Gone {
		t.Errorf("FollowBuild ended with %+v", end)
	}
	if _, err := os.Stat(r.WorkDir + LiveSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the live file is left: %v", err)
	}
	mu.Lock()
	n := len(beats)
	mu.Unlock()
	if l, err := RunningBuilds(home); err != nil || len(l) != 0 {
		t.Errorf("still running: %+v %v", l, err)
	}
	mu.Lock()
	if len(beats) != n {
		t.Error("the heartbeat went on after the build returned")
	}
	mu.Unlock()
}

// TestRunBuildWorkDirs: builds started in the same second get their own
// work directories; a wrong request is no build: it leaves no directory
// and no record.
func TestRunBuildWorkDirs(t *testing.T) {
	t.Parallel()
	builds := filepath.Join(t.TempDir(), BuildsDir)
	seen := map[string]bool{}
	for range 3 {
		d, err := newWorkDir(builds, "0.0.9-20260701T100000Z")
		if err != nil || seen[d] {
			t.Fatalf("work dir %s, %v (seen %v)", d, err, seen)
		}
		seen[d] = true
	}
	for _, want := range []string{"0.0.9-20260701T100000Z", "0.0.9-20260701T100000Z-2", "0.0.9-20260701T100000Z-3"} {
		if !seen[filepath.Join(builds, want)] {
			t.Errorf("no %s among %v", want, seen)
		}
	}

	home, repo, env := buildHome(t)
	res, err := RunBuild(t.Context(), home, BuildRequest{Repo: repo, Version: "0.0.9", Env: env, Pipeline: "true", Project: "../x"}, time.Now)
	if !errors.Is(err, builder.ErrUsage) || Recordable(res, err) {
		t.Fatalf("error %v, recordable %v", err, Recordable(res, err))
	}
	if entries, _ := os.ReadDir(filepath.Join(home, BuildsDir)); len(entries) != 0 {
		t.Errorf("a usage error left %v", entries)
	}
	if _, err := RunBuild(t.Context(), home, BuildRequest{Repo: repo, Version: "../x", Env: env}, time.Now); !errors.Is(err, ErrUsage) {
		t.Errorf("version ../x: %v", err)
	}
}

// TestPruneEvidence: the evidence of failed builds is capped in total,
// the oldest deleted first, the build's logs and outputs kept.
func TestPruneEvidence(t *testing.T) {
	t.Parallel()
	builds := t.TempDir()
	base := time.Now().Add(-time.Hour)
	var dirs []string
	for i, name := range []string{"old", "mid", "new"} {
		d := filepath.Join(builds, name, builder.EvidenceDir)
		if err := os.MkdirAll(filepath.Join(d, "tree"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "tree", "blob"), make([]byte, 100), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(builds, name, "log"), []byte("kept"), 0o644); err != nil {
			t.Fatal(err)
		}
		at := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(d, at, at); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	present := func() (got []bool) {
		for _, d := range dirs {
			_, err := os.Stat(d)
			got = append(got, err == nil)
		}
		return got
	}
	for _, c := range []struct {
		limit int64
		want  []bool
	}{
		{300, []bool{true, true, true}},
		{250, []bool{false, true, true}},
		{100, []bool{false, false, true}},
		{99, []bool{false, false, false}},
	} {
		pruneEvidence(builds, c.limit)
		if got := present(); !slices.Equal(got, c.want) {
			t.Errorf("limit %d: evidence present %v, want %v", c.limit, got, c.want)
		}
	}
	for _, name := range []string{"old", "mid", "new"} {
		if _, err := os.Stat(filepath.Join(builds, name, "log")); err != nil {
			t.Error(err)
		}
	}
}
