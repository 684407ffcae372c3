package cli_test

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/cli"
)

// run calls cli.Main in-process and returns the exit code and outputs.
func run(t *testing.T, home string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	t.Setenv("RBNODE_HOME", home)
	code := cli.Main(append([]string{"rbnode"}, args...), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestExitCodes pins the exit code of every kind of outcome: release
// scripts depend on them (docs/cli.md).
func TestExitCodes(t *testing.T) {
	home := t.TempDir()
	keys := "../testdata/guix.sigs/builder-keys/"
	if code, _, stderr := run(t, home, "import", "../testdata/guix.sigs"); code != 0 {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	if code, _, stderr := run(t, home, "trust", "add", keys+"fanquake.gpg", keys+"achow101.gpg", keys+"hebasto.gpg", keys+"cfields.gpg"); code != 0 {
		t.Fatalf("trust add: exit %d: %s", code, stderr)
	}
	file := filepath.Join(t.TempDir(), "bitcoin-29.2-x86_64-linux-gnu.tar.gz")
	os.WriteFile(file, []byte("not the real one"), 0o644)

	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"status", "29.2"}, cli.ExitOK},
		{[]string{"status", "29.2", "--json"}, cli.ExitOK},
		{[]string{"status"}, cli.ExitOK},
		{[]string{"status", "26.0rc1"}, cli.ExitNegative},
		{[]string{"status", "26.0rc1", "--json"}, cli.ExitNegative},
		{[]string{"status", "29.2", "--quorum", "4"}, cli.ExitInconclusive}, // cfields did not attest 29.2
		{[]string{"status", "29.2", "--quorum", "5"}, cli.ExitUsage},        // only 4 builders are trusted
		{[]string{"status", "29.2", "--quorum", "5", "--json"}, cli.ExitUsage},
		{[]string{"status", "9.9"}, cli.ExitInconclusive},
		{[]string{"verify", file}, cli.ExitNegative},
		{[]string{"verify", "--quorum", "9", file}, cli.ExitInconclusive},
		{[]string{"status", "29.2", "--quorum", "0"}, cli.ExitUsage},
		{[]string{"status", "29.2", "--quorum", "x"}, cli.ExitUsage},
		{[]string{"status", "--no-such-flag"}, cli.ExitUsage},
		{[]string{"no-such-command"}, cli.ExitUsage},
		{[]string{"status", "a/b"}, cli.ExitUsage},
		{[]string{"import"}, cli.ExitUsage},
		{[]string{"import", "/does/not/exist"}, cli.ExitUsage},
		{[]string{"sign", file}, cli.ExitUsage}, // no builder key
		{[]string{"trust", "remove", "00"}, cli.ExitUsage},
		{[]string{"verify", "/does/not/exist"}, cli.ExitUsage},
		{[]string{"--version"}, cli.ExitOK},
		{[]string{"help"}, cli.ExitOK},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, _, stderr := run(t, home, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, c.code, stderr)
			}
			if code == cli.ExitUsage && !strings.Contains(stderr, "rbnode: error: ") {
				t.Fatalf("usage error without a message: %q", stderr)
			}
		})
	}
}

// TestBadConfigIsAUsageError checks the config file rules: unknown keys
// and bad values are refused with the file named.
func TestBadConfigIsAUsageError(t *testing.T) {
	home := t.TempDir()
	for _, c := range []struct{ config, want string }{
		{"quorum = 3\nquorom = 4\n", "unknown key quorom"},
		{"quorum = -1\n", "quorum must be at least 1"},
		{"quorum = \"three\"\n", "config"},
		{"log_level = \"loud\"\n", "log_level"},
	} {
		os.WriteFile(filepath.Join(home, "config.toml"), []byte(c.config), 0o600)
		code, _, stderr := run(t, home, "status")
		if code != cli.ExitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("config %q: exit %d, stderr %q; want exit 2 mentioning %q", c.config, code, stderr, c.want)
		}
	}
	// Flags beat the file.
	os.WriteFile(filepath.Join(home, "config.toml"), []byte("quorum = 50\n"), 0o600)
	if code, _, stderr := run(t, home, "status", "--quorum", "2"); code != cli.ExitOK {
		t.Errorf("flag over config: exit %d: %s", code, stderr)
	}
}

