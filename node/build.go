package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/builder"
)

// LoadBuilderKey reads the builder key of a home without opening its store
// (a build runs for hours; the store must stay free for a daemon).
func LoadBuilderKey(home string) (*attest.SecretKey, error) {
	b, err := os.ReadFile(filepath.Join(home, KeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoBuilderKey
	}
	if err != nil {
		return nil, fmt.Errorf("read builder key: %w", err)
	}
	sk, err := attest.ReadSecretKey(b, nil)
	if err != nil {
		return nil, fmt.Errorf("read builder key %s: %w", filepath.Join(home, KeyFile), err)
	}
	return sk, nil
}

// BuildsDir holds each build's work directory (outputs and logs).
const BuildsDir = "builds"

// SigsDir is where rbnode build writes the signed documents, in the
// contrib/guix/sigs (or guix.sigs) layout.
const SigsDir = "sigs"

// BuildRequest is what rbnode build and auto_build ask for.
type BuildRequest struct {
	Repo, Version, Commit, TagPattern, Pipeline, Project string
	BuilderID                                            string // default: the builder key's name
	Dest                                                 string // default HOME/sigs
	Env                                                  []string
	Progress                                             func(builder.Progress)
	// Heartbeat, if set, is called every HeartbeatEvery (default
	// DefaultHeartbeat) while the build runs, with its state: a build
	// without a terminal says it is alive. It runs on its own goroutine.
	Heartbeat      func(LiveBuild)
	HeartbeatEvery time.Duration
	// EvidenceCap bounds the total size of the failure evidence kept under
	// HOME/builds (default DefaultEvidenceCap); the oldest goes first.
	EvidenceCap int64
}

// DefaultEvidenceCap is how much failure evidence (what failed builds
// left in contrib/guix/.work) a home keeps, all builds together.
const DefaultEvidenceCap = 4 << 30

// Recordable reports whether a build's result is worth a build record:
// not when it never started, nor when the request itself was wrong.
func Recordable(res *builder.Result, err error) bool {
	return res != nil && !res.Record.StartedAt.IsZero() && !errors.Is(err, builder.ErrUsage)
}

// RunBuild builds a release with the home's builder key and returns the
// builder's result (never nil). It does not touch the store: the caller
// records the result with AddBuild and stores the document.
func RunBuild(ctx context.Context, home string, req BuildRequest, now func() time.Time) (*builder.Result, error) {
	sk, err := LoadBuilderKey(home)
	if err != nil {
		return &builder.Result{}, err
	}
	id := req.BuilderID
	if id == "" {
		id = sk.Public().Name()
	}
	dest := req.Dest
	if dest == "" {
		dest = filepath.Join(home, SigsDir)
	}
	if req.Commit != "" && !isHex(req.Commit) {
		// A ref (HEAD, a branch, a tag): the builder takes only hashes.
		out, err := exec.CommandContext(ctx, "git", "-C", req.Repo, "rev-parse", "--verify", "--quiet", "--end-of-options", req.Commit+"^{commit}").Output()
		if err != nil {
			return &builder.Result{}, usagef("--commit %s names no commit in %s", builder.Printable(req.Commit), builder.Printable(req.Repo))
		}
		req.Commit = strings.TrimSpace(string(out))
	}
	if err := attest.CheckName("version", req.Version); err != nil {
		return &builder.Result{}, usagef("%v", err)
	}
	builds := filepath.Join(home, BuildsDir)
	work, err := newWorkDir(builds, req.Version+"-"+now().UTC().Format("20060102T150405Z"))
	if err != nil {
		return &builder.Result{}, err
	}
	live := newLiveState(work, req.Version)
	defer live.remove()
	if req.Heartbeat != nil {
		every := req.HeartbeatEvery
		if every <= 0 {
			every = DefaultHeartbeat
		}
		stop, done := make(chan struct{}), make(chan struct{})
		go func() { defer close(done); live.heartbeat(every, req.Heartbeat, stop) }()
		defer func() { close(stop); <-done }()
	}
	progress := live.progress
	if req.Progress != nil {
		progress = func(p builder.Progress) { live.progress(p); req.Progress(p) }
	}
	res, err := builder.Build(ctx, builder.Request{
		Repo: req.Repo, Version: req.Version, Commit: req.Commit, TagPattern: req.TagPattern,
		Pipeline: req.Pipeline, Project: req.Project, Env: req.Env,
		WorkDir: work, Progress: progress, Clock: now,
		Sign: &builder.Signing{Signer: sk, BuilderID: id, Dest: dest},
	})
	if !Recordable(res, err) {
		live.remove()
		_ = os.RemoveAll(work) // a wrong request leaves nothing behind
	}
	if res.Record.Evidence != "" {
		limit := req.EvidenceCap
		if limit <= 0 {
			limit = DefaultEvidenceCap
		}
		pruneEvidence(builds, limit)
	}
	return res, err
}

// newWorkDir makes a new, empty work directory builds/name, or
// builds/name-2, -3, ... when two builds start in the same second.
func newWorkDir(builds, name string) (string, error) {
	if err := os.MkdirAll(builds, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", builds, err)
	}
	for i := 1; ; i++ {
		p := filepath.Join(builds, name)
		if i > 1 {
			p += "-" + strconv.Itoa(i)
		}
		err := os.Mkdir(p, 0o755)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrExist) || i >= 1000 {
			return "", fmt.Errorf("create a work directory in %s: %w", builds, err)
		}
	}
}

