package node

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rbnode/rbnode/attest"
)

// testNow is the clock of every node in these tests.
var testNow = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// quietWriter drops log output once the test has finished.
type quietWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *quietWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func testLogger(t testing.TB) zerolog.Logger {
	w := &quietWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return zerolog.New(w).Level(testLogLevel)
}

// openTestNode opens a node in a fresh temporary home.
func openTestNode(t testing.TB) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Home = t.TempDir()
	n, err := Open(cfg, testLogger(t), WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// guixSigs is the repo's subset of the guix.sigs test data.
const guixSigs = "../testdata/guix.sigs"

// builderKey is a test builder: a key and the name it signs as.
type builderKey struct {
	name string
	sk   *attest.SecretKey
}

func newBuilder(t testing.TB, name string) builderKey {
	t.Helper()
	sk, err := attest.GenerateKey(name, name+"@example.org", testNow.Add(-24*time.Hour), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return builderKey{name: name, sk: sk}
}

// attestation returns a seed-format attestation of the stand-in release.
func (b builderKey) attestation(version, artifactSHA, commit, rustc string) *attest.Attestation {
	rv := rustc
	gc := "0123456789abcdef0123456789abcdef01234567"
	return &attest.Attestation{
		Schema: attest.AttestationSchema, Package: "cuprated", Version: version,
		GitCommit: commit, SourceDateEpoch: 1747000000, GuixSystem: "x86_64-linux",
		RustTarget:        "x86_64-unknown-linux-gnu",
		Artifact:          attest.File{Filename: "cuprated-" + version + "-x86_64-unknown-linux-gnu.tar.gz", SHA256: artifactSHA, Size: 1234},
		Distsrc:           attest.File{Filename: "cuprate-" + version + "-" + commit[:12] + "-src.tar.gz", SHA256: sha('d'), Size: -1},
		GuixChannelCommit: &gc, RustcVersion: &rv, BuilderID: b.name,
		AttestedAt: testNow.Add(-time.Hour),
	}
}

// writeAttestation signs a and writes it into root in the
// contrib/guix/sigs layout; it returns the attestation's path.
func (b builderKey) writeAttestation(t testing.TB, root string, a *attest.Attestation) string {
	t.Helper()
	return b.writeSigned(t, root, a.Version, "attestation.json", a.Encode())
}

// writeManifest signs a SHA256SUMS manifest into root/<version>/<name>/.
func (b builderKey) writeManifest(t testing.TB, root, version, file string, m *attest.Manifest) string {
	t.Helper()
	return b.writeSigned(t, root, version, file, m.Encode())
}

// writeSigned writes body and its signature (made an hour before testNow)
// as root/<version>/<name>/<file> and its .asc; it returns the body's path.
func (b builderKey) writeSigned(t testing.TB, root, version, file string, body []byte) string {
	t.Helper()
	dir := filepath.Join(root, version, b.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sig, err := b.sk.Sign(body, testNow.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, file)
	writeFile(t, p, body)
	writeFile(t, p+".asc", sig)
	return p
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sha returns a 64-hex string of one repeated digit.
func sha(c byte) string { return string(bytes.Repeat([]byte{c}, 64)) }

const commitA = "1111111111111111111111111111111111111111"
const commitB = "2222222222222222222222222222222222222222"

func mustImport(t testing.TB, n *Node, path string) *ImportSummary {
	t.Helper()
	s, err := n.Import(t.Context(), path, ImportOptions{})
	if err != nil {
		t.Fatalf("import %s: %v", path, err)
	}
	return s
}

func trustBuilders(t testing.TB, n *Node, bs ...builderKey) {
	t.Helper()
	for _, b := range bs {
		held, err := n.AddKeys([]*attest.Key{b.sk.Public()})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Trust(held, b.name); err != nil {
			t.Fatal(err)
		}
	}
}

func errorsIs(err, target error) bool { return err != nil && errors.Is(err, target) }

var testLogLevel = func() zerolog.Level {
	if l, err := zerolog.ParseLevel(os.Getenv("RBNODE_TEST_LOG")); err == nil && l != zerolog.NoLevel {
		return l
	}
	return zerolog.WarnLevel
}()
