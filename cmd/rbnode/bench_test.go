package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rbnode/rbnode/node"
	"github.com/rbnode/rbnode/node/web"
)

// fullGuixSigs is the whole guix.sigs data when the shared test data is
// beside the clone (or beside the directory holding a worktree), else the
// repo's subset.
func fullGuixSigs() string {
	for _, up := range []string{"../../..", "../../../.."} {
		dir := filepath.Join(up, "shared/testdata/guix.sigs")
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
	}
	return "../../testdata/guix.sigs"
}

// timeCmd runs a command and returns its wall time.
func timeCmd(b *testing.B, env []string, name string, args ...string) time.Duration {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 3 {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	return d
}

// BenchmarkImportVsGPG imports and verifies the whole guix.sigs tree with
// rbnode and compares it with a loop of `gpg --verify` over the same
// signatures, its keys imported beforehand and not timed. The two sides
// are interleaved, five times each (rbnode, gpg, rbnode, gpg, ...), so
// that a shared machine's drift hits both; the row is the run whose
// ratio is the median of the five. Target: rbnode at least 35x faster,
// in signatures a second. rbnode starts with the builder keys known, as
// gpg does; fresh-ms is an import into an empty home, which reads and
// checks every key file too (median of the same five rounds).
func BenchmarkImportVsGPG(b *testing.B) {
	const rounds = 5
	tree, _ := filepath.Abs(fullGuixSigs())
	sigs, _ := filepath.Glob(filepath.Join(tree, "*", "*", "*.asc"))
	gnupg, err := os.MkdirTemp("", "gpg")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(gnupg)
	defer exec.Command("gpgconf", "--homedir", gnupg, "--kill", "gpg-agent").Run()
	env := []string{"GNUPGHOME=" + gnupg}
	keys, _ := filepath.Glob(filepath.Join(tree, "builder-keys", "*.gpg"))
	timeCmd(b, env, "gpg", append([]string{"--batch", "--quiet", "--import"}, keys...)...)
	gpgLoop := func() time.Duration {
		start := time.Now()
		for _, s := range sigs {
			timeCmd(b, env, "gpg", "--batch", "--quiet", "--verify", s, strings.TrimSuffix(s, ".asc"))
		}
		return time.Since(start)
	}

	// A tree of just the keys, to make a home that knows them.
	keysOnly := filepath.Join(b.TempDir(), "keys")
	if err := os.CopyFS(filepath.Join(keysOnly, "builder-keys"), os.DirFS(filepath.Join(tree, "builder-keys"))); err != nil {
		b.Fatal(err)
	}
	type round struct{ known, gpg time.Duration }
	var runs []round
	var fresh []time.Duration
	for range b.N {
		for range rounds {
			home := b.TempDir()
			timeCmd(b, nil, rbnodeBin, "--home", home, "import", keysOnly)
			r := round{known: timeCmd(b, nil, rbnodeBin, "--home", home, "import", tree)}
			r.gpg = gpgLoop()
			runs = append(runs, r)
			fresh = append(fresh, timeCmd(b, nil, rbnodeBin, "--home", b.TempDir(), "import", tree))
		}
	}
	ratio := func(r round) float64 { return r.gpg.Seconds() / r.known.Seconds() }
	slices.SortFunc(runs, func(x, y round) int { return cmp.Compare(ratio(x), ratio(y)) })
	med := runs[len(runs)/2]
	n := float64(len(sigs))
	b.ReportMetric(n, "signatures")
	b.ReportMetric(med.gpg.Seconds()*1000, "gpg-loop-ms")
	b.ReportMetric(med.known.Seconds()*1000, "keys-known-ms")
	b.ReportMetric(percentile(fresh, 0.5).Seconds()*1000, "fresh-ms")
	b.ReportMetric(ratio(runs[0]), "x-lowest")
	// The row of make bench's table: signatures a second, rbnode against
	// the gpg loop of the same round.
	b.ReportMetric(n/med.known.Seconds(), "fig_sigs/s")
	b.ReportMetric(n/med.gpg.Seconds(), "anc_sigs/s")
	b.ReportMetric(35, "min_x")
}

// BenchmarkImportMemory imports trees of growing size and reports the
// peak memory of each import process: anonymous memory (heap, Badger's
// memtables), which streaming keeps flat, and the total resident set,
// which also counts the pages of Badger's memory-mapped value log (file
// pages the kernel can reclaim, growing with the data written).
func BenchmarkImportMemory(b *testing.B) {
	for _, size := range []int{8000, 32000, 96000} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			tree, _ := signedTree(b, size, 4)
			b.ResetTimer()
			var anon, rss int64
			for range b.N {
				cmd := exec.Command(rbnodeBin, "--home", b.TempDir(), "import", tree)
				peak, err := runPeak(cmd)
				if err != nil {
					b.Fatalf("import: %v", err)
				}
				anon, rss = max(anon, peak.anonKB), max(rss, peak.hwmKB)
			}
			b.ReportMetric(float64(anon)/1024, "peak-anon-MB")
			b.ReportMetric(float64(rss)/1024, "peak-rss-MB")
		})
	}
}

