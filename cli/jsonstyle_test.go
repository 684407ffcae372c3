package cli_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rbnode/rbnode/cli"
)

// jsonKey is the one style docs/json.md promises for every key.
var jsonKey = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// TestJSONStyle runs every command that has --json, against the sandbox
// of the doc-test (the guix.sigs subset, a running daemon), and holds its
// output to the style of docs/json.md: snake_case keys, durations in
// milliseconds, no null where a list or object belongs, source_date_epoch
// a number, and every divergent artifact with its differs list.
func TestJSONStyle(t *testing.T) {
	sb := newDocSandbox(t)
	home := sb.copyHome(t)
	mustRun(t, home, "trust", "add", "path/to/guix.sigs/builder-keys/TheCharlatan.gpg", "path/to/guix.sigs/builder-keys/guggero.gpg")
	for _, c := range []struct {
		args []string
		code int
		home string
	}{
		{[]string{"status"}, cli.ExitOK, home},
		{[]string{"status", "29.2"}, cli.ExitOK, home},
		{[]string{"status", "26.0rc1"}, cli.ExitNegative, home},
		{[]string{"status", "9.9"}, cli.ExitInconclusive, home},
		{[]string{"verify", "bitcoin-29.2-x86_64-linux-gnu.tar.gz", "missing.tar.gz"}, cli.ExitNegative, home},
		{[]string{"import", "path/to/guix.sigs"}, cli.ExitOK, sb.fresh(t)},
		{[]string{"key", "list"}, cli.ExitOK, home},
		{[]string{"trust", "list"}, cli.ExitOK, home},
		{[]string{"export", "guix-sigs", "29.2", "--out", t.TempDir()}, cli.ExitOK, home},
		{[]string{"builds"}, cli.ExitOK, home},
		{[]string{"id"}, cli.ExitOK, sb.daemonHome},
		{[]string{"peers"}, cli.ExitOK, sb.daemonHome},
		{[]string{"publish", "path/to/guix.sigs/29.2"}, cli.ExitOK, sb.daemonHome},
		{[]string{"sync", "--peer", sb.at["@daemon"]}, cli.ExitOK, sb.fresh(t)},
		{[]string{"request", "0.2.0", "--commit", strings.Repeat("ab", 20), "--note", "rc1"}, cli.ExitOK, home},
		{[]string{"status", "0.2.0"}, cli.ExitInconclusive, home},
	} {
		name := strings.Join(c.args, " ")
		t.Run(name, func(t *testing.T) {
			code, out, stderr := run(t, c.home, append(c.args, "--json")...)
			if code != c.code {
				t.Errorf("exit %d, want %d: %s", code, c.code, stderr)
			}
			var v any
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("stdout is not one JSON value: %v\n%s", err, out)
			}
			for _, p := range jsonStyleFaults(v, "") {
				t.Errorf("rbnode %s --json: %s", name, p)
			}
		})
	}
}

