package cli_test

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/cli"
)

// guixSigsHome imports the repository's guix.sigs subset into a new home
// and trusts the named builders' keys.
func guixSigsHome(t *testing.T, builders ...string) string {
	t.Helper()
	home := t.TempDir()
	if code, _, stderr := run(t, home, "import", "../testdata/guix.sigs"); code != 0 {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	if len(builders) > 0 {
		args := []string{"trust", "add"}
		for _, b := range builders {
			args = append(args, "../testdata/guix.sigs/builder-keys/"+b+".gpg")
		}
		if code, _, stderr := run(t, home, args...); code != 0 {
			t.Fatalf("trust add: exit %d: %s", code, stderr)
		}
	}
	return home
}

// TestStatusArtifactSelection: a release manager gates on the artifacts
// that matter. 26.0rc1 diverges only on its two macOS zips.
func TestStatusArtifactSelection(t *testing.T) {
	home := guixSigsHome(t, "fanquake", "achow101", "hebasto", "TheCharlatan", "guggero")
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"status", "26.0rc1"}, cli.ExitNegative},
		{[]string{"status", "26.0rc1", "--exclude", "*-apple-darwin.zip"}, cli.ExitOK},
		{[]string{"status", "26.0rc1", "--artifacts", "*-linux-gnu.tar.gz", "--artifacts", "*.exe"}, cli.ExitOK},
		{[]string{"status", "26.0rc1", "--artifacts", "*apple-darwin*"}, cli.ExitNegative},
		{[]string{"status", "26.0rc1", "--artifacts", "no-such-artifact"}, cli.ExitInconclusive},
		{[]string{"status", "26.0rc1", "--artifacts", "["}, cli.ExitUsage},
		{[]string{"status", "--exclude", "*.zip"}, cli.ExitUsage},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			if code, _, stderr := run(t, home, c.args...); code != c.code {
				t.Errorf("exit %d, want %d: %s", code, c.code, stderr)
			}
		})
	}
	_, out, _ := run(t, home, "status", "26.0rc1", "--exclude", "*-apple-darwin.zip", "--json")
	var r struct {
		Verdict   string   `json:"verdict"`
		Excluded  []string `json:"excluded_artifacts"`
		Artifacts []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Verdict != "consensus" || len(r.Excluded) != 2 || !strings.HasSuffix(r.Excluded[0], "apple-darwin.zip") {
		t.Errorf("verdict %s, excluded %v", r.Verdict, r.Excluded)
	}
	for _, a := range r.Artifacts {
		if strings.HasSuffix(a.Name, "-apple-darwin.zip") {
			t.Errorf("excluded artifact %s is still listed", a.Name)
		}
	}
}

// TestImpossibleQuorum: a quorum larger than the trust set is a
// configuration error that names the fix, never "retry later".
func TestImpossibleQuorum(t *testing.T) {
	home := guixSigsHome(t, "fanquake", "achow101")
	code, out, stderr := run(t, home, "status", "29.2")
	if code != cli.ExitUsage || !strings.Contains(stderr, "quorum 3 but only 2 builders are trusted") || !strings.Contains(stderr, "rbnode trust add") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(out, "(quorum 3, 2 builders attested, 2 trusted)") {
		t.Errorf("header does not show attested and trusted counts:\n%s", out)
	}
	if code, _, _ := run(t, home, "status", "29.2", "--quorum", "2"); code != cli.ExitOK {
		t.Errorf("quorum 2 of 2 trusted: exit %d, want 0", code)
	}
}

