package cli_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rbnode/rbnode/cli"
)

// commandPaths lists every command of rbnode, as `rbnode --help` and each
// group's help name them.
func commandPaths(t *testing.T, home string, prefix ...string) [][]string {
	t.Helper()
	code, out, stderr := run(t, home, append(append([]string{}, prefix...), "--help")...)
	if code != cli.ExitOK {
		t.Fatalf("rbnode %s --help: exit %d: %s", strings.Join(prefix, " "), code, stderr)
	}
	_, cmds, ok := strings.Cut(out, "COMMANDS:\n")
	if !ok {
		return nil
	}
	var paths [][]string
	for _, line := range strings.Split(cmds, "\n") {
		if line == "" || !strings.HasPrefix(line, "   ") || strings.HasPrefix(line, "    ") {
			if line == "" || !strings.HasPrefix(line, " ") {
				break
			}
			continue
		}
		name := strings.TrimSuffix(strings.Fields(line)[0], ",")
		if name == "help" {
			continue
		}
		p := append(append([]string{}, prefix...), name)
		paths = append(paths, p)
		paths = append(paths, commandPaths(t, home, p...)...)
	}
	return paths
}

// exampleCommand finds the command words of an example's rbnode call.
var exampleCommand = regexp.MustCompile(`(?:^|[\s(])rbnode((?: [a-z][a-z-]*)+)`)

// TestHelp checks every command's help: it fits 80 columns, shows
// examples, and every example names a real command.
func TestHelp(t *testing.T) {
	home := t.TempDir()
	paths := commandPaths(t, home)
	if len(paths) < 20 {
		t.Fatalf("found %d commands in the help, want every one: %v", len(paths), paths)
	}
	known := map[string]bool{}
	for _, p := range paths {
		known[strings.Join(p, " ")] = true
		if len(p) == 2 {
			known[p[0]+" _group"] = true
		}
	}
	for _, p := range append(paths, nil) {
		name := strings.Join(p, " ")
		code, out, stderr := run(t, home, append(p, "--help")...)
		if code != cli.ExitOK {
			t.Errorf("rbnode %s --help: exit %d: %s", name, code, stderr)
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			if n := utf8.RuneCountInString(line); n > 80 {
				t.Errorf("rbnode %s --help: a line of %d columns: %q", name, n, line)
			}
		}
		if strings.Contains(out, "(default: 0)") && strings.Contains(out, "default 3") {
			t.Errorf("rbnode %s --help: contradictory defaults:\n%s", name, out)
		}
		if p == nil {
			continue
		}
		_, ex, ok := strings.Cut(out, "Examples:\n")
		if !ok {
			t.Errorf("rbnode %s --help has no examples:\n%s", name, out)
			continue
		}
		for _, line := range strings.Split(ex, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line == "OPTIONS:" || strings.HasSuffix(line, ":") {
				break
			}
			// The command part of each example must be one rbnode knows.
			m := exampleCommand.FindStringSubmatch(line)
			if m == nil || !known[strings.Fields(m[1])[0]] {
				t.Errorf("rbnode %s: example %q names no command", name, line)
				continue
			}
			if words := strings.Fields(m[1]); len(words) > 1 && known[words[0]+" "+words[1]] != known[words[0]+" "+"_group"] {
				t.Errorf("rbnode %s: example %q: %q is not a command of rbnode %s", name, line, words[1], words[0])
			}
		}
	}
}

// TestCommandLineMistakes pins what a mistyped command line says: one
// line, a hint, exit 2; never a help dump or "No help topic".
func TestCommandLineMistakes(t *testing.T) {
	home := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"foo"}, "unknown command 'foo'"},
		{[]string{"statsu"}, `Did you mean "status"?`},
		{[]string{"key"}, "rbnode key needs a command: export, generate, import, list"},
		{[]string{"trust"}, "rbnode trust needs a command: add, list, remove"},
		{[]string{"trust", "ad"}, "unknown command 'trust ad'"},
		{[]string{"completion"}, "needs a command: bash, fish, zsh"},
		{[]string{"key", "generate"}, "rbnode key generate needs --name"},
		{[]string{"--home", home, "key", "generate", "--email", "a@example.org"}, "rbnode key generate needs --name"},
		{[]string{"attest", "out"}, "rbnode attest needs --version"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out, stderr := run(t, home, c.args...)
			if code != cli.ExitUsage {
				t.Errorf("exit %d, want %d", code, cli.ExitUsage)
			}
			if !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "\nhint: ") {
				t.Errorf("stderr %q, want %q and a hint", stderr, c.want)
			}
			if strings.Contains(out+stderr, "USAGE:") || strings.Contains(stderr, "No help topic") || strings.Count(stderr, "\n") > 2 {
				t.Errorf("more than one line and a hint:\nstdout: %s\nstderr: %s", out, stderr)
			}
		})
	}
}

