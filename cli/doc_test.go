package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rbnode/rbnode/cli"
)

// TestDocCommandLines is the doc-test: every rbnode command line in a code
// block of README.md and docs/*.md must name a real command with flags it
// has. Each is run with --help appended, which parses the command path and
// every flag but runs nothing.
func TestDocCommandLines(t *testing.T) {
	files, _ := filepath.Glob("../docs/*.md")
	files = append(files, "../README.md")
	home := t.TempDir()
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inBlock := false
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inBlock = !inBlock
				continue
			}
			if !inBlock {
				continue
			}
			for _, args := range docCommands(line) {
				seen++
				where := f + ":" + strconv.Itoa(i+1)
				code, _, stderr := run(t, home, append(args, "--help")...)
				if code != cli.ExitOK {
					t.Errorf("%s: rbnode %s: exit %d: %s", where, strings.Join(args, " "), code, stderr)
				}
			}
		}
	}
	if seen < 20 {
		t.Errorf("found only %d command lines in the docs", seen)
	}
}

// docCommand finds where an rbnode call starts in a shell line.
var docCommand = regexp.MustCompile(`(?:^|[\s(;&|]|^\$ )rbnode\s`)

// docCommands returns the argument lists of the rbnode calls on a line of
// a code block. Placeholders are filled in enough to parse: [optional]
// brackets go, "A|B" takes A, and typed flags get a value of their type.
// "rbnode key export | key list" in a synopsis lists two commands.
func docCommands(line string) [][]string {
	line, _, _ = strings.Cut(line, " #")
	var out [][]string
	for _, loc := range docCommand.FindAllStringIndex(line, -1) {
		rest := line[loc[1]:]
		// "journalctl -u rbnode -f" names the service, not a command.
		if first := strings.Fields(rest + " x")[0]; !isCommandWord(first) && !strings.HasPrefix(first, "--") {
			continue
		}
		for si, seg := range strings.Split(rest, " | ") {
			words := strings.Fields(seg)
			if si > 0 && (len(words) == 0 || !isCommandWord(words[0])) {
				break // a real shell pipe
			}
			out = append(out, fillPlaceholders(words))
		}
	}
	return out
}

func isCommandWord(w string) bool {
	switch w {
	case "init", "key", "trust", "import", "sign", "status", "verify", "daemon", "sync", "publish", "id", "peers", "build", "attest", "builds", "completion", "export":
		return true
	}
	return false
}

func fillPlaceholders(words []string) []string {
	typed := map[string]string{"--quorum": "3", "--limit": "1", "--timeout": "1m", "--sync-interval": "1m", "--stop-timeout": "1m"}
	var args []string
	for _, w := range words {
		if strings.ContainsAny(w, ">;`") || w == "&&" || w == "||" || w == "|" {
			break
		}
		w = strings.Trim(w, "[]()")
		w = strings.TrimSuffix(w, "...")
		w, _, _ = strings.Cut(w, "|")
		if w == "" {
			continue
		}
		if n := len(args); n > 0 {
			if v, ok := typed[args[n-1]]; ok {
				if _, err := strconv.Atoi(w); err != nil {
					if _, err := time.ParseDuration(w); err != nil {
						w = v
					}
				}
			}
		}
		args = append(args, w)
	}
	return args
}
