package main

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rbnode/rbnode/node"
)

// TestKillDuringImportLosesNothing kills a real `rbnode import` with
// SIGKILL after it has reported documents stored, then checks that the
// store opens cleanly, holds at least what was reported, and that a second
// import completes it.
func TestKillDuringImportLosesNothing(t *testing.T) {
	const total = 12000
	tree, _ := signedTree(t, total, 4)
	home := t.TempDir()

	cmd := exec.Command(rbnodeBin, "--home", home, "import", tree)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reported := 0
	sc := bufio.NewScanner(stderr)
	deadline := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "importing:") {
			continue
		}
		// Kill on the second progress report, well inside the import.
		if stored := field(line, "stored"); stored > 0 && reported > 0 {
			reported = stored
			cmd.Process.Kill() // SIGKILL
			break
		} else if stored > 0 {
			reported = stored
		}
	}
	cmd.Wait()
	if reported == 0 || reported >= total {
		t.Fatalf("import reported %d of %d stored before the kill; the test needs a kill mid-import", reported, total)
	}

	// The store opens cleanly and holds at least what was reported.
	cfg := node.DefaultConfig()
	cfg.Home = home
	n, err := node.Open(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("store does not open after kill -9: %v", err)
	}
	count, err := n.Store().Count()
	n.Close()
	if err != nil {
		t.Fatal(err)
	}
	if count < reported {
		t.Fatalf("store holds %d documents, but %d were reported stored before the kill", count, reported)
	}
	t.Logf("killed after %d reported stored; store held %d", reported, count)

	// A second import completes it, finding the rest new.
	out, err := rbnode(t, home, "import", tree)
	if err != nil {
		t.Fatalf("re-import: %v\n%s", err, out)
	}
	if s, d := field(summary(out), "stored"), field(summary(out), "duplicate"); s+d != total || d < reported {
		t.Fatalf("re-import: stored %d + duplicate %d, want %d in all and at least %d duplicates:\n%s", s, d, total, reported, out)
	}
	out, err = rbnode(t, home, "status", "--json")
	if err != nil {
		t.Fatalf("status after recovery: %v\n%s", err, out)
	}
	if got := strings.Count(out, `"version"`); got != total/4 {
		t.Fatalf("status lists %d releases, want %d", got, total/4)
	}
}