// jsonStyleFaults lists where v breaks the style of docs/json.md, by path.
func jsonStyleFaults(v any, path string) []string {
	var faults []string
	switch v := v.(type) {
	case nil:
		faults = append(faults, path+" is null")
	case []any:
		for i, e := range v {
			faults = append(faults, jsonStyleFaults(e, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case map[string]any:
		for k, e := range v {
			p := path + "." + k
			switch {
			case !jsonKey.MatchString(k):
				faults = append(faults, p+" is not snake_case")
			case k == "elapsed_ns":
				// documented as deprecated beside elapsed_ms
			case strings.HasSuffix(k, "_ns") || k == "duration" || k == "elapsed":
				faults = append(faults, p+" is a duration not in milliseconds")
			}
			if k == "source_date_epoch" {
				if _, ok := e.(float64); !ok {
					faults = append(faults, fmt.Sprintf("%s is %T, not a number", p, e))
				}
			}
			faults = append(faults, jsonStyleFaults(e, p)...)
		}
		if v["verdict"] == "divergent" {
			if _, ok := v["artifact"]; ok {
				if _, ok := v["differs"].([]any); !ok {
					faults = append(faults, path+" is a divergent artifact without a differs list")
				}
			}
		}
	}
	return faults
}

// TestTextOutputIsPlain covers the text side of the same pass: key list
// of every guix.sigs key fits 80 columns, peers names each address once,
// and no error message repeats itself ("x: x").
func TestTextOutputIsPlain(t *testing.T) {
	sb := newDocSandbox(t)
	home := sb.copyHome(t)
	mustRun(t, home, "trust", "add", "path/to/guix.sigs/builder-keys/TheCharlatan.gpg", "path/to/guix.sigs/builder-keys/guggero.gpg")
	_, out, _ := mustRun(t, home, "key", "list")
	if strings.Count(out, "\n") < 6 {
		t.Fatalf("key list shows too few keys:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(line); n > 80 {
			t.Errorf("key list: a line of %d columns: %q", n, line)
		}
	}

	// A second node connected to the daemon: its peers table.
	other := sb.fresh(t)
	d := startDaemon(t, other, sb.dir, "daemon", "--bootstrap", sb.at["@daemon"])
	if _, err := d.await(`listening on (\S+)`); err != nil {
		t.Fatal(err)
	}
	var peers string
	if !waitFor(func() bool {
		_, peers, _ = run(t, sb.daemonHome, "peers", "--wide")
		return strings.Contains(peers, "/ip4/")
	}) {
		t.Fatalf("the daemon never listed its peer:\n%s", peers)
	}
	for _, addr := range regexp.MustCompile(`/ip4/\S+`).FindAllString(peers, -1) {
		if n := strings.Count(peers, addr); n != 1 {
			t.Errorf("peers shows %s %d times:\n%s", addr, n, peers)
		}
	}
	d.stop(t)

	for _, args := range [][]string{
		{"status", "9.9"},
		{"verify", "--version", "9.9", "notes.txt"},
		{"verify", "path"},
		{"import", "no/such/dir"},
		{"key", "import", "notes.txt"},
		{"trust", "add", "notes.txt"},
		{"sync", "--peer", "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWLRfHhSWGqSmbTq6GMbn5mDwDu3tcVZ6EEdFJdyR7ipeX"},
	} {
		code, _, stderr := run(t, home, args...)
		if code == cli.ExitOK {
			t.Errorf("rbnode %s: exit 0", strings.Join(args, " "))
		}
		if m := repeated(stderr); m != "" {
			t.Errorf("rbnode %s repeats %q: %s", strings.Join(args, " "), m, stderr)
		}
	}
}

// waitFor polls cond until it holds or 30 s pass, and says which.
func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// repeated returns a part of a message (between ": ", 10 characters or
// more) that a line of msg says twice, or "".
func repeated(msg string) string {
	for _, line := range strings.Split(msg, "\n") {
		seen := map[string]bool{}
		for _, part := range strings.Split(line, ": ") {
			if len(part) >= 10 && seen[part] {
				return part
			}
			seen[part] = true
		}
	}
	return ""
}

// TestStyleCheckersCatchFaults: the two checkers above find what they are
// for, so that the tests using them can fail.
func TestStyleCheckersCatchFaults(t *testing.T) {
	for doc, want := range map[string]string{
		`{"peers": null}`:                                              ".peers is null",
		`{"Duration": 5}`:                                              ".Duration is not snake_case",
		`[{"elapsed_ns": 1, "duration_ns": 2}]`:                        "[0].duration_ns is a duration not in milliseconds",
		`{"env": {"source_date_epoch": "1700000000"}}`:                 ".env.source_date_epoch is string, not a number",
		`{"artifact": "a.zip", "verdict": "divergent"}`:                " is a divergent artifact without a differs list",
		`{"artifact": "a.zip", "verdict": "divergent", "differs": []}`: "",
	} {
		var v any
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			t.Fatal(err)
		}
		got := strings.Join(jsonStyleFaults(v, ""), "; ")
		if got != want {
			t.Errorf("%s: faults %q, want %q", doc, got, want)
		}
	}
	if got := repeated("rbnode: error: no documents for this release: no documents for this release\nhint: x"); got != "no documents for this release" {
		t.Errorf("repeated: %q", got)
	}
	if got := repeated("rbnode: error: open a.tar.gz: no such file or directory"); got != "" {
		t.Errorf("repeated on a plain message: %q", got)
	}
}
