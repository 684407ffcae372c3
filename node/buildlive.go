package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/rbnode/rbnode/builder"
)

// LiveSuffix names the file beside a running build's work directory that
// says what the build is doing: HOME/builds/<work dir>.running.json.
// RunBuild rewrites it as the build progresses and removes it when the
// build ends. (Beside, not inside: the builder wants its work directory
// empty.)
const LiveSuffix = ".running.json"

// DefaultHeartbeat is how often a build without a terminal says it is
// still running.
const DefaultHeartbeat = time.Minute

// LiveBuild is the state of a running build, as its LiveSuffix file holds it.
type LiveBuild struct {
	PID            int           `json:"pid"`
	Version        string        `json:"version"`
	WorkDir        string        `json:"work_dir"`
	StartedAt      time.Time     `json:"started_at"`
	Stage          builder.Stage `json:"stage,omitempty"`
	StageStartedAt time.Time     `json:"stage_started_at,omitzero"`
	LastLine       string        `json:"last_line,omitempty"`
	Log            string        `json:"log,omitempty"` // the current stage's log, if it has one
	UpdatedAt      time.Time     `json:"updated_at"`
	// Gone is set by RunningBuilds when the process that wrote the file
	// no longer runs (it was killed before it could remove the file).
	Gone bool `json:"gone,omitempty"`
}

// Elapsed is how long the build has run, at now.
func (l LiveBuild) Elapsed(now time.Time) time.Duration { return now.Sub(l.StartedAt) }

// StageElapsed is how long the current stage has run, at now.
func (l LiveBuild) StageElapsed(now time.Time) time.Duration {
	if l.StageStartedAt.IsZero() {
		return 0
	}
	return now.Sub(l.StageStartedAt)
}

// liveState keeps a running build's LiveSuffix file and feeds its heartbeat.
type liveState struct {
	mu        sync.Mutex
	st        LiveBuild
	path      string
	logDir    string
	lastWrite time.Time
}

// liveWriteGap bounds how often the live file is rewritten for new output.
const liveWriteGap = time.Second

func newLiveState(work, version string) *liveState {
	now := time.Now().UTC()
	l := &liveState{
		st:     LiveBuild{PID: os.Getpid(), Version: version, WorkDir: work, StartedAt: now, UpdatedAt: now},
		path:   work + LiveSuffix,
		logDir: filepath.Join(work, "logs"),
	}
	l.write()
	return l
}

// progress records a builder progress report; it is the build's
// Progress hook, called from the goroutine running the build.
func (l *liveState) progress(p builder.Progress) {
	now := time.Now().UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := p.Stage != l.st.Stage
	if changed {
		l.st.Stage, l.st.StageStartedAt, l.st.LastLine, l.st.Log = p.Stage, now.Add(-p.Elapsed), "", ""
		if log := filepath.Join(l.logDir, string(p.Stage)+".log"); fileExists(log) {
			l.st.Log = log
		}
	}
	if p.LastLine != "" {
		l.st.LastLine = p.LastLine
	}
	l.st.UpdatedAt = now
	if changed || now.Sub(l.lastWrite) >= liveWriteGap {
		l.lastWrite = now
		l.writeLocked()
	}
}

func (l *liveState) snapshot() LiveBuild {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

func (l *liveState) write() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeLocked()
}

// writeLocked replaces the live file; it is advice for `rbnode builds
// --follow`, so a failure to write it does not stop the build.
func (l *liveState) writeLocked() {
	b, err := json.Marshal(l.st)
	if err != nil {
		return
	}
	tmp := l.path + ".tmp"
	if os.WriteFile(tmp, b, 0o644) == nil {
		_ = os.Rename(tmp, l.path)
	}
}

func (l *liveState) remove() { _ = os.Remove(l.path) }

