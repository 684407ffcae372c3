package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node"
)

// fillStore makes home's store hold releases x builders signed manifests
// (versions 1.0 .. 1.<releases-1>, each builder trusted), signed on every
// core and ingested in memory, as a daemon of a long-lived network holds
// them. It returns the builders' keys.
func fillStore(b *testing.B, home string, releases, builders int) []*attest.SecretKey {
	b.Helper()
	cfg := node.DefaultConfig()
	cfg.Home = home
	n, err := node.Open(cfg, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	now := time.Now().Add(-time.Hour)
	var keys []*attest.SecretKey
	for i := range builders {
		sk, err := attest.GenerateKey(fmt.Sprintf("builder%02d", i), "", now.Add(-time.Hour), rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		keys = append(keys, sk)
		held, err := n.AddKeys([]*attest.Key{sk.Public()})
		if err != nil {
			b.Fatal(err)
		}
		n.Trust(held, "")
	}
	const chunk = 500 // releases per ingest
	for r0 := 0; r0 < releases; r0 += chunk {
		rs := min(chunk, releases-r0)
		docs := make([]*attest.Document, rs*builders)
		var wg sync.WaitGroup
		var once sync.Once
		var signErr error
		for w := range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for r := w; r < rs; r += runtime.GOMAXPROCS(0) {
					v := fmt.Sprintf("1.%d", r0+r)
					m := &attest.Manifest{Entries: []attest.Entry{
						{SHA256: fmt.Sprintf("%064x", r0+r), Name: "proj-" + v + "-x86_64.tar.gz"},
						{SHA256: fmt.Sprintf("%064x", r0+r+1), Name: "proj-" + v + ".tar.gz"},
					}}
					body := m.Encode()
					for i, sk := range keys {
						sig, err := sk.Sign(body, now)
						if err != nil {
							once.Do(func() { signErr = err })
							return
						}
						docs[r*builders+i] = &attest.Document{Kind: attest.KindManifest, Version: v, Signer: fmt.Sprintf("builder%02d", i), Name: "all.SHA256SUMS", Body: body, Signature: sig}
					}
				}
			})
		}
		wg.Wait()
		if signErr != nil {
			b.Fatal(signErr)
		}
		s, err := n.Ingest(b.Context(), docs, "bench")
		if err != nil || s.Stored != len(docs) {
			b.Fatalf("ingest: %v %+v", err, s)
		}
	}
	return keys
}

// storeFixture is a home made by fillStore, kept in the temporary
// directory (keyed by its size) for later runs, since a million documents
// take many minutes to sign and ingest; its builders' public keys are
// beside it. Benchmarks that run a daemon on it add to its settings (peers
// seen, summaries cached), never to its documents.
type storeFixture struct {
	home string
	keys []string // the builders' armored public keys
}

