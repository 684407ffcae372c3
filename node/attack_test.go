package node

// The hostile-peer harness: a peer written against docs/protocol.md, with
// no rbnode node behind it, attacks a real daemon. Each attack is a test;
// `make attack` runs them at full size (RBNODE_ATTACK=long), `make test`
// at a size that takes seconds. docs/threat-model.md records the figures.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/multiformats/go-multiaddr"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/gossip"
	"github.com/rbnode/rbnode/node/store"
)

// longAttack is set by `make attack`: full-size floods.
var longAttack = os.Getenv("RBNODE_ATTACK") == "long"

// scale picks the short or the long size of an attack.
func scale(short, long int) int {
	if longAttack {
		return long
	}
	return short
}

// attacker is a hostile peer: a bare gossip.Network whose handler accepts
// anything, so it publishes whatever it is given (its inventory is empty:
// sync attacks use raw hosts).
type attacker struct {
	net *gossip.Network
	inv *memInventory
}

// memInventory is an Inventory in memory, ids by envelopeID.
type memInventory struct {
	mu   sync.RWMutex
	ids  []attest.ID // ascending
	data map[attest.ID][]byte
}

func (m *memInventory) Range(prefix []byte, fn func(id [32]byte) bool) error {
	m.mu.RLock()
	ids := slices.Clone(m.ids)
	m.mu.RUnlock()
	for _, id := range ids {
		if strings.HasPrefix(string(id[:]), string(prefix)) && !fn(id) {
			break
		}
	}
	return nil
}

func (m *memInventory) Get(id [32]byte) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if b, ok := m.data[id]; ok {
		return b, nil
	}
	return nil, store.ErrNotFound
}

// newAttacker starts a hostile peer on 127.0.0.1 (or on mn) that dials
// the given peers.
func newAttacker(t *testing.T, mn mocknet.Mocknet, dial ...string) *attacker {
	t.Helper()
	a := &attacker{inv: &memInventory{data: map[attest.ID][]byte{}}}
	cfg := gossip.DefaultConfig()
	cfg.Listen = []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")}
	cfg.MDNS, cfg.DHT = false, false
	cfg.SyncInterval = -1
	cfg.ContentID = envelopeID
	cfg.MaxMessageSize = gossip.MaxMessageSizeLimit
	cfg.Logger = testLogger(t).With().Str("role", "attacker").Logger()
	if mn != nil {
		cfg.HostFactory = func(...libp2p.Option) (host.Host, error) { return mn.GenPeer() }
	}
	peers, err := ParsePeers(dial)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Bootstrap = peers
	accept := func(context.Context, peer.ID, []byte) gossip.Result { return gossip.Accept }
	a.net, err = gossip.New(cfg, accept, a.inv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.net.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; a.net.Close() })
	return a
}

// floodUntil publishes envelopes from next (called with 0, 1, 2, ...)
// until done holds, and returns how many it sent. It may run on any
// goroutine: a timeout is an Errorf.
func (a *attacker) floodUntil(t *testing.T, limit time.Duration, next func(i int) []byte, done func() bool) int {
	t.Helper()
	deadline := time.Now().Add(limit)
	i := 0
	for ; !done(); i++ {
		if time.Now().After(deadline) {
			t.Errorf("after %d messages in %v: the attack's outcome did not come", i, limit)
			return i
		}
		_ = a.net.Publish(t.Context(), next(i))
	}
	return i
}

// underAttack starts a daemon that trusts the given builders and an
// attacker that has it as a topic peer.
func underAttack(t *testing.T, trusted ...builderKey) (*testDaemon, *attacker) {
	t.Helper()
	return underAttackWith(t, daemonSetup{}, trusted...)
}

// underAttackWith is underAttack with a setup.
func underAttackWith(t *testing.T, setup daemonSetup, trusted ...builderKey) (*testDaemon, *attacker) {
	t.Helper()
	td := startDaemonWith(t, t.TempDir(), nil, nil, setup, trusted...)
	td.seed(t, trusted[0])
	a := newAttacker(t, nil, td.addr(t))
	a.waitSubscribed(t, td)
	return td, a
}

// waitSubscribed waits until the attacker knows td subscribes to the
// topic, so that what it publishes reaches td.
func (a *attacker) waitSubscribed(t *testing.T, td *testDaemon) {
	t.Helper()
	waitFor(t, 20*time.Second, "the attacker to see the daemon on the topic", func() bool {
		return slices.Contains(a.net.TopicPeers(), td.d.Network().ID())
	})
}

