package cli_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/cli"
)

// docLine says what the doc-test does with one rbnode command as the docs
// write it (the key of docLines: its words up to a shell operator, before
// placeholders are filled in).
type docLine struct {
	// helpOnly is why the line cannot run in the sandbox; it is then
	// run with --help, which checks the command path and its flags.
	helpOnly string
	// code is the exit code the line has in the sandbox.
	code int
	// want is text its stdout or stderr must hold.
	want string
	// home is where it runs: "" a copy of the prepared home, "fresh" a new
	// empty one, "daemon" the home of the running daemon (the command
	// talks to it).
	home string
	// daemon: the line starts a daemon. It runs as a process with the
	// sandbox's network flags; it must come up (and serve /healthz when it
	// has --http), then stop on an interrupt with exit code 0.
	daemon bool
	// subst fills this line's placeholders where they differ from
	// docSubst's.
	subst map[string]string
}

// docLines lists every rbnode command line of the docs' code blocks. A line
// in the docs that is not here fails the test, and so does an entry that
// no doc has any more.
//
// The prepared home holds the repository's guix.sigs subset (24.0, 24.0.1,
// 26.0rc1, 29.2), trusts fanquake, achow101 and hebasto (who all attested
// 29.2) and has a builder key of its own (alice).
var docLines = map[string]docLine{
	"--version": {want: "rbnode version"},
	"init":      {home: "fresh", want: "config.toml"},

	"key generate --name NAME --email E":                  {home: "fresh", want: "generated ed25519 key"},
	"key generate --name alice --email alice@example.org": {home: "fresh", want: "generated ed25519 key"},
	"key import FILE":                                    {home: "fresh", subst: map[string]string{"FILE": "my-key.asc"}},
	"key import my-key.asc":                              {home: "fresh"},
	"key export [--secret]":                              {want: "-----BEGIN PGP PRIVATE KEY BLOCK-----"},
	"key export":                                         {want: "-----BEGIN PGP PUBLIC KEY BLOCK-----"},
	"key list":                                           {want: "alice <alice@example.org>"},
	"trust add KEYFILE...|FINGERPRINT":                   {home: "fresh"},
	"trust add builder-keys/*.gpg":                       {home: "fresh"},
	"trust add contrib/builder-keys/*.asc":               {home: "fresh"},
	"trust add bob.asc carol.asc":                        {home: "fresh"},
	"trust add 9EDAFF80E080659604F4A76B2EBB056FD847F8A7": {want: "Oliver Gugger"}, // held since the import, untrusted
	"trust remove FINGERPRINT":                           {},
	"trust list [--json]":                                {want: `"fingerprint"`},
	"trust list":                                         {want: "fanquake"},
	"trust list --json":                                  {want: `"fingerprint"`},

	"import PATH":              {want: "stored"},
	"import path/to/guix.sigs": {home: "fresh", want: "stored"},
	"sign FILE":                {subst: map[string]string{"FILE": "notes.txt"}, want: "wrote notes.txt.asc"},

	"status [VERSION] [--quorum N] [--json] [--wait] [--exclude GLOB]": {want: `"verdict": "consensus"`},
	"status 0.0.9 --quorum 3 --wait --timeout 2h --json":               {want: `"verdict": "consensus"`},
	`status "$VERSION" --quorum 3 --json`:                              {want: `"verdict": "consensus"`},
	`status "$version" --quorum "$quorum" --json`:                      {want: `"verdict": "consensus"`},
	`status "$VERSION" --quorum 3 --wait --timeout 6h`:                 {want: "CONSENSUS"},
	`status "$VERSION" --quorum 3 --wait --timeout 6h --json`:          {want: `"verdict": "consensus"`},
	"request VERSION --commit SHA":                                     {want: "requested cuprated 29.2", subst: map[string]string{"SHA": "0123456789abcdef0123456789abcdef01234567"}},
	// A request for a version without documents yet: signed and stored
	// (no daemon runs in this home).
	`request "$VERSION" --commit "$commit" --note rc1`: {want: "requested cuprated 29.2 at commit 0123456789abcdef0123456789abcdef01234567",
		subst: map[string]string{"$commit": "0123456789abcdef0123456789abcdef01234567"}},
	// The file has the name of a 29.2 artifact but not its bytes.
	"verify FILE... [--version V]": {code: cli.ExitNegative, want: "MISMATCH", subst: map[string]string{"FILE": "bitcoin-29.2-x86_64-linux-gnu.tar.gz"}},

	"daemon [--bootstrap MULTIADDR]...": {daemon: true},
	"daemon --http 127.0.0.1:8080":      {daemon: true},
	"id":                                {home: "daemon", want: "/p2p/"},
	"peers":                             {home: "daemon"},
	"publish PATH":                      {home: "daemon", want: "published"},
	"sync --peer MULTIADDR":             {want: "synced"},
	"sync --peer /dns4/rbnode.example.org/tcp/4731/p2p/12D3KooW...": {home: "fresh", want: "synced"},

	"build VERSION --repo DIR":           {helpOnly: "needs Guix; TestBuildCommand runs it against the stand-in pipeline"},
	"attest OUTDIR --version V":          {helpOnly: "needs a Guix pipeline's output directory"},
	"builds":                             {want: "no builds"},
	"export guix-sigs VERSION --out DIR": {want: "exported 33 documents"},
	"export intoto VERSION [--sign]":     {want: `"payloadType"`},
	`export intoto "$version" --quorum "$quorum" --sign --out "cuprated-$version.intoto.json"`: {},
}