func loadStoreFixture(b *testing.B, releases, builders int) storeFixture {
	b.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("rbnode-bench-store-%dx%d-v2", releases, builders))
	f := storeFixture{home: filepath.Join(dir, "home")}
	ready := filepath.Join(dir, "ready")
	if _, err := os.Stat(ready); err != nil {
		start := time.Now()
		os.RemoveAll(dir)
		keys := fillStore(b, f.home, releases, builders)
		if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
			b.Fatal(err)
		}
		for i, sk := range keys {
			if err := os.WriteFile(filepath.Join(dir, "keys", fmt.Sprintf("builder%02d.asc", i)), sk.Public().Armored(), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(ready, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		b.Logf("made the %d x %d store in %s (%v)", releases, builders, dir, time.Since(start).Round(time.Second))
	}
	f.keys, _ = filepath.Glob(filepath.Join(dir, "keys", "*.asc"))
	return f
}

// versusFloor runs `rbnode --version` (the floor: starting the process
// at all) and `rbnode args...` interleaved, rounds times each per b.N, and
// returns the median of each.
func versusFloor(b *testing.B, env []string, rounds int, args ...string) (floor, cmd time.Duration) {
	b.Helper()
	timeCmd(b, env, rbnodeBin, args...) // the first open settles the store
	var fs, cs []time.Duration
	for range max(1, b.N) {
		for range rounds {
			fs = append(fs, timeCmd(b, env, rbnodeBin, "--version"))
			cs = append(cs, timeCmd(b, env, rbnodeBin, args...))
		}
	}
	return percentile(fs, 0.5), percentile(cs, 0.5)
}

// statusClaims are the store sizes of BenchmarkStatusScale: 10,000 and
// 100,000 claims, and 1,000,000 with RBNODE_BENCH_SCALE=1 (the store takes
// many minutes to make the first time; it is kept in the temporary
// directory).
func statusClaims() []int {
	if os.Getenv("RBNODE_BENCH_SCALE") == "1" {
		return []int{10_000, 100_000, 1_000_000}
	}
	return []int{10_000, 100_000}
}

// BenchmarkStatusScale times `rbnode status VERSION` (no daemon: the
// command opens the store read-only) on stores of 10,000, 100,000 and
// 1,000,000 claims (releases of 20 builders), against `rbnode --version`
// in the same run, interleaved; medians of 20 each. Target: within 1.5x
// of the floor at every size.
func BenchmarkStatusScale(b *testing.B) {
	for _, claims := range statusClaims() {
		b.Run(fmt.Sprintf("claims=%d", claims), func(b *testing.B) {
			releases := claims / scaleBuilders
			f := loadStoreFixture(b, releases, scaleBuilders)
			env := []string{"RBNODE_HOME=" + f.home}
			version := fmt.Sprintf("1.%d", releases/2)
			out, err := exec.Command(rbnodeBin, "--home", f.home, "status", version, "--json").Output()
			var r attest.Report
			if err != nil || json.Unmarshal(out, &r) != nil || r.Verdict != attest.Consensus || len(r.Builders) != scaleBuilders {
				b.Fatalf("status %s: %v\n%s", version, err, out)
			}
			floor, status := versusFloor(b, env, 20, "status", version)
			b.ReportMetric(float64(status.Microseconds())/1000, "fig_ms")
			b.ReportMetric(float64(floor.Microseconds())/1000, "anc_ms")
			b.ReportMetric(1.5, "max_x")
		})
	}
}

// BenchmarkStatusList times `rbnode status` with no version (every
// release's line, read from the summary cache) on a store of 10,000
// releases by 20 builders, against `rbnode --version` in the same run,
// interleaved; medians of 20 each. Target: within 2x of the floor.
func BenchmarkStatusList(b *testing.B) {
	const releases = 10_000
	f := loadStoreFixture(b, releases, scaleBuilders)
	// The list as an import or a daemon leaves it cached (a fixture made
	// by an older rbnode may lack it).
	cfg := node.DefaultConfig()
	cfg.Home = f.home
	n, err := node.Open(cfg, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	_, err = n.Releases("", 0)
	n.Close()
	if err != nil {
		b.Fatal(err)
	}
	env := []string{"RBNODE_HOME=" + f.home}
	out, err := exec.Command(rbnodeBin, "--home", f.home, "status", "--json").Output()
	var list []node.ReleaseSummary
	if err != nil || json.Unmarshal(out, &list) != nil || len(list) != releases || list[0].Verdict != attest.Consensus {
		b.Fatalf("status lists %d releases, want %d: %v", len(list), releases, err)
	}
	floor, status := versusFloor(b, env, 20, "status")
	b.ReportMetric(float64(status.Microseconds())/1000, "fig_ms")
	b.ReportMetric(float64(floor.Microseconds())/1000, "anc_ms")
	b.ReportMetric(2, "max_x")
}

// memorySizes are the store sizes of BenchmarkDaemonMemory: 100,000
// documents, and 1,000,000 with RBNODE_BENCH_SCALE=1.
func memorySizes() []int {
	if os.Getenv("RBNODE_BENCH_SCALE") == "1" {
		return []int{100_000, 1_000_000}
	}
	return []int{100_000}
}

// BenchmarkDaemonMemory runs a daemon on a store of 100,000 documents
// (1,000,000 with RBNODE_BENCH_SCALE=1; releases of 20 builders) while a
// light client on loopback catches up with all of it (`rbnode sync
// --peer`, every signature checked) and status queries go through its
// local API (20 releases, then the whole release list). The row is the
// daemon's peak resident set, VmHWM from /proc/PID/status read before it
// stops, against 256 MB. Sampled every 50 ms beside it: the peak of its
// anonymous memory (heap, Badger's tables and memtables) and of its
// file pages (Badger's memory-mapped files).
func BenchmarkDaemonMemory(b *testing.B) {
	for _, docs := range memorySizes() {
		b.Run(fmt.Sprintf("docs=%d", docs), func(b *testing.B) {
			releases := docs / scaleBuilders
			f := loadStoreFixture(b, releases, scaleBuilders)
			daemon := exec.Command(rbnodeBin, "--home", f.home, "daemon", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--no-dht")
			if err := daemon.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { daemon.Process.Signal(syscall.SIGTERM); daemon.Wait() }()
			pid := daemon.Process.Pid
			var anon, file int64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						anon = max(anon, procStatusKB(pid, "RssAnon:"))
						file = max(file, procStatusKB(pid, "RssFile:"))
					}
				}
			}()
			addr := daemonAddr(b, f.home, 2*time.Minute)
			for range max(1, b.N) {
				client := filepath.Join(b.TempDir(), "home")
				timeCmd(b, nil, rbnodeBin, append([]string{"--home", client, "trust", "add"}, f.keys...)...)
				start := time.Now()
				timeCmd(b, nil, rbnodeBin, "--home", client, "sync", "--peer", addr)
				b.Logf("%d documents caught up in %v", docs, time.Since(start).Round(time.Millisecond))
				for r := 0; r < releases; r += releases / 20 {
					timeCmd(b, nil, rbnodeBin, "--home", f.home, "status", fmt.Sprintf("1.%d", r))
				}
				out, err := exec.Command(rbnodeBin, "--home", f.home, "status", "--json").Output()
				if got := strings.Count(string(out), `"version"`); err != nil || got != releases {
					b.Fatalf("the daemon lists %d releases, want %d: %v", got, releases, err)
				}
				out, err = exec.Command(rbnodeBin, "--home", client, "status", "--json").Output()
				if got := strings.Count(string(out), `"version"`); err != nil || got != releases {
					b.Fatalf("the client caught up with %d releases, want %d: %v", got, releases, err)
				}
			}
			hwm := procStatusKB(pid, "VmHWM:")
			close(stop)
			<-sampled
			b.ReportMetric(float64(hwm)/1024, "fig_MB")
			b.ReportMetric(256, "anc_MB")
			b.ReportMetric(1, "max_x")
			b.ReportMetric(float64(anon)/1024, "peak-anon-MB")
			b.ReportMetric(float64(file)/1024, "peak-file-MB")
		})
	}
}