// pruneEvidence deletes the oldest failure evidence under builds until
// what is left weighs at most limit bytes. The newest goes last, and also
// goes when it alone is over the limit: a full disk would lose more.
func pruneEvidence(builds string, limit int64) {
	dirs, _ := filepath.Glob(filepath.Join(builds, "*", builder.EvidenceDir))
	type kept struct {
		path string
		mod  time.Time
		size int64
	}
	var all []kept
	var total int64
	for _, d := range dirs {
		fi, err := os.Lstat(d)
		if err != nil || !fi.IsDir() {
			continue
		}
		k := kept{path: d, mod: fi.ModTime()}
		_ = filepath.WalkDir(d, func(_ string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				if info, err := e.Info(); err == nil {
					k.size += info.Size()
				}
			}
			return nil
		})
		total += k.size
		all = append(all, k)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod.Before(all[j].mod) })
	for _, k := range all {
		if total <= limit {
			return
		}
		if os.RemoveAll(k.path) == nil {
			total -= k.size
		}
	}
}

// AddBuild stores a build record.
func (n *Node) AddBuild(r *builder.Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return n.store.PutBuild(r.StartedAt, b)
}

// Builds returns the stored build records, oldest first.
func (n *Node) Builds() ([]builder.Record, error) {
	raws, err := n.store.Builds()
	if err != nil {
		return nil, err
	}
	out := []builder.Record{}
	for _, raw := range raws {
		var r builder.Record
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("stored build record: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

// autoBuild watches the configured repository for release tags and builds
// each new release once, one at a time, publishing the result. A version
// with any stored build record (good or failed) is not built again, so a
// restart rebuilds nothing.
func (d *Daemon) autoBuild(ctx context.Context) error {
	c := d.n.cfg.AutoBuild
	log := d.log.With().Str("component", "auto_build").Logger()
	tick := time.NewTicker(c.FetchInterval.Duration)
	defer tick.Stop()
	for {
		if err := d.autoBuildOnce(ctx); err != nil {
			if errors.Is(err, builder.ErrNoGuix) && c.Pipeline == "" {
				log.Warn().Err(err).Msg("auto_build is off: " + builder.Hint(err))
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
			log.Warn().Err(err).Msg("auto build")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (d *Daemon) autoBuildOnce(ctx context.Context) error {
	c := d.n.cfg.AutoBuild
	if c.Remote != "" {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		out, err := exec.CommandContext(fctx, "git", "-C", c.Repo, "fetch", "--tags", "--quiet", c.Remote).CombinedOutput()
		cancel()
		if err != nil {
			d.log.Warn().Err(err).Str("output", strings.TrimSpace(string(out))).Msg("git fetch")
		}
	}
	versions, err := releaseTags(ctx, c.Repo, c.TagPattern)
	if err != nil {
		return err
	}
	built, err := d.n.Builds()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, r := range built {
		seen[r.Version] = true
	}
	fresh := 0
	for _, v := range versions {
		if !seen[v] {
			fresh++
		}
	}
	d.log.Info().Int("tags", len(versions)).Int("new", fresh).Msg("auto_build checked the release tags")
	for _, v := range versions {
		if seen[v] || ctx.Err() != nil {
			continue
		}
		d.log.Info().Str("version", v).Msg("building a new release")
		d.buildMu.Lock() // one build at a time, requests included
		res, err := RunBuild(ctx, d.n.cfg.Home, BuildRequest{
			Repo: c.Repo, Version: v, TagPattern: c.TagPattern, Pipeline: c.Pipeline, Project: c.Project,
			BuilderID: c.BuilderID, Heartbeat: d.logHeartbeat,
		}, d.n.now)
		d.buildMu.Unlock()
		if ctx.Err() != nil {
			return nil // interrupted: not recorded, built again next time
		}
		if Recordable(res, err) {
			if rerr := d.n.AddBuild(&res.Record); rerr != nil {
				return rerr
			}
		}
		if err != nil {
			if errors.Is(err, builder.ErrNoGuix) {
				return err
			}
			d.log.Warn().Err(err).Str("version", v).Str("hint", builder.Hint(err)).Msg("build failed")
			continue
		}
		sum, err := d.Publish(ctx, res.Signed.Path, ImportOptions{})
		if err != nil {
			return err
		}
		d.log.Info().Str("version", v).Int("published", sum.Published).Msg("built and published")
	}
	return nil
}

// logHeartbeat logs that an auto build is still running.
func (d *Daemon) logHeartbeat(l LiveBuild) {
	now := time.Now()
	d.log.Info().Str("component", "auto_build").Str("version", l.Version).Str("stage", string(l.Stage)).
		Dur("stage_elapsed", l.StageElapsed(now).Round(time.Second)).Dur("elapsed", l.Elapsed(now).Round(time.Second)).
		Str("last_line", l.LastLine).Str("work_dir", l.WorkDir).Msg("build running")
}

// releaseTags lists the versions whose tags match pattern ("cuprated-{version}").
func releaseTags(ctx context.Context, repo, pattern string) ([]string, error) {
	if pattern == "" {
		pattern = builder.DefaultTagPattern
	}
	prefix, suffix, ok := strings.Cut(pattern, "{version}")
	if !ok {
		return nil, usagef("tag_pattern %q has no {version}", pattern)
	}
	out, err := exec.CommandContext(ctx, "git", "-C", repo, "tag", "--list", prefix+"*"+suffix).Output()
	if err != nil {
		return nil, fmt.Errorf("list tags in %s: %w", repo, err)
	}
	var vs []string
	for _, t := range strings.Fields(string(out)) {
		v := strings.TrimSuffix(strings.TrimPrefix(t, prefix), suffix)
		if attest.CheckName("version", v) == nil {
			vs = append(vs, v)
		}
	}
	sort.Strings(vs)
	return vs, nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}