// envelope signs body as b and wraps it with b's key.
func (b builderKey) envelope(t testing.TB, d attest.Document) []byte {
	t.Helper()
	sig, err := b.sk.Sign(d.Body, testNow.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	d.Signature = sig
	return (&attest.Envelope{Doc: d, Key: b.sk.Public().Bytes()}).Encode()
}

// manifestEnvelope is a signed SHA256SUMS of about size bytes for
// bitcoin <version>, distinct per seq.
func (b builderKey) manifestEnvelope(t testing.TB, version string, seq, size int) []byte {
	t.Helper()
	m := &attest.Manifest{}
	for i, n := 0, 0; n < size; i++ {
		e := attest.Entry{
			SHA256: fmt.Sprintf("%064x", seq*100000+i),
			Name:   fmt.Sprintf("bitcoin-%s-part%05d-x86_64-linux-gnu.tar.gz", version, i),
		}
		m.Entries = append(m.Entries, e)
		n += len(e.SHA256) + 3 + len(e.Name)
	}
	return b.envelope(t, attest.Document{Kind: attest.KindManifest, Version: version, Signer: b.name, Name: "all.SHA256SUMS", Body: m.Encode()})
}

// attestationEnvelope is a signed attestation of the stand-in release.
func (b builderKey) attestationEnvelope(t testing.TB, version, artifactSHA string) []byte {
	t.Helper()
	return b.envelope(t, attest.Document{Kind: attest.KindAttestation, Name: "attestation.json", Body: b.attestation(version, artifactSHA, commitA, "rustc 1.82.0").Encode()})
}

// peakRSS is the process's peak resident memory so far, in MiB.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb >> 10
		}
	}
	return -1
}

// diskUsed is the space the files under dir take on disk.
func diskUsed(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		var st syscall.Stat_t
		if err == nil && !d.IsDir() && syscall.Stat(p, &st) == nil {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

// report logs an attack's figures in the shape of docs/threat-model.md.
// The node survived if the test gets to report: a crash of the daemon is
// a crash of the test.
func report(t *testing.T, attack string, tried, lost int, disk int64) {
	reportAs(t, attack, "attacker included", tried, lost, disk)
}

// reportWithout is report for an attack whose attacker is another process.
func reportWithout(t *testing.T, attack string, tried, lost int, disk int64) {
	reportAs(t, attack, "attacker in another process", tried, lost, disk)
}

func reportAs(t *testing.T, attack, note string, tried, lost int, disk int64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("ATTACK %s: tried %d, survived yes, lost %d, peak RSS %d MiB (heap now %d MiB; %s), disk %d KiB",
		attack, tried, lost, peakRSS(), ms.HeapAlloc>>20, note, disk>>10)
}

// seed stores a trusted document before an attack (imported, as a
// release manager would), so that lost can tell whether the attack cost
// the node anything it held.
func (td *testDaemon) seed(t *testing.T, b builderKey) {
	t.Helper()
	tree := t.TempDir()
	b.writeAttestation(t, tree, b.attestation("0.0.1", sha('5'), commitA, "rustc 1.82.0"))
	if _, err := td.n.Import(t.Context(), tree, ImportOptions{Document: func(id attest.ID) { td.baseline = append(td.baseline, id) }}); err != nil {
		t.Fatal(err)
	}
}

// lost counts the seeded documents the node no longer holds or no longer
// judges as before; any is a test failure.
func lost(t *testing.T, td *testDaemon) int {
	t.Helper()
	n := 0
	for _, id := range td.baseline {
		if !td.has(id) {
			n++
		}
	}
	if r, err := td.n.Status("cuprated", "0.0.1", 1); err != nil || r.Verdict != attest.Consensus {
		n = max(n, 1)
	}
	if n > 0 {
		t.Errorf("the attack cost the node %d of the documents it held before", n)
	}
	return n
}

// quarantined counts td's stored documents by keys it does not trust.
func quarantined(td *testDaemon) int {
	n, _ := td.n.Store().Untrusted()
	return n
}

// TestAttackOversizedDocuments: documents over max_document_size are
// refused at import and from the wire, where the sender is banned; none
// is stored.
func TestAttackOversizedDocuments(t *testing.T) {
	alice := newBuilder(t, "alice")
	// Import: an 80 KB manifest by a trusted key is one rejection.
	n := openTestNode(t)
	trustBuilders(t, n, alice)
	tree := t.TempDir()
	m := &attest.Manifest{}
	for i := 0; len(m.Encode()) < 80<<10; i++ {
		m.Entries = append(m.Entries, attest.Entry{SHA256: fmt.Sprintf("%064x", i), Name: fmt.Sprintf("bitcoin-24.0-part%05d.tar.gz", i)})
	}
	alice.writeManifest(t, tree, "24.0", "all.SHA256SUMS", m)
	sum := mustImport(t, n, tree)
	if sum.Stored != 0 || sum.ByReason["too_large"] != 1 {
		t.Fatalf("import of an 80 KB manifest: %+v", sum.ImportProgress)
	}

	// The wire: a peer sends 80 KB and 480 KB documents by a trusted key.
	td, a := underAttack(t, alice)
	sizes := []int{80 << 10, 480 << 10}
	var sent []attest.ID
	tried := a.floodUntil(t, 30*time.Second, func(i int) []byte {
		env := alice.manifestEnvelope(t, "24.0", i, sizes[i%2])
		sent = append(sent, envelopeID(env))
		return env
	}, func() bool { return td.d.Network().Banned(a.net.ID()) })
	for _, id := range sent {
		if td.has(id) {
			t.Fatalf("an oversized document %s was stored", id.Short())
		}
	}
	report(t, "oversized documents", tried, lost(t, td), diskUsed(td.home))
}

// TestAttackUntrustedFlood: a fresh, untrusted key's documents from one
// peer are kept up to the peer's budget (untrusted_per_minute); past it
// the peer is throttled, then banned. The attacker is another process
// (TestAttackerProcess), so that the peak RSS reported is the daemon's
// and the harness's: an attacker's pubsub keeps what it publishes.
func TestAttackUntrustedFlood(t *testing.T) {
	alice := newBuilder(t, "alice")
	td := startDaemonWith(t, t.TempDir(), nil, nil, daemonSetup{}, alice)
	td.seed(t, alice)
	a := startAttackerProcess(t, td.addr(t), scale(4<<10, 60<<10))
	start := time.Now()
	waitFor(t, 60*time.Second, "the daemon to ban the attacker", func() bool { return td.d.Network().Banned(a.id) })
	tried := a.stop(t)
	q := quarantined(td)
	budget := td.n.Config().UntrustedPerMinute
	if refilled := int(float64(budget) * time.Since(start).Minutes()); q > budget+refilled+5 {
		t.Fatalf("%d documents quarantined from one peer in %v, budget %d a minute", q, time.Since(start), budget)
	}
	// An honest peer still gets through.
	id := publishDoc(t, td, alice, "24.0", sha('a'))
	if !td.has(id) {
		t.Fatal("the daemon stopped storing trusted documents")
	}
	// What the stranger held in the daemon's memory while it waited for
	// verification is bounded by its share of the queue.
	_, queued := td.d.Network().Queued()
	if share := gossip.DefaultQueueShare; queued > share {
		t.Errorf("%d KiB of the flood waited for validation at once, over one peer's share of %d KiB", queued>>10, share>>10)
	}
	t.Logf("ATTACK untrusted flood: at most %d KiB waited for validation at once", queued>>10)
	reportWithout(t, "untrusted flood", tried, lost(t, td), diskUsed(td.home))
}

// The environment of TestAttackerProcess: the daemon to dial, and the
// size of the untrusted manifests to flood it with.
const (
	attackerDialEnv = "RBNODE_ATTACKER_DIAL"
	attackerSizeEnv = "RBNODE_ATTACKER_SIZE"
)

// attackerProcess is a flooding attacker running in a child process.
type attackerProcess struct {
	id    peer.ID
	cmd   *exec.Cmd
	lines chan string // the child's ATTACKER lines; closed at its EOF
}

// startAttackerProcess runs this test binary again as TestAttackerProcess,
// flooding addr with untrusted manifests of size bytes, and returns once
// the child sees the daemon on the topic (it floods from then on).
func startAttackerProcess(t *testing.T, addr string, size int) *attackerProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAttackerProcess$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), attackerDialEnv+"="+addr, fmt.Sprintf("%s=%d", attackerSizeEnv, size))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &attackerProcess{cmd: cmd, lines: make(chan string, 16)}
	go func() {
		defer close(a.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l, ok := strings.CutPrefix(sc.Text(), "ATTACKER "); ok {
				a.lines <- l
			} else if sc.Text() != "PASS" {
				fmt.Fprintln(os.Stderr, "attacker process:", sc.Text())
			}
		}
	}()
	t.Cleanup(a.kill)
	l := a.next(t, 60*time.Second, "ready ")
	if a.id, err = peer.Decode(l); err != nil {
		t.Fatalf("attacker process: %q: %v", l, err)
	}
	return a
}