// peakMemory is what runPeak saw of a process.
type peakMemory struct{ hwmKB, anonKB int64 }

// runPeak runs cmd to its end and returns its peak resident set (VmHWM)
// and peak anonymous memory (RssAnon) from /proc/PID/status, read every
// 20 ms while it runs: the last read is at most 20 ms before it exits.
// Not the ru_maxrss of wait4: Linux counts in a child's the resident set
// of the parent it was forked from (the benchmark process's own, hundreds
// of MB once the fixtures are made), which had two catch-ups of 100,000
// documents both read 378.6 MB.
func runPeak(cmd *exec.Cmd) (peakMemory, error) {
	var p peakMemory
	if err := cmd.Start(); err != nil {
		return p, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		// Start returns once the child runs the new program, so its
		// status is its own from the first read.
		p.hwmKB = max(p.hwmKB, procStatusKB(cmd.Process.Pid, "VmHWM:"))
		p.anonKB = max(p.anonKB, procStatusKB(cmd.Process.Pid, "RssAnon:"))
		select {
		case err := <-done:
			return p, err
		case <-tick.C:
		}
	}
}

// procStatusKB reads one "Name: N kB" line of /proc/PID/status.
func procStatusKB(pid int, name string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == name {
			var v int64
			fmt.Sscan(f[1], &v)
			return v
		}
	}
	return 0
}

// BenchmarkCatchUp: an empty node fetches and verifies the whole guix.sigs
// data from one peer (`rbnode sync --peer`, a light client, against a
// running daemon on loopback), against `git clone --no-local` of a git
// repository holding the same files, in the same run. Target: no slower
// than the clone.
func BenchmarkCatchUp(b *testing.B) {
	tree, _ := filepath.Abs(fullGuixSigs())
	keys, _ := filepath.Glob(filepath.Join(tree, "builder-keys", "*.gpg"))

	// The git side: the same files, one commit.
	repo := filepath.Join(b.TempDir(), "guix.sigs")
	if err := os.CopyFS(repo, os.DirFS(tree)); err != nil {
		b.Fatal(err)
	}
	commitTree(b, repo)

	// The peer: a daemon holding everything.
	peerHome := b.TempDir()
	timeCmd(b, nil, rbnodeBin, append([]string{"--home", peerHome, "trust", "add"}, keys...)...)
	timeCmd(b, nil, rbnodeBin, "--home", peerHome, "import", tree)
	daemon := exec.Command(rbnodeBin, "--home", peerHome, "daemon", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--no-dht")
	if err := daemon.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { daemon.Process.Signal(syscall.SIGTERM); daemon.Wait() }()
	addr := daemonAddr(b, peerHome, 20*time.Second)

	var syncs, clones []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		home := b.TempDir()
		timeCmd(b, nil, rbnodeBin, append([]string{"--home", home, "trust", "add"}, keys...)...)
		dst := filepath.Join(b.TempDir(), "clone")
		b.StartTimer()
		clones = append(clones, timeCmd(b, gitEnv, "git", "clone", "-q", "--no-local", repo, dst))
		syncs = append(syncs, timeCmd(b, nil, rbnodeBin, "--home", home, "sync", "--peer", addr))
		b.StopTimer()
		out, _ := exec.Command(rbnodeBin, "--home", home, "status", "--json").Output()
		var list []node.ReleaseSummary
		json.Unmarshal(out, &list)
		if len(list) == 0 {
			b.Fatalf("the synced node has no releases: %s", out)
		}
		b.StartTimer()
	}
	b.StopTimer()
	s, c := slices.Min(syncs), slices.Min(clones)
	b.ReportMetric(float64(s.Microseconds())/1000, "sync-ms")
	b.ReportMetric(float64(c.Microseconds())/1000, "git-clone-ms")
	b.ReportMetric(float64(s)/float64(c), "x-clone")
}

// BenchmarkReleasePage asks the status web page for one release of a
// store of 10,000 releases by 20 builders (200,000 signed documents), over
// HTTP on loopback, and reports the median and the 99th percentile of the
// time to the last byte of the HTML. Target: under 50 ms. It also reports
// the time of the release list's first page (/), the 100 newest.
func BenchmarkReleasePage(b *testing.B) {
	const releases, builders = 10000, 20
	cfg := node.DefaultConfig()
	cfg.Home = loadStoreFixture(b, releases, builders).home
	n, err := node.Open(cfg, zerolog.Nop(), node.ReadOnly())
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	srv := httptest.NewServer(web.New(web.Config{Releases: n, Documents: n, Builds: n}))
	defer srv.Close()
	get := func(v string) time.Duration {
		start := time.Now()
		resp, err := http.Get(srv.URL + "/release/proj/" + v)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), `id="matrix"`) {
			b.Fatalf("GET %s: %s %v\n%s", v, resp.Status, err, body)
		}
		return d
	}
	get("1.0") // the first read warms the store's caches
	// The release list's first page: the 100 newest releases judged.
	start := time.Now()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	list := time.Since(start)
	var times []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range 100 {
			times = append(times, get(fmt.Sprintf("1.%d", i*97%releases)))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(times, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(times, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(list.Milliseconds()), "list-ms")
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}