// docSubst fills placeholders and stands in for what the sandbox cannot
// have (a public address, port 8080). "@fanquake" is a key's fingerprint.
var docSubst = map[string]string{
	"VERSION": "29.2", "V": "29.2", "0.0.9": "29.2", "$VERSION": "29.2", "$version": "29.2",
	"N": "3", "$quorum": "3",
	"NAME": "alice", "E": "alice@example.org",
	"KEYFILE":     "builder-keys/fanquake.gpg",
	"FINGERPRINT": "@fanquake",
	"9EDAFF80E080659604F4A76B2EBB056FD847F8A7": "@guggero",
	"PATH":           "path/to/guix.sigs",
	"GLOB":           "*-apple-darwin.zip",
	"DIR":            "exported",
	"OUTDIR":         "out",
	"MULTIADDR":      "@daemon",
	"127.0.0.1:8080": "127.0.0.1:0",
	"/dns4/rbnode.example.org/tcp/4731/p2p/12D3KooW": "@daemon", // its "..." gone
}

// TestDocCommandLines is the doc-test: every rbnode command line in a code
// block of README.md and docs/*.md runs in a sandbox (a temporary home and
// working directory laid out as the docs assume) and must exit as docLines
// says. Lines that cannot run here are run with --help.
func TestDocCommandLines(t *testing.T) {
	found := docFileLines(t)
	if len(found) < 20 {
		t.Fatalf("found only %d command lines in the docs", len(found))
	}
	for _, f := range found {
		if _, ok := docLines[f.key]; !ok {
			t.Errorf("%s: rbnode %s: not in docLines: say how the doc-test runs it (or why it cannot)", f.where, f.key)
		}
	}
	for key := range docLines {
		if !slices.ContainsFunc(found, func(f docFound) bool { return f.key == key }) {
			t.Errorf("docLines has %q, which no doc has any more", key)
		}
	}
	if t.Failed() {
		return
	}

	sb := newDocSandbox(t)
	for _, f := range found {
		l := docLines[f.key]
		args := sb.fill(t, f.words, l.subst)
		if l.helpOnly != "" {
			if code, _, stderr := run(t, sb.fresh(t), append(args, "--help")...); code != cli.ExitOK {
				t.Errorf("%s: rbnode %s --help: exit %d: %s", f.where, strings.Join(args, " "), code, stderr)
			}
			continue
		}
		if l.daemon {
			sb.runDaemon(t, f.where, args)
			continue
		}
		home := sb.copyHome(t)
		switch l.home {
		case "fresh":
			home = sb.fresh(t)
		case "daemon":
			home = sb.daemonHome
		}
		code, stdout, stderr := run(t, home, args...)
		if code != l.code {
			t.Errorf("%s: rbnode %s: exit %d, want %d\n%s%s", f.where, strings.Join(args, " "), code, l.code, stdout, stderr)
		} else if !strings.Contains(stdout+stderr, l.want) {
			t.Errorf("%s: rbnode %s: output lacks %q:\n%s%s", f.where, strings.Join(args, " "), l.want, stdout, stderr)
		}
	}
}