// TestReleaseList: releases in version order (a release after its
// candidates), a summary line, --limit, and an unknown project named.
func TestReleaseList(t *testing.T) {
	home := guixSigsHome(t, "fanquake", "achow101", "hebasto")
	code, out, _ := run(t, home, "status")
	if code != cli.ExitOK {
		t.Fatalf("exit %d", code)
	}
	var versions []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "bitcoin" {
			versions = append(versions, f[1])
		}
	}
	if got := strings.Join(versions, " "); got != "24.0 24.0.1 26.0rc1 29.2" {
		t.Errorf("versions in order %q", got)
	}
	if !strings.Contains(out, "4 releases: 3 consensus, 1 divergence, 0 pending\n") {
		t.Errorf("no summary line:\n%s", out)
	}
	if _, out, _ := run(t, home, "status", "--limit", "1"); !strings.Contains(out, "bitcoin  29.2") || strings.Contains(out, "24.0") {
		t.Errorf("--limit 1:\n%s", out)
	}
	code, _, stderr := run(t, home, "status", "--project", "nope")
	if code != cli.ExitUsage || !strings.Contains(stderr, `unknown project "nope"`) || !strings.Contains(stderr, "bitcoin") {
		t.Errorf("--project nope: exit %d, %s", code, stderr)
	}
	var list []map[string]any
	_, out, _ = run(t, home, "status", "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 4 {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	for _, k := range []string{"builder_count", "trusted_count", "untrusted_count", "rejected_count"} {
		if _, ok := list[0][k].(float64); !ok {
			t.Errorf("status --json lacks the count %s: %v", k, list[0])
		}
	}
}

// TestStatusFits80Columns: the text report of a release with many
// builders and long artifact names fits 80 columns; --wide does not cut.
func TestStatusFits80Columns(t *testing.T) {
	keys, _ := filepath.Glob("../testdata/guix.sigs/builder-keys/*.gpg")
	var names []string
	for _, k := range keys {
		names = append(names, strings.TrimSuffix(filepath.Base(k), ".gpg"))
	}
	home := guixSigsHome(t, names...)
	_, out, _ := run(t, home, "status", "26.0rc1")
	for _, line := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(line); n > 80 {
			t.Errorf("a line of %d columns: %q", n, line)
		}
	}
	if !strings.Contains(out, "divergent: bitcoin-26.0rc1-arm64-apple-darwin.zip") {
		t.Errorf("the divergent artifact is not named whole:\n%s", out)
	}
	_, wide, _ := run(t, home, "status", "26.0rc1", "--wide")
	if !strings.Contains(wide, "bitcoin-26.0rc1-x86_64-linux-gnu-debug.tar.gz ") || strings.Contains(wide, "…") {
		t.Errorf("--wide shortens:\n%s", wide)
	}
}

// TestWaitEndsWhenTheRequestCannotReachQuorum: status --wait on a
// requested release stops waiting, exit 3, once too many trusted
// builders have signed build failures for a quorum to be possible, and
// shows the failure.
func TestWaitEndsWhenTheRequestCannotReachQuorum(t *testing.T) {
	home, tree := t.TempDir(), t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	commit := strings.Repeat("c0", 20)
	for _, who := range []string{"rm", "carol"} {
		sk, err := attest.GenerateKey(who, "", now.Add(-time.Hour), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		name, body := attest.RequestName, (&attest.BuildRequest{Project: "cuprated", Version: "0.2.0", GitCommit: commit,
			Requester: who, RequestedAt: now.Add(-time.Minute)}).Encode()
		if who == "carol" {
			name, body = attest.FailureName, (&attest.BuildFailure{Project: "cuprated", Version: "0.2.0", GitCommit: commit,
				BuilderID: who, Stage: "guix-build", ExitCode: 1, Error: "stage guix-build exited with status 1",
				LogTail: []string{"error: boom"}, FailedAt: now}).Encode()
		}
		sig, err := sk.Sign(body, now)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(tree, "0.2.0", who)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, name), body, 0o644)
		os.WriteFile(filepath.Join(dir, name+".asc"), sig, 0o644)
		key := filepath.Join(t.TempDir(), who+".asc")
		os.WriteFile(key, sk.Public().Armored(), 0o644)
		if code, _, stderr := run(t, home, "trust", "add", key); code != 0 {
			t.Fatalf("trust add: %s", stderr)
		}
	}
	if code, _, stderr := run(t, home, "import", tree); code != 0 {
		t.Fatalf("import: %s", stderr)
	}
	// Waiting out the timeout would say "still pending" instead.
	code, out, stderr := run(t, home, "status", "0.2.0", "--quorum", "2", "--wait", "--timeout", "2m")
	if code != cli.ExitInconclusive || !strings.Contains(stderr, "no quorum of 2 is possible") ||
		!strings.Contains(out, "carol                    failed at guix-build (exit 1)") || !strings.Contains(out, "| error: boom") {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
}