// TestUntrustedDocumentCannotChangeTheGate: one attestation by an untrusted
// key claiming version 24.0 of another project changes neither the exit
// code nor the output of the release manager's `status 24.0 --quorum 3`.
func TestUntrustedDocumentCannotChangeTheGate(t *testing.T) {
	home := t.TempDir()
	keys, _ := filepath.Glob("../testdata/guix.sigs/builder-keys/*.gpg")
	if code, _, stderr := run(t, home, "import", "../testdata/guix.sigs"); code != 0 {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	if code, _, stderr := run(t, home, append([]string{"trust", "add"}, keys...)...); code != 0 {
		t.Fatalf("trust add: exit %d: %s", code, stderr)
	}
	gate := func() (int, string) {
		t.Helper()
		code, out, stderr := run(t, home, "status", "24.0", "--quorum", "3", "--json")
		return code, out + stderr
	}
	code, out := gate()

	now := time.Now().Add(-time.Hour)
	sk, err := attest.GenerateKey("mallory", "mallory@example.org", now.Add(-time.Hour), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := &attest.Attestation{
		Schema: attest.AttestationSchema, Package: "cuprated", Version: "24.0",
		GitCommit: strings.Repeat("1", 40), SourceDateEpoch: 1747000000, GuixSystem: "x86_64-linux",
		RustTarget: "x86_64-unknown-linux-gnu",
		Artifact:   attest.File{Filename: "cuprated-24.0-x86_64-unknown-linux-gnu.tar.gz", SHA256: strings.Repeat("e", 64), Size: 1},
		Distsrc:    attest.File{Filename: "cuprate-24.0-111111111111-src.tar.gz", SHA256: strings.Repeat("d", 64), Size: -1},
		BuilderID:  "mallory", AttestedAt: now,
	}
	dir := filepath.Join(t.TempDir(), "24.0", "mallory")
	os.MkdirAll(dir, 0o755)
	body := a.Encode()
	sig, err := sk.Sign(body, now)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "attestation.json"), body, 0o644)
	os.WriteFile(filepath.Join(dir, "attestation.json.asc"), sig, 0o644)
	pub := filepath.Join(t.TempDir(), "mallory.asc")
	os.WriteFile(pub, sk.Public().Bytes(), 0o644)
	if code, _, stderr := run(t, home, "key", "import", pub); code != 0 { // known, not trusted
		t.Fatalf("key import: exit %d: %s", code, stderr)
	}
	if code, _, stderr := run(t, home, "import", filepath.Join(dir, "attestation.json")); code != 0 {
		t.Fatalf("import mallory's attestation: exit %d: %s", code, stderr)
	}
	if code2, out2 := gate(); code2 != code || out2 != out {
		t.Fatalf("status 24.0 --quorum 3: exit %d, then %d with mallory's cuprated 24.0 stored:\n%s\n---\n%s", code, code2, out, out2)
	}
	if code, out, _ := run(t, home, "status", "24.0", "--project", "cuprated", "--json"); code != cli.ExitInconclusive || !strings.Contains(out, `"reason": "untrusted_key"`) {
		t.Fatalf("cuprated 24.0: exit %d\n%s", code, out)
	}
}

// TestRejectionAndPermissionExitCodes: a single document that is
// rejected exits 1; verify of a FIFO and init where the home cannot be
// created exit 2 with a message, never 4 and never a hang.
func TestRejectionAndPermissionExitCodes(t *testing.T) {
	home := t.TempDir()
	dir := t.TempDir()
	// A manifest whose signature is not a signature.
	doc := filepath.Join(dir, "29.2", "mallory", "all.SHA256SUMS")
	os.MkdirAll(filepath.Dir(doc), 0o755)
	os.WriteFile(doc, []byte(strings.Repeat("a", 64)+"  bitcoin-29.2-x86_64-linux-gnu.tar.gz\n"), 0o644)
	os.WriteFile(doc+".asc", []byte("-----BEGIN PGP SIGNATURE-----\n\nnot one\n-----END PGP SIGNATURE-----\n"), 0o644)
	fifo := filepath.Join(dir, "bitcoin-29.2-x86_64-linux-gnu.tar.gz")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// An attestation that is a FIFO, with a signature beside it.
	fifoDoc := filepath.Join(dir, "0.1.0", "mallory", "attestation.json")
	os.MkdirAll(filepath.Dir(fifoDoc), 0o755)
	if err := syscall.Mkfifo(fifoDoc, 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(fifoDoc+".asc", []byte("x"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"import", doc}, cli.ExitNegative, "rejected"},
		{[]string{"import", doc, "--json"}, cli.ExitNegative, "rejected"},
		{[]string{"verify", fifo}, cli.ExitUsage, "not a regular file"},
		{[]string{"import", fifoDoc}, cli.ExitNegative, "not_regular_file"},
	} {
		t.Run(strings.Join(c.args[:1], " "), func(t *testing.T) {
			done := make(chan struct{})
			var code int
			var stderr string
			go func() { code, _, stderr = run(t, home, c.args...); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("hangs")
			}
			if code != c.code || !strings.Contains(stderr, c.msg) {
				t.Fatalf("exit %d, want %d; stderr: %s", code, c.code, stderr)
			}
		})
	}

	// init where the home's parent cannot be written: a read-only file
	// system (root may write anywhere else).
	ro := t.TempDir()
	if err := syscall.Mount("tmpfs", ro, "tmpfs", syscall.MS_RDONLY, "size=1m"); err != nil {
		t.Skipf("cannot mount a read-only tmpfs (%v)", err)
	}
	defer syscall.Unmount(ro, syscall.MNT_DETACH)
	code, _, stderr := run(t, filepath.Join(ro, "home"), "init")
	if code != cli.ExitUsage || !strings.Contains(stderr, "rbnode: error: ") || !strings.Contains(stderr, "hint:") {
		t.Fatalf("init on a read-only file system: exit %d, want %d; stderr: %s", code, cli.ExitUsage, stderr)
	}
}

// TestFullDiskIsAUsageError: import into a home whose disk is full stops
// with a clear error and exit 2 (before it could die of SIGBUS in
// Badger's memory-mapped writes).
func TestFullDiskIsAUsageError(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=24m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): run as root to test a full disk", err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	home := filepath.Join(mnt, "home")
	if code, _, stderr := run(t, home, "init"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	f, _ := os.Create(filepath.Join(mnt, "filler"))
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	code, _, stderr := run(t, home, "import", "../testdata/guix.sigs")
	if code != cli.ExitUsage || !strings.Contains(stderr, "not enough free disk space") || !strings.Contains(stderr, "hint:") {
		t.Fatalf("import on a full disk: exit %d, want %d; stderr: %s", code, cli.ExitUsage, stderr)
	}
	if code, _, stderr := run(t, home, "status"); code != 0 {
		t.Fatalf("status on a full disk: exit %d: %s", code, stderr)
	}
}