// TestJSONErrors checks that a command run with --json that fails says so
// in JSON on stdout, as docs/json.md describes.
func TestJSONErrors(t *testing.T) {
	home := t.TempDir()
	for _, c := range []struct {
		args       []string
		code       int
		kind, want string
	}{
		{[]string{"status", "9.9", "--json"}, cli.ExitInconclusive, "unknown_release", "no documents"},
		{[]string{"status", "--json", "--quorum", "0"}, cli.ExitUsage, "usage", "quorum"},
		{[]string{"peers", "--json"}, cli.ExitInconclusive, "no_daemon", "daemon"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out, stderr := run(t, home, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, c.code, stderr)
			}
			var e struct{ Error, Kind, Hint string }
			dec := json.NewDecoder(strings.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil {
				t.Fatalf("stdout is not one JSON error object: %v\n%s", err, out)
			}
			if e.Kind != c.kind || !strings.Contains(e.Error, c.want) {
				t.Errorf("got %+v, want kind %q and an error mentioning %q", e, c.kind, c.want)
			}
		})
	}
}

// TestCompletion checks that each shell's script is printed and that the
// bash one is valid bash offering rbnode's commands.
func TestCompletion(t *testing.T) {
	home := t.TempDir()
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, stderr := run(t, home, "completion", sh)
		if code != cli.ExitOK || !strings.Contains(out, "rbnode") {
			t.Fatalf("completion %s: exit %d, %d bytes: %s", sh, code, len(out), stderr)
		}
		if !strings.Contains(out, "--generate-bash-completion") {
			t.Errorf("%s completion does not ask rbnode for candidates:\n%s", sh, out)
		}
		if sh == "bash" {
			script := filepath.Join(t.TempDir(), "rbnode.bash")
			os.WriteFile(script, []byte(out), 0o644)
			if b, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
				t.Errorf("bash -n: %v: %s", err, b)
			}
		}
	}
	// The candidates themselves come from urfave, which reads os.Args:
	// cli/testdata/script/completion.txt checks them in a real process.
}

// TestBadNetworkNameInConfig: a bad value in the config file names the
// file and the key and is a usage error.
func TestBadNetworkNameInConfig(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(home, "config.toml")
	os.WriteFile(cfg, []byte("network = \"Bad_Net\"\n"), 0o600)
	code, _, stderr := run(t, home, "id")
	if code != cli.ExitUsage || !strings.Contains(stderr, cfg) || !strings.Contains(stderr, `network "Bad_Net"`) {
		t.Errorf("exit %d, stderr %q; want exit 2 naming %s and the network key", code, stderr, cfg)
	}
}

// TestIDWithoutDaemon: `rbnode id` shows the addresses a daemon would
// listen on: --listen, RBNODE_LISTEN, then the config.
func TestIDWithoutDaemon(t *testing.T) {
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, "config.toml"), []byte("listen = [\"/ip4/127.0.0.1/tcp/5003\"]\n"), 0o600)
	if _, out, _ := run(t, home, "id"); !strings.Contains(out, "/ip4/127.0.0.1/tcp/5003/p2p/") {
		t.Errorf("id with listen in the config:\n%s", out)
	}
	t.Setenv("RBNODE_LISTEN", "/ip4/127.0.0.1/tcp/5002")
	if _, out, _ := run(t, home, "id"); !strings.Contains(out, "/ip4/127.0.0.1/tcp/5002/p2p/") {
		t.Errorf("id with RBNODE_LISTEN:\n%s", out)
	}
	if _, out, _ := run(t, home, "id", "--listen", "/ip4/127.0.0.1/tcp/5001"); !strings.Contains(out, "/ip4/127.0.0.1/tcp/5001/p2p/") || strings.Contains(out, "5002") {
		t.Errorf("id --listen:\n%s", out)
	}
	// Main run again in the same process does not keep the variable of
	// the run before (urfave/cli marks a flag whose variable it found,
	// for good: a flag shared between runs made -count=2 fail).
	os.Unsetenv("RBNODE_LISTEN")
	if _, out, _ := run(t, home, "id"); !strings.Contains(out, "/ip4/127.0.0.1/tcp/5003/p2p/") {
		t.Errorf("id once RBNODE_LISTEN is unset again:\n%s", out)
	}
}

// TestSyncWithDeadPeer: a sync that could not reach its peer says so, with
// nothing synced (exit 3); --json lists the peer with its error.
func TestSyncWithDeadPeer(t *testing.T) {
	home := t.TempDir()
	dead := "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK"
	code, out, stderr := run(t, home, "sync", "--peer", dead)
	if code != cli.ExitInconclusive || strings.Contains(out, "synced") || !strings.Contains(out, "stopped syncing with 12D3KooWRBy97") || !strings.Contains(stderr, "connection refused") {
		t.Errorf("exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	code, out, _ = run(t, home, "sync", "--peer", dead, "--json")
	var rep struct {
		Peers []struct {
			Peer   string `json:"peer"`
			Stored *int   `json:"stored"`
			Error  string `json:"error"`
		} `json:"peers"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != cli.ExitInconclusive || rep.Error == "" ||
		len(rep.Peers) != 1 || !strings.HasPrefix(rep.Peers[0].Peer, "12D3KooWRBy97") || rep.Peers[0].Stored == nil || *rep.Peers[0].Stored != 0 ||
		!strings.Contains(rep.Peers[0].Error, "connection refused") {
		t.Errorf("sync --json: exit %d, %v: %s", code, err, out)
	}
}

// TestEmptyImport: importing a directory with nothing rbnode reads warns
// and succeeds.
func TestEmptyImport(t *testing.T) {
	home := t.TempDir()
	code, _, stderr := run(t, home, "import", t.TempDir())
	if code != cli.ExitOK || !strings.Contains(stderr, "warning:") || !strings.Contains(stderr, "holds no documents") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