// next waits for the child's next line with the given prefix and returns
// the rest; a test failure if the child ends or limit passes first.
func (a *attackerProcess) next(t *testing.T, limit time.Duration, prefix string) string {
	t.Helper()
	select {
	case l, ok := <-a.lines:
		if v, found := strings.CutPrefix(l, prefix); ok && found {
			return v
		}
		t.Fatalf("attacker process: wanted %q, got %q (open %v)", prefix, l, ok)
	case <-time.After(limit):
		t.Fatalf("attacker process: no %q line in %v", prefix, limit)
	}
	return ""
}

// stop waits for the child to report how many messages it sent (it stops
// when the daemon closes its connection), then stops it.
func (a *attackerProcess) stop(t *testing.T) int {
	t.Helper()
	sent := -1
	if _, err := fmt.Sscan(a.next(t, 30*time.Second, "sent "), &sent); err != nil {
		t.Errorf("attacker process: its count: %v", err)
	}
	a.kill()
	if ru, ok := a.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		t.Logf("the attacker process's peak RSS: %d MiB", ru.Maxrss>>10)
	}
	return sent
}

// kill ends the child, if it still runs, and reaps it.
func (a *attackerProcess) kill() {
	if a.cmd.ProcessState == nil {
		_ = a.cmd.Process.Kill()
		_ = a.cmd.Wait()
	}
}

// TestAttackerProcess is the attacker of TestAttackUntrustedFlood in its
// own process: it skips unless attackerDialEnv is set. It floods the
// daemon with a fresh, untrusted key's manifests until the daemon closes
// its connection, and prints "ATTACKER ready <its peer id>" before and
// "ATTACKER sent <count>" after.
func TestAttackerProcess(t *testing.T) {
	dial := os.Getenv(attackerDialEnv)
	if dial == "" {
		t.Skip("run by TestAttackUntrustedFlood in a child process")
	}
	size, err := strconv.Atoi(os.Getenv(attackerSizeEnv))
	if err != nil {
		t.Fatal(err)
	}
	mallory := newBuilder(t, "mallory")
	daemon := addrInfo(t, dial).ID
	a := newAttacker(t, nil, dial)
	onTopic := func() bool { return slices.Contains(a.net.TopicPeers(), daemon) }
	waitFor(t, 20*time.Second, "the attacker to see the daemon on the topic", onTopic)
	fmt.Printf("ATTACKER ready %s\n", a.net.ID())
	sent := a.floodUntil(t, 2*time.Minute, func(i int) []byte {
		return mallory.manifestEnvelope(t, "24.0", i, size)
	}, func() bool { return !onTopic() })
	fmt.Printf("ATTACKER sent %d\n", sent)
}

