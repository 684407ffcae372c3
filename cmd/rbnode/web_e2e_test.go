//go:build e2e

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scriptID is a builder id a hostile builder might choose.
const scriptID = `<script>alert("rbnode")</script>`

// statusURL waits for the daemon's "status page on URL" line.
func (p *daemonProc) statusURL(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`status page on (http://\S+)/`)
	var url string
	eventually(t, 20*time.Second, "the status page's address", func() bool {
		m := re.FindStringSubmatch(p.log.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	})
	return url
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

// TestE2EStatusPage: three builder daemons; the third's toolchain is not
// deterministic and its builder id is a script tag. The first serves the
// status page. Headless Chromium loads the divergent release's page: the
// matrix and the diagnosis are there, the builder id shows as text and no
// script is in the page; a screenshot goes into the test's output. The
// JSON twins equal the CLI's --json, /metrics parses and counts what
// happened, /healthz answers, logs are JSON with RFC 3339 times, SIGHUP
// reloads the quorum without a restart, and exports work through the
// running daemon (gpg --verify passes on each exported signature).
func TestE2EStatusPage(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("this test needs Debian's chromium (apt-get install chromium)")
	}
	names := []string{"builder-a", "builder-b", "builder-c"}
	homes, repos, _ := threeBuilders(t, names)
	d1 := startDaemonProc(t, homes[0], []string{"RBNODE_HTTP=127.0.0.1:0", "RBNODE_LOG_FORMAT=json"})
	d2 := startDaemonProc(t, homes[1], nil, d1.addr(t))
	startDaemonProc(t, homes[2], nil, d1.addr(t), d2.addr(t))
	base := d1.statusURL(t)

	path := fakeGuixPath(t)
	for i, h := range homes {
		env, args := []string{path}, []string{"build", "0.1.0", "--repo", repos[i]}
		if i == 2 {
			env = append(env, "STANDIN_NONDETERMINISTIC=1")
			args = append(args, "--builder-id", scriptID)
		}
		if out, err := rbnodeEnv(t, h, env, args...); err != nil {
			t.Fatalf("%s build 0.1.0: %v\n%s", names[i], err, out)
		}
	}
	eventually(t, 30*time.Second, "divergence on 0.1.0 at the first node", func() bool {
		out, err := rbnode(t, homes[0], "status", "0.1.0")
		return exitCode(err) == 1 && strings.Contains(out, scriptID)
	})

	// The browser.
	actx, cancel := chromedp.NewExecAllocator(t.Context(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 760))
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // start the browser without a deadline
		t.Fatalf("start chromium: %v", err)
	}
	step, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()
	if err := chromedp.Do(step, chromedp.Navigate(base+"/release/cuprated/0.1.0"), chromedp.WaitVisible(chromedp.CSS("#matrix"))); err != nil {
		t.Fatalf("load the release page: %v", err)
	}
	matrix, err := chromedp.Run(step, chromedp.Text(chromedp.CSS("#matrix")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(matrix, "cuprated-0.1.0-x86_64-unknown-linux-gnu.tar.gz") || !strings.Contains(matrix, "divergence") ||
		!strings.Contains(matrix, "✓") || !strings.Contains(matrix, "A") {
		t.Errorf("the matrix reads:\n%s", matrix)
	}
	body, err := chromedp.Run(step, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Divergence diagnosis", "rustc_version", scriptID, "builder-a", "builder-b"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page as shown lacks %q:\n%s", want, body)
		}
	}
	html, err := chromedp.Run(step, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(html), "<script") {
		t.Errorf("the page's DOM holds a script element:\n%s", html)
	}
	shot, err := chromedp.Run(step, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.ArtifactDir(), "release-0.1.0.png")
	if p := os.Getenv("RBNODE_SCREENSHOT"); p != "" {
		dest = p // make docs: refresh docs/status-page.png
	}
	if err := os.WriteFile(dest, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", dest, len(shot))

	// JSON twins: what the CLI prints with --json.
	for _, c := range []struct{ page, cli string }{
		{"/release/cuprated/0.1.0?format=json", "status 0.1.0 --json"},
		{"/?format=json", "status --json"},
		{"/builds?format=json", "builds --json"},
	} {
		code, page := httpGet(t, base+c.page)
		cli, _ := rbnode(t, homes[0], strings.Fields(c.cli)...)
		if code != 200 || !sameJSON(t, page, cli) {
			t.Errorf("%s (%d) differs from rbnode %s:\n%s\n%s", c.page, code, c.cli, page, cli)
		}
	}
	_, peers := httpGet(t, base+"/peers?format=json")
	var pp []struct{ ID string }
	json.Unmarshal([]byte(peers), &pp)
	if len(pp) != 2 || !strings.Contains(must(t, homes[0], "peers", "--json"), pp[0].ID) {
		t.Errorf("/peers: %s", peers)
	}
	if code, page := httpGet(t, base+"/peers"); code != 200 || len(pp) == 0 || !strings.Contains(page, pp[0].ID) {
		t.Errorf("the peers page (%d) does not list %v:\n%s", code, pp, page)
	}
	if code, page := httpGet(t, base+"/builds"); code != 200 || !strings.Contains(page, `href="/builds/0/log/`) {
		t.Errorf("the builds page (%d) links no stage log:\n%s", code, page)
	}

	if code, body := httpGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	sample := func(name, label, value string) float64 {
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if m.Counter != nil {
						return m.Counter.GetValue()
					}
					return m.Gauge.GetValue()
				}
			}
		}
		return -1
	}
	if got := sample("rbnode_documents_stored_total", "source", "network"); got < 2 {
		t.Errorf("rbnode_documents_stored_total{source=network} = %v, want the two other builders' attestations", got)
	}
	if got := sample("rbnode_builds_total", "outcome", "ok"); got != 1 {
		t.Errorf("rbnode_builds_total{outcome=ok} = %v", got)
	}
	if got := sample("rbnode_releases", "verdict", "divergence"); got != 1 {
		t.Errorf("rbnode_releases{verdict=divergence} = %v", got)
	}
	if fams["rbnode_peers"].GetMetric()[0].GetGauge().GetValue() != 2 {
		t.Errorf("rbnode_peers: %v", fams["rbnode_peers"])
	}

	// Logs: JSON objects with RFC 3339 times.
	sc := bufio.NewScanner(strings.NewReader(d1.log.String()))
	logs := 0
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "{") {
			continue
		}
		var l struct{ Time string }
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, sc.Text())
		}
		if _, err := time.Parse(time.RFC3339, l.Time); err != nil {
			t.Fatalf("log time %q is not RFC 3339: %s", l.Time, sc.Text())
		}
		logs++
	}
	if logs == 0 {
		t.Fatalf("no JSON log lines:\n%s", d1.log)
	}

	// SIGHUP: a new quorum from the config file, without a restart.
	os.WriteFile(filepath.Join(homes[0], "config.toml"), []byte("quorum = 2\n"), 0o600)
	if err := d1.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the reload", func() bool {
		return strings.Contains(d1.log.String(), "reloaded the configuration and the trust set")
	})
	if _, page := httpGet(t, base+"/release/cuprated/0.1.0?format=json"); !strings.Contains(page, `"quorum": 2`) {
		t.Errorf("after SIGHUP with quorum = 2 the page says:\n%s", page)
	}
	if d1.cmd.ProcessState != nil {
		t.Fatal("SIGHUP stopped the daemon")
	}

	// Exports through the running daemon.
	out := t.TempDir()
	must(t, homes[0], "export", "guix-sigs", "0.1.0", "--out", out)
	gnupg := t.TempDir()
	defer exec.Command("gpgconf", "--homedir", gnupg, "--kill", "all").Run()
	gpg := func(args ...string) (string, error) {
		out, err := exec.Command("gpg", append([]string{"--homedir", gnupg, "--batch"}, args...)...).CombinedOutput()
		return string(out), err
	}
	keys, _ := filepath.Glob(filepath.Join(out, "builder-keys", "*.gpg"))
	if o, err := gpg(append([]string{"--import"}, keys...)...); err != nil || len(keys) != 3 {
		t.Fatalf("gpg --import %d exported keys: %v\n%s", len(keys), err, o)
	}
	sigs, _ := filepath.Glob(filepath.Join(out, "0.1.0", "*", "attestation.json.asc"))
	if len(sigs) != 3 {
		t.Fatalf("exported %d attestations, want 3", len(sigs))
	}
	for _, s := range sigs {
		if o, err := gpg("--verify", s, strings.TrimSuffix(s, ".asc")); err != nil || !strings.Contains(o, "Good signature") {
			t.Errorf("gpg --verify %s: %v\n%s", s, err, o)
		}
	}
	st := must(t, homes[0], "export", "intoto", "0.1.0")
	if !strings.Contains(st, `"verdict": "divergence"`) || !strings.Contains(st, `"subject": [`) {
		t.Errorf("export intoto:\n%s", st)
	}
}