// docFound is one rbnode command of a doc.
type docFound struct {
	where string   // file:line
	key   string   // its docLines key
	words []string // its words up to a shell operator
}

func docFileLines(t *testing.T) []docFound {
	t.Helper()
	files, _ := filepath.Glob("../docs/*.md")
	files = append(files, "../README.md")
	var found []docFound
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
			for _, words := range docCommands(line) {
				found = append(found, docFound{where: filepath.Base(f) + ":" + strconv.Itoa(i+1), key: strings.Join(words, " "), words: words})
			}
		}
	}
	return found
}

// docCommand finds where an rbnode call starts in a shell line.
var docCommand = regexp.MustCompile(`(?:^|[\s(;&|]|^\$ )rbnode\s`)

// docCommands returns the words of the rbnode calls on a line of a code
// block, up to a shell operator. "rbnode key export | key list" in a
// synopsis lists two commands.
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
			var cmd []string
			for _, w := range words {
				if strings.ContainsAny(w, ">`") || w == "&&" || w == "||" || w == "|" {
					break
				}
				// "(rbnode import PATH);" ends at the parenthesis.
				if end := strings.IndexAny(w, ");"); end >= 0 {
					if end > 0 {
						cmd = append(cmd, w[:end])
					}
					break
				}
				cmd = append(cmd, w)
			}
			out = append(out, cmd)
		}
	}
	return out
}

func isCommandWord(w string) bool {
	switch w {
	case "init", "key", "trust", "import", "sign", "status", "verify", "daemon", "sync", "publish", "id", "peers", "build", "attest", "builds", "completion", "export", "request":
		return true
	}
	return false
}

// docSandbox is where the docs' lines run: a working directory holding the
// files they name, a prepared home, and a running daemon.
type docSandbox struct {
	dir        string            // the working directory
	base       string            // the prepared home, never used directly
	daemonHome string            // a copy of it, run by a daemon process
	at         map[string]string // "@name" values: fingerprints, the daemon's address
}

