package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// nobody is the unprivileged user the tests below act as when run as
// root (root reads unreadable directories and connects to any socket).
const nobody = 65534

// runAsNobody runs the test named name in a copy of this test binary as
// uid and gid 65534, with env added, and fails t if it fails. dir must be
// a directory nobody may use (mode 0777); the copy goes there.
func runAsNobody(t *testing.T, name, dir string, env ...string) {
	t.Helper()
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "node.test")
	if err := os.WriteFile(copyPath, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, copyPath, "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Env = append([]string{"TMPDIR=" + dir, "PATH=" + os.Getenv("PATH"), "RBNODE_AS_NOBODY=1"}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s as uid %d: %v\n%s", name, nobody, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s as uid %d was skipped:\n%s", name, nobody, out)
	}
}

// sharedDir is a directory every user may write, removed after the test.
func sharedDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "rbnode-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestUnreadableDirectoryIsOneRejection: a directory of the tree that
// cannot be read is logged as one rejection; the rest is imported.
func TestUnreadableDirectoryIsOneRejection(t *testing.T) {
	if os.Geteuid() == 0 && os.Getenv("RBNODE_AS_NOBODY") == "" {
		runAsNobody(t, t.Name(), sharedDir(t))
		return
	}
	if os.Geteuid() == 0 {
		t.Skip("root reads every directory")
	}
	alice, bob := newBuilder(t, "alice"), newBuilder(t, "bob")
	n := openTestNode(t)
	tree := t.TempDir()
	alice.writeAttestation(t, tree, alice.attestation("0.1.0", sha('a'), commitA, "rustc"))
	bob.writeAttestation(t, tree, bob.attestation("0.1.0", sha('a'), commitA, "rustc"))
	locked := filepath.Join(tree, "0.1.0", "bob")
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o755) })
	sum, err := n.Import(t.Context(), tree, ImportOptions{})
	if err != nil {
		t.Fatalf("import with an unreadable directory: %v", err)
	}
	if sum.Stored != 1 || sum.Rejected != 1 || sum.ByReason["unreadable"] != 1 {
		t.Fatalf("import with an unreadable directory: %+v %v", sum.ImportProgress, sum.ByReason)
	}
}

// TestAPIChangesOnlyFromTheOwner: even when the socket is opened to
// everyone by mistake, another user may read through the API but not
// change the node (SO_PEERCRED).
func TestAPIChangesOnlyFromTheOwner(t *testing.T) {
	if sock := os.Getenv("RBNODE_TEST_SOCKET"); sock != "" {
		apiAsAnotherUser(t, sock)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("acting as another user needs root")
	}
	mallory := newBuilder(t, "mallory")
	dir := sharedDir(t)
	home := filepath.Join(dir, "home")
	cfg := DefaultConfig()
	cfg.Home, cfg.Listen, cfg.MDNS, cfg.DHT = home, []string{"/ip4/127.0.0.1/tcp/0"}, false, false
	n, err := Open(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.AddKeys(mallorysKeys(mallory)); err != nil {
		t.Fatal(err)
	}
	d, err := NewDaemon(n, DaemonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done; d.Close() }()
	sock := filepath.Join(home, SocketFile)
	waitFor(t, 20*time.Second, "the API socket", func() bool { _, err := Dial(home); return err == nil })
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v, want 0600", fi.Mode(), err)
	}
	// The mistake: home and socket opened to all.
	os.Chmod(home, 0o755)
	os.Chmod(sock, 0o666)
	runAsNobody(t, t.Name(), dir, "RBNODE_TEST_SOCKET="+home, "RBNODE_TEST_FP="+mallory.sk.Public().Fingerprint)
	ts, err := n.TrustSet()
	if err != nil || len(ts) != 0 {
		t.Fatalf("trust set after another user's call: %v %v", ts, err)
	}
}

func mallorysKeys(b builderKey) []*attest.Key { return []*attest.Key{b.sk.Public()} }

// apiAsAnotherUser is the other user's side: reading works, changing is
// refused with ErrPermission.
func apiAsAnotherUser(t *testing.T, home string) {
	c, err := Dial(home)
	if err != nil {
		t.Fatalf("dial as uid %d: %v", os.Geteuid(), err)
	}
	if _, err := c.Identity(t.Context()); err != nil {
		t.Fatalf("read as another user: %v", err)
	}
	_, err = c.Trust(t.Context(), TrustRequest{Fingerprints: []string{os.Getenv("RBNODE_TEST_FP")}})
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("trust as another user: %v, want ErrPermission", err)
	}
}

// TestSocketIsNeverOpenToOthers: under umask 000, the API socket never
// exists with a mode that lets others connect.
func TestSocketIsNeverOpenToOthers(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, SocketFile)
	ln, err := listenPrivate(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket: %v %v", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}

// TestInitFixesAWritableHome: a group- or world-writable home is made
// 0700.
func TestInitFixesAWritableHome(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(home, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(home, 0o777)
	was, err := PrepareHome(home)
	if err != nil || was != 0o777 {
		t.Fatalf("PrepareHome: %v %04o", err, was)
	}
	fi, _ := os.Stat(home)
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("home mode %04o after PrepareHome", fi.Mode().Perm())
	}
	if was, err := PrepareHome(home); err != nil || was != 0 {
		t.Fatalf("second PrepareHome: %v %04o", err, was)
	}
}

// TestVerifyRefusesAFIFO: verify of a FIFO with no writer returns an
// error at once instead of hanging.
func TestVerifyRefusesAFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cuprated.tar.gz")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		fs, err := HashFiles([]string{p})
		if err != nil || len(fs) != 1 {
			done <- fmt.Sprint(fs, err)
			return
		}
		done <- fs[0].Error
	}()
	select {
	case msg := <-done:
		if !strings.Contains(msg, "FIFO") {
			t.Fatalf("verify of a FIFO: %q", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("verify of a FIFO hangs")
	}
}