// heartbeat calls beat with the build's state every interval until stop
// is closed.
func (l *liveState) heartbeat(interval time.Duration, beat func(LiveBuild), stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			beat(l.snapshot())
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// RunningBuilds lists the builds of a home that are running, oldest first,
// with those whose process died without cleaning up marked Gone.
func RunningBuilds(home string) ([]LiveBuild, error) {
	files, err := filepath.Glob(filepath.Join(home, BuildsDir, "*"+LiveSuffix))
	if err != nil {
		return nil, err
	}
	out := []LiveBuild{}
	for _, f := range files {
		l, err := readLive(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // it ended meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) })
	return out, nil
}

func readLive(path string) (LiveBuild, error) {
	var l LiveBuild
	b, err := os.ReadFile(path)
	if err != nil {
		return l, err
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return l, fmt.Errorf("read %s: %w", path, err)
	}
	l.Gone = !processRuns(l.PID)
	return l, nil
}

func processRuns(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// FollowEvent is one thing FollowBuild reports: the build's state when it
// changes stage (State), a line of the current stage's log (Line), or the
// end (Done; State is the last state seen).
type FollowEvent struct {
	State *LiveBuild
	Line  string
	Done  bool
}

// FollowBuild follows the running build whose work directory is work: it
// emits the state and the last tail lines of the current stage's log,
// then every new line and every change of stage as they come, looking
// every poll, until the build ends (its live file is gone or its process
// died) or ctx is done.
func FollowBuild(ctx context.Context, work string, poll time.Duration, tail int, emit func(FollowEvent)) error {
	path := work + LiveSuffix
	cur, err := readLive(path)
	if err != nil {
		return fmt.Errorf("follow the build in %s: %w", work, err)
	}
	emit(FollowEvent{State: &cur})
	var (
		log     = cur.Log
		offset  int64
		partial []byte
	)
	if log != "" {
		lines, end, err := lastLines(log, tail)
		if err == nil {
			for _, l := range lines {
				emit(FollowEvent{Line: l})
			}
			offset = end
		}
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if log != "" {
			offset, partial = readNew(log, offset, partial, emit)
		}
		next, err := readLive(path)
		if errors.Is(err, fs.ErrNotExist) || err == nil && next.Gone {
			if err == nil {
				cur = next
			}
			emit(FollowEvent{State: &cur, Done: true})
			return nil
		}
		if err == nil && next.Stage != cur.Stage {
			if log != "" {
				readNew(log, offset, partial, emit) // what the stage wrote last
			}
			emit(FollowEvent{State: &next})
			log, offset, partial = next.Log, 0, nil
		}
		if err == nil {
			cur = next
			if log == "" && cur.Log != "" {
				log = cur.Log
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// maxFollowLine bounds a log line FollowBuild emits.
const maxFollowLine = 4096

// readNew emits the complete lines appended to path since offset and
// returns the new offset and the incomplete last line.
func readNew(path string, offset int64, partial []byte, emit func(FollowEvent)) (int64, []byte) {
	f, err := os.Open(path)
	if err != nil {
		return offset, partial
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, partial
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	offset += int64(len(b))
	partial = append(partial, b...)
	for {
		i := bytes.IndexByte(partial, '\n')
		if i < 0 {
			break
		}
		emit(FollowEvent{Line: string(partial[:min(i, maxFollowLine)])})
		partial = partial[i+1:]
	}
	if len(partial) > maxFollowLine {
		emit(FollowEvent{Line: string(partial[:maxFollowLine])})
		partial = nil
	}
	return offset, slices.Clone(partial)
}

// lastLines returns the last n complete lines of path (read from at most
// its last 64 KiB) and the offset after them.
func lastLines(path string, n int) ([]string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	start := max(fi.Size()-64<<10, 0)
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return nil, 0, err
	}
	b, err := io.ReadAll(io.LimitReader(f, fi.Size()-start))
	if err != nil {
		return nil, 0, err
	}
	end := bytes.LastIndexByte(b, '\n') + 1
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b[:end]))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if start > 0 && len(lines) > 0 {
		lines = lines[1:] // cut mid-line
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, start + int64(end), nil
}