func newDocSandbox(t *testing.T) *docSandbox {
	t.Helper()
	guixSigs, err := filepath.Abs("../testdata/guix.sigs")
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(guixSigs, "builder-keys")
	sb := &docSandbox{dir: t.TempDir(), at: map[string]string{}}
	t.Chdir(sb.dir)

	// The files the docs name, relative to where they are run.
	files := map[string]string{
		"builder-keys/fanquake.gpg":         "fanquake.gpg",
		"builder-keys/achow101.gpg":         "achow101.gpg",
		"builder-keys/hebasto.gpg":          "hebasto.gpg",
		"contrib/builder-keys/fanquake.asc": "fanquake.gpg",
		"contrib/builder-keys/achow101.asc": "achow101.gpg",
		"contrib/builder-keys/hebasto.asc":  "hebasto.gpg",
		"bob.asc":                           "guggero.gpg",
		"carol.asc":                         "TheCharlatan.gpg",
	}
	for to, from := range files {
		b, err := os.ReadFile(filepath.Join(keys, from))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(to), 0o755)
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"fanquake", "guggero"} {
		b, _ := os.ReadFile(filepath.Join(keys, name+".gpg"))
		ks, err := attest.ReadKeys(b)
		if err != nil || len(ks) == 0 {
			t.Fatalf("read %s's key: %v", name, err)
		}
		sb.at["@"+name] = ks[0].Fingerprint
	}
	os.MkdirAll("path/to", 0o755)
	if err := os.Symlink(guixSigs, "path/to/guix.sigs"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile("notes.txt", []byte("release notes\n"), 0o644)
	os.WriteFile("bitcoin-29.2-x86_64-linux-gnu.tar.gz", []byte("not the released bytes"), 0o644)

	// Another node's secret key, as "key import my-key.asc" takes it.
	other := sb.fresh(t)
	mustRun(t, other, "key", "generate", "--name", "bob", "--email", "bob@example.org")
	_, secret, _ := mustRun(t, other, "key", "export", "--secret")
	os.WriteFile("my-key.asc", []byte(secret), 0o600)

	sb.base = sb.fresh(t)
	mustRun(t, sb.base, "key", "generate", "--name", "alice", "--email", "alice@example.org")
	mustRun(t, sb.base, "import", guixSigs)
	mustRun(t, sb.base, "trust", "add", "builder-keys/fanquake.gpg", "builder-keys/achow101.gpg", "builder-keys/hebasto.gpg")

	sb.daemonHome = sb.copyHome(t)
	d := startDaemon(t, sb.daemonHome, sb.dir, "daemon")
	addr, err := d.await(`listening on (/ip4/127\.0\.0\.1/tcp/\d+/p2p/\S+)`)
	if err != nil {
		t.Fatal(err)
	}
	sb.at["@daemon"] = addr
	return sb
}