// smallTmpfs mounts a tmpfs of size bytes for the test, or skips it when
// mounting is not allowed (not root, or a container without the right).
func smallTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): run as root to test a full disk", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// TestAttackDiskFill: with the home on a 64 MiB tmpfs, a flood of large
// untrusted documents stops at the disk reserve: the daemon refuses
// network documents, logs it, keeps serving reads and does not crash.
// When the rest of the disk is filled by someone else, import fails with
// ErrDiskFull, status still reads, and afterwards the store opens and
// gives the same answers.
func TestAttackDiskFill(t *testing.T) {
	alice, bob := newBuilder(t, "alice"), newBuilder(t, "bob")
	mnt := smallTmpfs(t, 64<<20)
	home := filepath.Join(mnt, "home")
	cfg := DefaultConfig()
	cfg.Home, cfg.Listen, cfg.MDNS, cfg.DHT = home, []string{"/ip4/127.0.0.1/tcp/0"}, false, false
	cfg.DiskReserve = 24 << 20
	cfg.UntrustedPerMinute = 1 << 20 // the disk, not the peer budget, is under test
	n, err := Open(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	trustBuilders(t, n, alice)
	tree := t.TempDir()
	alice.writeAttestation(t, tree, alice.attestation("0.9.0", sha('a'), commitA, "rustc 1.82.0"))
	mustImport(t, n, tree)
	before, err := n.Status("", "0.9.0", 1)
	if err != nil || before.Verdict != attest.Consensus {
		t.Fatalf("status before: %v %+v", err, before)
	}
	d, err := NewDaemon(n, DaemonOptions{Socket: "-"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	td := &testDaemon{home: home, n: n, d: d, stop: cancel, done: done}
	t.Cleanup(td.shutdown)

	a := newAttacker(t, nil, td.addr(t))
	a.waitSubscribed(t, td)
	var peak int64
	tried := a.floodUntil(t, 120*time.Second, func(i int) []byte {
		// Paced to what the daemon verifies: one peer's share of its
		// validation queue is bounded, and the disk is under test here.
		for q, _ := td.d.Network().Queued(); q > 1<<20 && !td.d.diskLow.Load(); q, _ = td.d.Network().Queued() {
			time.Sleep(time.Millisecond)
		}
		return newBuilderCached(t, i/50).manifestEnvelope(t, "24.0", i, 60<<10)
	}, func() bool {
		peak = max(peak, diskUsed(mnt))
		return td.d.diskLow.Load()
	})
	free, _ := store.FreeSpace(mnt)
	if free < 16<<20 {
		t.Fatalf("the flood left %d MiB free, under what Badger needs to close", free>>20)
	}
	// Reads go on while the disk is low.
	during, err := td.n.Status("", "0.9.0", 1)
	if err != nil || during.Verdict != before.Verdict {
		t.Fatalf("status while the disk is low: %v %+v", err, during)
	}
	// And a large trusted document from the network is refused, not
	// crashed on. Badger may free space at any moment after the flood (a
	// flushed memtable's log is deleted), lifting the disk back over the
	// reserve: ballast holds it under, and only a try during which it
	// stayed under is judged.
	for i := 1; ; i++ {
		holdFree(t, mnt, 18<<20)
		res := td.d.handle(t.Context(), a.net.ID(), alice.manifestEnvelope(t, "0.9.1", i, 60<<10))
		if free, _ := store.FreeSpace(mnt); free >= int64(cfg.DiskReserve) {
			if i == 20 {
				t.Fatalf("could not hold the disk under the reserve: %d MiB free", free>>20)
			}
			continue
		}
		if res != gossip.Ignore {
			t.Fatalf("a document while the disk is low: %s, want ignore", res)
		}
		break
	}
	td.shutdown()

	// Someone else fills the disk to the brim.
	fillDisk(t, filepath.Join(mnt, "filler"))
	tree2 := t.TempDir()
	bob.writeAttestation(t, tree2, bob.attestation("0.9.0", sha('a'), commitA, "rustc 1.82.0"))
	if _, err := Open(cfg, testLogger(t)); !errorsIs(err, ErrDiskFull) {
		t.Fatalf("writable open of a full disk: %v, want ErrDiskFull", err)
	}
	ro, err := Open(cfg, testLogger(t), ReadOnly())
	if err != nil {
		t.Fatalf("read-only open of a full disk: %v", err)
	}
	after, err := ro.Status("", "0.9.0", 1)
	ro.Close()
	if err != nil || after.Verdict != before.Verdict || len(after.Builders) != len(before.Builders) {
		t.Fatalf("status on a full disk: %v %+v", err, after)
	}
	// Space freed: the store opens for writing, import works again.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	n2, err := Open(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	again, err := n2.Status("", "0.9.0", 1)
	if err != nil || again.Verdict != before.Verdict {
		t.Fatalf("status after: %v %+v", err, again)
	}
	report(t, "disk fill (64 MiB tmpfs)", tried, 0, peak) // lost: the status checks above
}

var builderCache sync.Map

// newBuilderCached returns the i-th of a set of throwaway keys.
func newBuilderCached(t testing.TB, i int) builderKey {
	if b, ok := builderCache.Load(i); ok {
		return b.(builderKey)
	}
	b := newBuilder(t, fmt.Sprintf("sybil%d", i))
	builderCache.Store(i, b)
	return b
}

// holdFree appends to a ballast file until at most target bytes are free.
func holdFree(t *testing.T, mnt string, target int64) {
	t.Helper()
	free, err := store.FreeSpace(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if free <= target {
		return
	}
	f, err := os.OpenFile(filepath.Join(mnt, "ballast"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, free-target)); err != nil {
		t.Fatal(err)
	}
}

// fillDisk writes a file until the file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	for { // the last partial pages
		if _, err := f.Write(buf[:512]); err != nil {
			return
		}
	}
}

// rawHost is a bare libp2p host on 127.0.0.1 with a fresh identity: a
// throwaway attacker that speaks the sync protocol by hand.
func rawHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func addrInfo(t *testing.T, addr string) peer.AddrInfo {
	t.Helper()
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		t.Fatal(err)
	}
	return *ai
}

// slowLoris opens a sync stream to target and sends one byte of a frame
// header, then nothing: it holds a serving slot while it can.
func slowLoris(t *testing.T, h host.Host, target peer.AddrInfo) network.Stream {
	t.Helper()
	if err := h.Connect(t.Context(), target); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(t.Context(), target.ID, protocol.ID(gossip.SyncProtocol("cuprated")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte{0x80}); err != nil { // a varint that never ends
		t.Fatal(err)
	}
	return s
}

// staller serves the sync protocol by reading requests and never
// answering; it counts the sessions it holds.
func staller(t *testing.T, held *atomic.Int32) host.Host {
	h := rawHost(t)
	h.SetStreamHandler(protocol.ID(gossip.SyncProtocol("cuprated")), func(s network.Stream) {
		held.Add(1)
		_, _ = io.Copy(io.Discard, s)
		held.Add(-1)
	})
	return h
}

// heavyReconcile is a Reconcile request asking the root bucket 256 times:
// on an unguarded server each item ranges over the whole inventory.
func heavyReconcile() []byte {
	body := []byte{1}
	body = binary.AppendUvarint(body, 256)
	for range 256 {
		body = append(body, 0, 0) // depth 0, no prefix bytes; summary count 0
	}
	return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestAttackSyncDenial: slow-loris streams from 16 throwaway identities,
// stalling servers and heavy requests do not deny sync. An honest light
// client is served while the loris streams hold every slot; a node whose
// outgoing sessions are all held by stalling servers gives up on them
// within seconds and fetches from an honest peer; heavy requests get their
// sender banned; an honest document published meanwhile reaches an honest
// node within 2 s; and every attacker is scored down.
func TestAttackSyncDenial(t *testing.T) {
	alice := newBuilder(t, "alice")
	a := startDaemon(t, t.TempDir(), nil, nil, alice)
	a.seed(t, alice)
	tree := t.TempDir()
	for i := range 50 {
		alice.writeAttestation(t, tree, alice.attestation(fmt.Sprintf("0.%d.0", i), sha('a'), commitA, "rustc 1.82.0"))
	}
	mustImport(t, a.n, tree)
	aInfo := addrInfo(t, a.addr(t))
	cpu0 := cpuTime()

	// Heavy requests from another throwaway identity.
	heavy := rawHost(t)
	if err := heavy.Connect(t.Context(), aInfo); err != nil {
		t.Fatal(err)
	}
	hs, err := heavy.NewStream(t.Context(), aInfo.ID, protocol.ID(gossip.SyncProtocol("cuprated")))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range 64 {
			if _, err := hs.Write(heavyReconcile()); err != nil {
				return
			}
		}
	}()

	waitFor(t, 20*time.Second, "the heavy asker to be banned", func() bool { return a.d.Network().Banned(heavy.ID()) })

	// 16 slow-loris identities take every serving slot of a.
	var loris []host.Host
	for range 16 {
		h := rawHost(t)
		slowLoris(t, h, aInfo)
		loris = append(loris, h)
	}
	// An honest light client is served despite the loris streams.
	c := newAttacker(t, nil) // a bare node: here an honest, empty asker
	start := time.Now()
	var st gossip.SyncStats
	waitFor(t, 20*time.Second, "an honest sync with a to be served", func() bool {
		st, err = c.net.SyncWith(t.Context(), aInfo)
		return err == nil
	})
	served := time.Since(start)
	if st.Fetched != 50+len(a.baseline) || served > gossip.DefaultIdleTimeout {
		t.Fatalf("honest sync served after %v (loris streams time out after %v): %+v", served, gossip.DefaultIdleTimeout, st)
	}
	// b's outgoing sessions are all held by stalling servers when a
	// connects; it still gets a's documents within seconds.
	var held atomic.Int32
	var stallers []host.Host
	for range 4 {
		stallers = append(stallers, staller(t, &held))
	}
	b := startDaemon(t, t.TempDir(), nil, nil, alice)
	b.seed(t, alice)
	bInfo := addrInfo(t, b.addr(t))
	for _, s := range stallers {
		if err := s.Connect(t.Context(), bInfo); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "b's four sync sessions to be held by stallers", func() bool { return held.Load() >= 4 })
	ids, _ := a.n.Store().Release("cuprated", "0.7.0")
	want := ids[0].Record.ID
	start = time.Now()
	if _, err := a.d.Network().SyncWith(t.Context(), bInfo); err != nil { // connects a and b
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "b to fetch a's documents past the stallers", func() bool { return b.has(want) })
	caughtUp := time.Since(start)
	if caughtUp > 3*gossip.DefaultIdleTimeout {
		t.Fatalf("b caught up after %v", caughtUp)
	}

	// While loris streams come back, an honest document crosses in 2 s.
	for _, h := range loris[:8] {
		slowLoris(t, h, aInfo)
	}
	waitFor(t, 20*time.Second, "b on a's topic", func() bool {
		return slices.Contains(b.d.Network().TopicPeers(), a.d.Network().ID())
	})
	start = time.Now()
	id := publishDoc(t, a, alice, "1.0.0", sha('c'))
	waitFor(t, 20*time.Second, "b to store the new document", func() bool { return b.has(id) })
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("an honest document took %v to cross", took)
	}

	// Every attacker is scored down.
	var spared []string
	t.Cleanup(func() {
		if t.Failed() && len(spared) > 0 {
			t.Logf("not penalised: %v", spared)
		}
	})
	waitFor(t, 30*time.Second, "the stalling servers and loris streams to be penalised", func() bool {
		spared = spared[:0]
		for i, s := range stallers {
			if b.d.Network().Penalty(s.ID()) <= 0 {
				spared = append(spared, fmt.Sprintf("staller %d", i))
			}
		}
		for i, h := range loris[8:] { // held until the idle timeout: not evicted
			if a.d.Network().Penalty(h.ID()) <= 0 && !a.d.Network().Banned(h.ID()) {
				spared = append(spared, fmt.Sprintf("loris %d", 8+i))
			}
		}
		return len(spared) == 0
	})
	t.Logf("honest sync served after %v; b caught up past 4 stallers in %v; CPU %v", served, caughtUp, cpuTime()-cpu0)
	report(t, "sync denial", 16+1+4, lost(t, a)+lost(t, b), diskUsed(a.home))
}

// TestAttackSyncBudgetHog: a stranger that downloads a node's whole store
// again and again, coming back at once each time it is refused for its
// work budget, is penalised and banned; an honest empty node catching up
// from the same daemon meanwhile gets everything, and is not penalised.
func TestAttackSyncBudgetHog(t *testing.T) {
	alice := newBuilder(t, "alice")
	docs := 50
	if longAttack {
		docs = 400
	}
	// A burst of about four copies of the store (the honest asker below
	// runs a catch-up and, being a running node, its own sync on
	// connecting, at once), next to nothing a minute.
	a := startDaemonWith(t, t.TempDir(), nil, nil, daemonSetup{opts: DaemonOptions{SyncWorkPerMinute: 1 << 10, SyncWorkBurst: int64(docs) * 8 << 10}}, alice)
	a.seed(t, alice)
	tree := t.TempDir()
	for i := range docs {
		alice.writeAttestation(t, tree, alice.attestation(fmt.Sprintf("0.%d.0", i), sha('a'), commitA, "rustc 1.82.0"))
	}
	mustImport(t, a.n, tree)
	aInfo := addrInfo(t, a.addr(t))

	hog := newAttacker(t, nil) // stores nothing: each sync fetches it all again
	tries, refused := 0, 0
	for ; tries < 40 && !a.d.Network().Banned(hog.net.ID()); tries++ {
		_, err := hog.net.SyncWith(t.Context(), aInfo)
		if se := (*gossip.SyncError)(nil); errors.As(err, &se) && se.RetryAfter > 0 {
			refused++
		}
	}
	if refused == 0 || !a.d.Network().Banned(hog.net.ID()) {
		t.Fatalf("after %d downloads the hog was refused %d times, banned %v, penalty %v",
			tries, refused, a.d.Network().Banned(hog.net.ID()), a.d.Network().Penalty(hog.net.ID()))
	}
	honest := newAttacker(t, nil) // a bare node: here an honest, empty asker
	stats, err := honest.net.CatchUp(t.Context(), []peer.AddrInfo{aInfo})
	if err != nil || stats[0].Fetched != docs+len(a.baseline) {
		t.Fatalf("honest catch-up after the hog: %v, %+v", err, stats)
	}
	if p := a.d.Network().Penalty(honest.net.ID()); p != 0 {
		t.Errorf("the honest asker was penalised %v", p)
	}
	t.Logf("the hog downloaded %d times, was refused %d times, then banned; an honest catch-up fetched %d", tries, refused, stats[0].Fetched)
	report(t, "sync budget hog", tries, lost(t, a), diskUsed(a.home))
}

// TestAttackEquivocationAcrossPartition: a builder signs two different
// attestations of one release and publishes one on each side of a
// partition, each side a line of nodes. When a single link heals the
// partition, both documents reach every node within seconds: what a node
// first learns through sync, it gossips on.
func TestAttackEquivocationAcrossPartition(t *testing.T) {
	alice := newBuilder(t, "alice")
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	var nodes []*testDaemon
	for range 6 {
		nodes = append(nodes, startDaemon(t, t.TempDir(), mn, nil, alice))
	}
	link := func(a, b *testDaemon) { mockLink(t, mn, a, b) }
	left, right := nodes[:3], nodes[3:]
	for _, side := range [][]*testDaemon{left, right} {
		link(side[0], side[1])
		link(side[1], side[2])
	}
	for _, side := range [][]*testDaemon{left, right} {
		for i := range 2 {
			a, b := side[i], side[i+1]
			waitFor(t, 20*time.Second, "each line's mesh", func() bool {
				return slices.Contains(a.d.Network().TopicPeers(), b.d.Network().ID()) &&
					slices.Contains(b.d.Network().TopicPeers(), a.d.Network().ID())
			})
		}
	}
	// Signed now: what a partition of less than a day kept apart is
	// gossiped on by the nodes that learn it by sync (older documents
	// are not: see TestRelayWindow).
	publish := func(td *testDaemon, artifact string) attest.ID {
		env := signedEnvelope(t, alice, "0.5.0", artifact, time.Now())
		if err := td.d.Network().Publish(t.Context(), env); err != nil {
			t.Fatal(err)
		}
		return envelopeID(env)
	}
	idL := publish(left[0], sha('a'))
	idR := publish(right[2], sha('b'))
	for _, td := range left {
		waitFor(t, 20*time.Second, "the left line to store its document", func() bool { return td.has(idL) })
	}
	for _, td := range right {
		waitFor(t, 20*time.Second, "the right line to store its document", func() bool { return td.has(idR) })
	}
	// Heal at the far ends: left[2] and right[0]. The documents must
	// travel two more hops on each side, which periodic sync (5 min by
	// default) would take minutes to do.
	start := time.Now()
	link(left[2], right[0])
	for i, td := range nodes {
		waitFor(t, 30*time.Second, fmt.Sprintf("node %d to hold both documents", i), func() bool { return td.has(idL) && td.has(idR) })
	}
	took := time.Since(start)
	if took > 15*time.Second {
		t.Fatalf("the equivocation took %v to reach every node", took)
	}
	for i, td := range nodes {
		r, err := td.n.Status("", "0.5.0", 1)
		if err != nil || len(r.Equivocations) == 0 {
			t.Fatalf("node %d does not report the equivocation: %v %+v", i, err, r)
		}
	}
	t.Logf("equivocation reached all %d nodes %v after the heal", len(nodes), took)
}

// TestAttackRejectionLogFlood: future-dated documents claiming builder
// luke-jr for bitcoin 24.0, from many peers, cannot erase a rejection from
// a local import, nor fill another project's log of the same version:
// the log is bounded per peer and keyed by project and version.
func TestAttackRejectionLogFlood(t *testing.T) {
	alice := newBuilder(t, "alice")
	td := startDaemonWith(t, t.TempDir(), nil, nil, daemonSetup{config: func(c *Config) { c.UntrustedPerMinute = 1 << 20 }}, alice)
	td.seed(t, alice)

	// A real rejection from a local import: bitcoin 24.0, bad signature.
	tree := t.TempDir()
	m := &attest.Manifest{Entries: []attest.Entry{{SHA256: sha('a'), Name: "bitcoin-24.0-x86_64-linux-gnu.tar.gz"}}}
	p := alice.writeManifest(t, tree, "24.0", "all.SHA256SUMS", m)
	writeFile(t, p, []byte(sha('b')+"  bitcoin-24.0-x86_64-linux-gnu.tar.gz\n"))
	if sum := mustImport(t, td.n, tree); sum.ByReason["bad_signature"] != 1 {
		t.Fatalf("local import: %+v", sum.ByReason)
	}

	peers, perPeer := scale(80, 150), scale(150, 400) // 12,000 as in the issue; 60,000
	luke := newBuilder(t, "luke-jr")
	future := time.Now().Add(72 * time.Hour)
	tried := 0
	for i := range peers {
		from := peer.ID(fmt.Sprintf("sybil-%d", i))
		for j := range perPeer {
			m := &attest.Manifest{Entries: []attest.Entry{{SHA256: fmt.Sprintf("%064x", i*1000+j), Name: "bitcoin-24.0-x86_64-linux-gnu.tar.gz"}}}
			body := m.Encode()
			sig, err := luke.sk.Sign(body, future.Add(time.Duration(i*1000+j)*time.Second)) // each detail differs
			if err != nil {
				t.Fatal(err)
			}
			env := (&attest.Envelope{Doc: attest.Document{Kind: attest.KindManifest, Version: "24.0", Signer: "luke-jr", Name: "all.SHA256SUMS", Body: body, Signature: sig}, Key: luke.sk.Public().Bytes()}).Encode()
			if res := td.d.handle(t.Context(), from, env); res != gossip.Ignore {
				t.Fatalf("a future-dated document: %s, want ignore", res)
			}
			tried++
		}
	}
	logged, err := td.n.Store().Rejections("bitcoin", "24.0")
	if err != nil {
		t.Fatal(err)
	}
	local, byPeer := 0, map[string]int{}
	for _, r := range logged {
		if r.Peer == "" && r.Reason == "bad_signature" {
			local++
		}
		byPeer[r.Peer]++
	}
	if local != 1 {
		t.Fatalf("the local bad_signature rejection was erased (%d entries logged)", len(logged))
	}
	network := 0
	for p, n := range byPeer {
		if p != "" && n > store.MaxPeerRejections {
			t.Fatalf("peer %s has %d entries, bound %d", p, n, store.MaxPeerRejections)
		}
		if p != "" {
			network += n
		}
	}
	if want := min(peers*store.MaxPeerRejections, store.MaxRejections); network != want {
		t.Fatalf("%d entries from peers, want %d (each peer's newest %d, at most %d in all)", network, want, store.MaxPeerRejections, store.MaxRejections)
	}
	if other, _ := td.n.Store().Rejections("cuprated", "24.0"); len(other) != 0 {
		t.Fatalf("bitcoin's rejections are listed under cuprated 24.0: %d", len(other))
	}
	report(t, "rejection-log flood", tried, lost(t, td), diskUsed(td.home))
}

// TestAttackMalformedAndBadlySignedFlood: peers that send garbage and
// documents whose signature does not match are banned within seconds,
// and nothing they sent is stored. (This held before the budgets; the
// harness keeps it holding.)
func TestAttackMalformedAndBadlySignedFlood(t *testing.T) {
	alice := newBuilder(t, "alice")
	td := startDaemon(t, t.TempDir(), nil, nil, alice)
	td.seed(t, alice)
	good := alice.attestationEnvelope(t, "0.3.0", sha('a'))
	attackers := scale(6, 30)
	var wg sync.WaitGroup
	var mu sync.Mutex
	tried, slowest := 0, time.Duration(0)
	for i := range attackers {
		a := newAttacker(t, nil, td.addr(t))
		a.waitSubscribed(t, td)
		wg.Go(func() {
			start := time.Now()
			n := a.floodUntil(t, 60*time.Second, func(j int) []byte {
				if j%2 == 0 {
					return []byte(fmt.Sprintf("RBE\x01 garbage %d %d", i, j))
				}
				// alice's document with one byte of its body changed.
				env, _ := attest.DecodeEnvelope(good)
				env.Doc.Body = append([]byte(nil), env.Doc.Body...)
				env.Doc.Body[len(env.Doc.Body)-3] ^= byte(1 + j%7)
				return env.Encode()
			}, func() bool { return td.d.Network().Banned(a.net.ID()) })
			mu.Lock()
			tried += n
			slowest = max(slowest, time.Since(start))
			mu.Unlock()
		})
	}
	wg.Wait()
	if c, _ := td.n.Store().Count(); c != len(td.baseline) {
		t.Fatalf("%d documents stored from the flood", c-len(td.baseline))
	}
	t.Logf("%d attackers banned, the slowest after %v", attackers, slowest)
	report(t, "malformed and badly signed flood", tried, lost(t, td), diskUsed(td.home))
}

// TestHonestBulkRelayIsNotPunished: a peer that relays a bulk import by a
// builder this node does not trust (1,500 documents at once: more than
// the budget, less than twice it) is rate-limited but neither penalised
// nor banned. The daemon's clock stands still: the budget refills with
// time (a thousand a minute), so on the real clock a slow machine admits
// one more document for every 60 ms the bulk takes to arrive (1,076 of it
// once, in a loaded full run), and the count below would measure the
// machine, not the budget.
func TestHonestBulkRelayIsNotPunished(t *testing.T) {
	alice, carol := newBuilder(t, "alice"), newBuilder(t, "carol")
	td, a := underAttackWith(t, daemonSetup{clock: func() time.Time { return testNow }}, alice)
	for i := range 1500 {
		if err := a.net.Publish(t.Context(), carol.manifestEnvelope(t, "24.0", i, 2<<10)); err != nil {
			t.Fatal(err)
		}
	}
	// A trusted document sent after the bulk arrives after all of it.
	if err := a.net.Publish(t.Context(), alice.attestationEnvelope(t, "0.8.0", sha('a'))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the trusted document after the bulk", func() bool {
		r, err := td.n.Status("", "0.8.0", 1)
		return err == nil && r.Verdict == attest.Consensus
	})
	if p := td.d.Network().Penalty(a.net.ID()); p != 0 || td.d.Network().Banned(a.net.ID()) {
		t.Fatalf("a bulk relay was punished: penalty %v, banned %v", p, td.d.Network().Banned(a.net.ID()))
	}
	// Exactly the budget, unless gossip dropped some of the bulk on the
	// way (a full validation queue); never more.
	if q, budget := quarantined(td), td.n.Config().UntrustedPerMinute; q < budget-50 || q > budget {
		t.Fatalf("%d of the bulk quarantined, budget %d", q, budget)
	}
}
