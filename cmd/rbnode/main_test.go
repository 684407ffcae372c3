package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node"
)

// rbnodeBin is the rbnode binary these tests run as real processes.
var rbnodeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rbnode-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rbnodeBin = filepath.Join(dir, "rbnode")
	build := exec.Command("go", "build", "-trimpath", "-o", rbnodeBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build rbnode:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// rbnode runs the binary with home and returns its combined output.
func rbnode(t testing.TB, home string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(rbnodeBin, args...)
	cmd.Env = append(os.Environ(), "RBNODE_HOME="+home)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// signedTree writes n signed SHA256SUMS manifests, spread over versions
// 1.0 .. 1.<n/builders> and the given number of builders, in the guix.sigs
// layout, and returns the tree's root and the builders' keys.
func signedTree(t testing.TB, n, builders int) (string, []*attest.SecretKey) {
	t.Helper()
	root := t.TempDir()
	return root, writeSignedTree(t, root, n, builders)
}

// summary returns the line of rbnode import's summary ("stored ...").
func summary(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "stored ") {
			return l
		}
	}
	return ""
}

// field returns the integer after "name " in a summary or progress line.
func field(line, name string) int {
	i := strings.Index(line, name+" ")
	if i < 0 {
		return -1
	}
	var v int
	fmt.Sscanf(line[i+len(name)+1:], "%d", &v)
	return v
}

// daemonAddr waits, up to d, for the daemon of home to answer on its
// local API, and returns its loopback multiaddr (as rbnode id prints it).
func daemonAddr(tb testing.TB, home string, d time.Duration) string {
	tb.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		out, err := exec.Command(rbnodeBin, "--home", home, "id", "--json").Output()
		var id node.Identity
		if err == nil && json.Unmarshal(out, &id) == nil && id.Running {
			for _, a := range id.Addrs {
				if strings.Contains(a, "/127.0.0.1/") {
					return a
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("the daemon of %s did not answer within %v", home, d)
	return ""
}