// mustRun runs rbnode in-process and fails the test unless it exits 0.
func mustRun(t *testing.T, home string, args ...string) (int, string, string) {
	t.Helper()
	code, stdout, stderr := run(t, home, args...)
	if code != cli.ExitOK {
		t.Fatalf("rbnode %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return code, stdout, stderr
}

func (sb *docSandbox) fresh(t *testing.T) string {
	return filepath.Join(t.TempDir(), "home")
}

// copyHome copies the prepared home (its store is closed) to a new one.
func (sb *docSandbox) copyHome(t *testing.T) string {
	t.Helper()
	to := sb.fresh(t)
	err := filepath.WalkDir(sb.base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(sb.base, p)
		dst := filepath.Join(to, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, info.Mode().Perm())
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// fill turns a doc line's words into arguments: [optional] brackets go,
// "A|B" takes A, "X..." is one X, quotes go, placeholders get their
// values, and file globs are expanded as a shell would.
func (sb *docSandbox) fill(t *testing.T, words []string, subst map[string]string) []string {
	t.Helper()
	var args []string
	for _, w := range words {
		w = strings.Trim(strings.TrimSuffix(w, "..."), `[]"`)
		w, _, _ = strings.Cut(w, "|")
		w = strings.TrimSuffix(w, "...")
		if w == "" {
			continue
		}
		if v, ok := subst[w]; ok {
			w = v
		} else if v, ok := docSubst[w]; ok {
			w = v
		}
		w = strings.ReplaceAll(w, "$version", docSubst["$version"])
		if v, ok := sb.at[w]; ok {
			w = v
		}
		if regexp.MustCompile(`^[A-Z][A-Z_]*$`).MatchString(w) {
			t.Errorf("rbnode %s: no value for the placeholder %s", strings.Join(words, " "), w)
		}
		if strings.Contains(w, "*") && !slices.Contains([]string{"--exclude", "--artifacts"}, lastOf(args)) {
			if m, _ := filepath.Glob(w); len(m) > 0 {
				args = append(args, m...)
				continue
			}
		}
		args = append(args, w)
	}
	return args
}

func lastOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// runDaemon runs a doc's daemon line as a process in its own copy of the
// prepared home, on 127.0.0.1 only, and checks that it comes up and stops
// cleanly on an interrupt.
func (sb *docSandbox) runDaemon(t *testing.T, where string, args []string) {
	t.Helper()
	args = append(args, "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--no-dht")
	d := startDaemon(t, sb.copyHome(t), sb.dir, args...)
	if _, err := d.await(`listening on /ip4/127\.0\.0\.1/tcp/(\d+)`); err != nil {
		t.Errorf("%s: rbnode %s: %v", where, strings.Join(args, " "), err)
		return
	}
	if slices.Contains(args, "--http") {
		url, err := d.await(`status page on (http://\S+/)`)
		if err != nil {
			t.Errorf("%s: rbnode %s: %v", where, strings.Join(args, " "), err)
			return
		}
		if err := awaitHealthy(url + "healthz"); err != nil {
			t.Errorf("%s: rbnode %s: %v", where, strings.Join(args, " "), err)
		}
	}
	if code := d.stop(t); code != cli.ExitOK {
		t.Errorf("%s: rbnode %s: exit %d after an interrupt:\n%s", where, strings.Join(args, " "), code, d.output())
	} else if !strings.Contains(d.output(), "rbnode daemon: stopped") {
		t.Errorf("%s: rbnode %s: no 'stopped' line:\n%s", where, strings.Join(args, " "), d.output())
	}
}

// awaitHealthy polls a daemon's /healthz until it answers 200 (gossip
// starts a moment after the daemon listens), for at most a minute.
func awaitHealthy(url string) error {
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy within a minute: %w", err)
		}
		<-tick.C
	}
}

// docDaemon is a daemon process and what it has written to stderr.
type docDaemon struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when stderr is at its end
	mu   sync.Mutex
	out  strings.Builder
	grew chan struct{} // signalled at each new line
}

// startDaemon starts rbnode (the test binary in the role, on $PATH) as a
// process; it is stopped at the test's end if it still runs.
func startDaemon(t *testing.T, home, dir string, args ...string) *docDaemon {
	t.Helper()
	if args[0] == "daemon" && !slices.Contains(args, "--listen") {
		args = append(args, "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--no-dht")
	}
	cmd := exec.Command("rbnode", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RBNODE_HOME="+home)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &docDaemon{cmd: cmd, done: make(chan struct{}), grew: make(chan struct{}, 1)}
	go func() {
		defer close(d.done)
		r := bufio.NewReader(stderr)
		for {
			line, err := r.ReadString('\n')
			d.mu.Lock()
			d.out.WriteString(line)
			d.mu.Unlock()
			select {
			case d.grew <- struct{}{}:
			default:
			}
			if err != nil {
				io.Copy(io.Discard, r)
				return
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			d.stop(t)
		}
	})
	return d
}

func (d *docDaemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// await waits up to a minute for a line matching re and returns its
// first group.
func (d *docDaemon) await(re string) (string, error) {
	rx := regexp.MustCompile(re)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if m := rx.FindStringSubmatch(d.output()); m != nil {
			return m[1], nil
		}
		select {
		case <-d.grew:
		case <-d.done:
			if m := rx.FindStringSubmatch(d.output()); m != nil {
				return m[1], nil
			}
			return "", &awaitError{re: re, out: d.output(), why: "the daemon exited"}
		case <-ctx.Done():
			return "", &awaitError{re: re, out: d.output(), why: "no such line within a minute"}
		}
	}
}

type awaitError struct{ re, out, why string }

func (e *awaitError) Error() string { return e.why + " (waiting for " + e.re + "):\n" + e.out }

// stop interrupts the daemon and returns its exit code; one that does not
// stop within 30 s is killed.
func (d *docDaemon) stop(t *testing.T) int {
	d.cmd.Process.Signal(syscall.SIGINT)
	exited := make(chan error, 1)
	go func() { <-d.done; exited <- d.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-exited
		t.Errorf("the daemon did not stop within 30 s of an interrupt:\n%s", d.output())
	}
	return d.cmd.ProcessState.ExitCode()
}
