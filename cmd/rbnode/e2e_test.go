//go:build e2e

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbnode/rbnode/node"
)

// daemonProc is a real `rbnode daemon` process.
type daemonProc struct {
	home string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

func startDaemonProc(t *testing.T, home string, bootstrap ...string) *daemonProc {
	t.Helper()
	args := []string{"--home", home, "daemon", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--no-dht", "--log-level", "info"}
	for _, b := range bootstrap {
		args = append(args, "--bootstrap", b)
	}
	p := &daemonProc{home: home, cmd: exec.Command(rbnodeBin, args...), log: &bytes.Buffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon %s log:\n%s", filepath.Base(home), p.log)
		}
	})
	eventually(t, 20*time.Second, "the daemon's API", func() bool {
		id, err := p.id(t)
		return err == nil && id.Running
	})
	return p
}

func (p *daemonProc) id(t *testing.T) (*node.Identity, error) {
	out, err := exec.Command(rbnodeBin, "--home", p.home, "id", "--json").Output()
	if err != nil {
		return nil, err
	}
	var id node.Identity
	return &id, json.Unmarshal(out, &id)
}

// addr is the daemon's loopback multiaddr, as `rbnode id` prints it.
func (p *daemonProc) addr(t *testing.T) string {
	t.Helper()
	id, err := p.id(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range id.Addrs {
		if strings.Contains(a, "/127.0.0.1/") {
			return a
		}
	}
	t.Fatalf("no loopback address in %v", id.Addrs)
	return ""
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func must(t *testing.T, home string, args ...string) string {
	t.Helper()
	out, err := rbnode(t, home, args...)
	if err != nil {
		t.Fatalf("rbnode %v: %v\n%s", args, err, out)
	}
	return out
}

// TestThreeDaemons: three daemon processes bootstrapped from each other's
// `rbnode id`; what is imported at the first shows in `rbnode status` at
// the third; the second is killed, more is published, and when restarted
// it catches up.
func TestThreeDaemons(t *testing.T) {
	guixSigs, _ := filepath.Abs("../../testdata/guix.sigs")
	keys, _ := filepath.Glob(filepath.Join(guixSigs, "builder-keys", "*.gpg"))
	homes := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	for _, h := range homes {
		must(t, h, append([]string{"trust", "add"}, keys...)...)
	}
	// h1 builds too: its key is trusted everywhere.
	must(t, homes[0], "key", "generate", "--name", "builder-one")
	pub := filepath.Join(t.TempDir(), "one.asc")
	os.WriteFile(pub, []byte(must(t, homes[0], "key", "export")), 0o644)
	for _, h := range homes[1:] {
		must(t, h, "trust", "add", pub)
	}

	d1 := startDaemonProc(t, homes[0])
	d2 := startDaemonProc(t, homes[1], d1.addr(t))
	d3 := startDaemonProc(t, homes[2], d1.addr(t), d2.addr(t))
	eventually(t, 20*time.Second, "peers", func() bool {
		out, _ := rbnode(t, homes[2], "peers", "--json")
		return strings.Count(out, `"id"`) >= 2
	})

	// Imported at the first (through its daemon), shown at the third.
	must(t, homes[0], "import", guixSigs)
	want := verdicts(t, must(t, homes[0], "status", "--json"))
	var got string
	eventually(t, 30*time.Second, "the third node to have every release", func() bool {
		out, _ := rbnode(t, homes[2], "status", "--json")
		got = verdicts(t, out)
		return got == want
	})
	out, err := rbnode(t, homes[2], "status", "26.0rc1")
	if code := exitCode(err); code != 1 || !strings.Contains(out, "divergent: bitcoin-26.0rc1-arm64-apple-darwin.zip") {
		t.Fatalf("status 26.0rc1 at the third node: exit %d\n%s", code, out)
	}

	// The second dies; the first publishes a new release; the second comes
	// back and catches up.
	d2.cmd.Process.Kill()
	d2.cmd.Wait()
	tree := t.TempDir()
	dir := filepath.Join(tree, "1.0", "builder-one")
	os.MkdirAll(dir, 0o755)
	sums := filepath.Join(dir, "all.SHA256SUMS")
	os.WriteFile(sums, []byte(fmt.Sprintf("%064x  proj-1.0-linux.tar.gz\n", 42)), 0o644)
	must(t, homes[0], "sign", sums)
	must(t, homes[0], "publish", tree)
	eventually(t, 30*time.Second, "the third node to have release 1.0", func() bool {
		_, err := rbnode(t, homes[2], "status", "1.0", "--quorum", "1")
		return exitCode(err) == 0
	})
	startDaemonProc(t, homes[1], d3.addr(t))
	eventually(t, 30*time.Second, "the restarted second node to catch up", func() bool {
		_, err := rbnode(t, homes[1], "status", "1.0", "--quorum", "1")
		return exitCode(err) == 0
	})
	out, _ = rbnode(t, homes[1], "status", "--json")
	if got, want := verdicts(t, out), verdicts(t, must(t, homes[0], "status", "--json")); got != want {
		t.Fatalf("the restarted node differs:\n%s\nwant\n%s", got, want)
	}
}

// verdicts reduces `rbnode status --json` to what every node must agree
// on: each release's verdict, builders and artifacts. (Documents by keys
// nobody has stay with the node that imported them, so the rejected and
// untrusted counts may differ.)
func verdicts(t *testing.T, statusJSON string) string {
	t.Helper()
	var list []node.ReleaseSummary
	if err := json.Unmarshal([]byte(statusJSON), &list); err != nil {
		return "unreadable: " + err.Error()
	}
	var b strings.Builder
	for _, r := range list {
		fmt.Fprintf(&b, "%s %s %s builders=%d artifacts=%d agreed=%d divergent=%d\n",
			r.Project, r.Version, r.Verdict, r.Builders, r.Artifacts, r.Agreed, r.Divergent)
	}
	return b.String()
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
