package main

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
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
	count := storeCount(t, home)
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

// TestKillDuringSyncResumes kills a real `rbnode sync` (an empty node
// catching up from a daemon) with SIGKILL once it has reported documents
// stored, then runs it again: the second run fetches only what the store
// lacked after the kill, not everything again.
func TestKillDuringSyncResumes(t *testing.T) {
	const total = 12000
	tree, _ := signedTree(t, total, 4)
	keys, _ := filepath.Glob(filepath.Join(tree, "builder-keys", "*.gpg"))
	src, home := t.TempDir(), t.TempDir()
	for _, h := range []string{src, home} {
		if out, err := rbnode(t, h, append([]string{"trust", "add"}, keys...)...); err != nil {
			t.Fatalf("trust add: %v\n%s", err, out)
		}
	}
	if out, err := rbnode(t, src, "import", tree); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	addr := startDaemons(t, []string{src})[0]

	cmd := exec.Command(rbnodeBin, "--home", home, "sync", "--peer", addr)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	reported, reports := 0, 0
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if stored := field(sc.Text(), "syncing: stored"); stored > 0 {
			reported = stored
			if reports++; reports == 2 {
				cmd.Process.Kill() // SIGKILL, well inside the sync
				break
			}
		}
	}
	cmd.Wait()
	if reported == 0 || reported >= total {
		t.Fatalf("sync reported %d of %d stored before the kill; the test needs a kill mid-sync", reported, total)
	}

	// The store opens cleanly and holds at least what was reported.
	held := storeCount(t, home)
	if held < reported || held >= total {
		t.Fatalf("store holds %d documents after the kill; %d were reported stored, %d in all", held, reported, total)
	}

	// The second run transfers only what is missing.
	out, err := exec.Command(rbnodeBin, "--home", home, "sync", "--peer", addr, "--json").Output()
	if err != nil {
		t.Fatalf("second sync: %v\n%s", err, out)
	}
	var rep struct {
		Peers []struct {
			Missing, Fetched, Stored int
		} `json:"peers"`
	}
	if err := json.Unmarshal(out, &rep); err != nil || len(rep.Peers) != 1 {
		t.Fatalf("sync --json: %v\n%s", err, out)
	}
	p := rep.Peers[0]
	if p.Missing != total-held || p.Fetched != total-held || p.Stored != total-held {
		t.Fatalf("second sync: missing %d, fetched %d, stored %d; want %d each (%d of %d held after the kill)", p.Missing, p.Fetched, p.Stored, total-held, held, total)
	}
	t.Logf("killed after %d reported stored; %d held; the second run fetched %d", reported, held, p.Fetched)
}

// storeCount opens the store of home (failing the test if it does not
// open, as after a kill -9 it must) and returns its document count.
func storeCount(t *testing.T, home string) int {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.Home = home
	n, err := node.Open(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("store does not open after kill -9: %v", err)
	}
	defer n.Close()
	count, err := n.Store().Count()
	if err != nil {
		t.Fatal(err)
	}
	return count
}
