package web_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/builder"
	"github.com/rbnode/rbnode/node"
	"github.com/rbnode/rbnode/node/web"
)

var testNow = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

const evilID = `<script>alert("pwned")</script>`

// fixture is a real node holding a divergent release 0.1.0: alice and bob
// agree, a builder whose id is a script tag built with another rustc, and
// eve signed two different hashes (an equivocation).
type fixture struct {
	n     *node.Node
	srv   *httptest.Server
	equiv []*attest.Document
}

func attestation(builderID, version, sum, rustc string) *attest.Attestation {
	gc := "0123456789abcdef0123456789abcdef01234567"
	commit := "1111111111111111111111111111111111111111"
	return &attest.Attestation{
		Schema: attest.AttestationSchema, Package: "cuprated", Version: version,
		GitCommit: commit, SourceDateEpoch: 1747000000, GuixSystem: "x86_64-linux",
		RustTarget:        "x86_64-unknown-linux-gnu",
		Artifact:          attest.File{Filename: "cuprated-" + version + "-x86_64-unknown-linux-gnu.tar.gz", SHA256: sum, Size: 1234},
		Distsrc:           attest.File{Filename: "cuprate-" + version + "-" + commit[:12] + "-src.tar.gz", SHA256: strings.Repeat("d", 64), Size: -1},
		GuixChannelCommit: &gc, RustcVersion: &rustc, BuilderID: builderID,
		AttestedAt: testNow.Add(-time.Hour),
	}
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.Home = t.TempDir()
	n, err := node.Open(cfg, zerolog.Nop(), node.WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	f := &fixture{n: n}
	var docs []*attest.Document
	sign := func(sk *attest.SecretKey, a *attest.Attestation) *attest.Document {
		body := a.Encode()
		sig, err := sk.Sign(body, testNow.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		signer, err := attest.SanitizeBuilderID(a.BuilderID)
		if err != nil {
			t.Fatal(err)
		}
		d := &attest.Document{Kind: attest.KindAttestation, Version: a.Version, Signer: signer, Name: "attestation.json", Body: body, Signature: sig}
		docs = append(docs, d)
		return d
	}
	for _, b := range []struct{ id, sum, rustc string }{
		{"alice", strings.Repeat("a", 64), "rustc 1.82.0"},
		{"bob", strings.Repeat("a", 64), "rustc 1.82.0"},
		{evilID, strings.Repeat("b", 64), "rustc 1.83.0-nightly"},
		{"eve", strings.Repeat("a", 64), "rustc 1.82.0"},
	} {
		name := b.id
		if name == evilID {
			name = "evil" // OpenPGP user ids take no angle brackets; builder ids do
		}
		sk, err := attest.GenerateKey(name, "", testNow.Add(-24*time.Hour), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		held, err := n.AddKeys([]*attest.Key{sk.Public()})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Trust(held, ""); err != nil {
			t.Fatal(err)
		}
		sign(sk, attestation(b.id, "0.1.0", b.sum, b.rustc))
		if b.id == "eve" {
			a := attestation(b.id, "0.1.0", strings.Repeat("e", 64), b.rustc)
			a.AttestedAt = testNow.Add(-time.Minute)
			f.equiv = append(f.equiv, docs[len(docs)-1], sign(sk, a))
		}
		if b.id != "eve" {
			sign(sk, attestation(b.id, "0.0.9", strings.Repeat("c", 64), b.rustc))
		}
	}
	if s, err := n.Ingest(t.Context(), docs, "test"); err != nil || s.Stored != len(docs) {
		t.Fatalf("ingest: %v %+v", err, s)
	}
	f.srv = httptest.NewServer(web.New(web.Config{Releases: n, Documents: n, Builds: n}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestReleasePage: the divergent release's page shows the matrix with one
// mark per hash group and the equivocation, the diagnosis naming the field
// that differs, links to both equivocating documents, and every stranger's
// string escaped: no script runs, no tag is injected.
func TestReleasePage(t *testing.T) {
	f := newFixture(t)
	resp, body := f.get(t, "/release/cuprated/0.1.0")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %s, type %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q allows scripts", csp)
	}
	for _, want := range []string{
		`<table id="matrix">`, "Divergence diagnosis", "rustc_version", "rustc 1.83.0-nightly",
		"cuprated-0.1.0-x86_64-unknown-linux-gnu.tar.gz", `class="verdict divergence"`,
		`&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;`, "Equivocations",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(strings.ToLower(body), "<script") {
		t.Errorf("the page carries a script tag:\n%s", body)
	}
	// The tarball's row: alice, bob (✓), the script builder (A), eve (!).
	row := regexp.MustCompile(`(?s)<tr><td class="mono">cuprated-0\.1\.0-x86_64[^<]*</td>(.*?)</tr>`).FindStringSubmatch(body)
	if row == nil {
		t.Fatal("no matrix row for the tarball")
	}
	marks := regexp.MustCompile(`<td class="mark [^"]*">([^<]*)</td>`).FindAllStringSubmatch(row[1], -1)
	var got []string
	for _, m := range marks {
		got = append(got, m[1])
	}
	if strings.Join(got, " ") != "✓ ✓ A !" && strings.Join(got, " ") != "A ✓ ✓ !" {
		t.Errorf("tarball marks %v, want alice and bob ✓, the script builder A, eve !", got)
	}
	for _, d := range f.equiv {
		id, _ := d.ID()
		for _, link := range []string{"/doc/" + id.String(), "/doc/" + id.String() + "/signature"} {
			if !strings.Contains(body, `href="`+link+`"`) {
				t.Errorf("no link to %s", link)
			}
		}
	}
}

// TestDocumentDownloads: the equivocation's documents download with their
// exact signed bytes and signatures, under a safe file name.
func TestDocumentDownloads(t *testing.T) {
	f := newFixture(t)
	for _, d := range f.equiv {
		id, _ := d.ID()
		resp, body := f.get(t, "/doc/"+id.String())
		if resp.StatusCode != 200 || body != string(d.Body) {
			t.Fatalf("document %s: %s, %d bytes", id.Short(), resp.Status, len(body))
		}
		if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="`+id.Short()+`-attestation.json"` {
			t.Errorf("Content-Disposition %q", cd)
		}
		if _, sig := f.get(t, "/doc/"+id.String()+"/signature"); sig != string(d.Signature) {
			t.Errorf("signature of %s differs", id.Short())
		}
	}
	if resp, _ := f.get(t, "/doc/"+strings.Repeat("0", 64)); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown document: %s", resp.Status)
	}
	if resp, _ := f.get(t, "/doc/..%2f..%2fetc%2fpasswd"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("malformed id: %s", resp.Status)
	}
}

// TestJSONTwins: each page's ?format=json is the data the CLI's --json
// prints, encoded the same way.
func TestJSONTwins(t *testing.T) {
	f := newFixture(t)
	rep, err := f.n.Status("", "0.1.0", 0)
	if err != nil {
		t.Fatal(err)
	}
	list, err := f.n.Releases("", 0)
	if err != nil {
		t.Fatal(err)
	}
	builds, _ := f.n.Builds()
	for _, c := range []struct {
		path string
		want any
	}{
		{"/release/cuprated/0.1.0?format=json", rep},
		{"/?format=json", list},
		{"/builds?format=json", builds},
		{"/peers?format=json", []node.Peer{}},
	} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.Encode(c.want)
		resp, body := f.get(t, c.path)
		if resp.Header.Get("Content-Type") != "application/json" || body != buf.String() {
			t.Errorf("%s (%s):\n%s\nwant\n%s", c.path, resp.Header.Get("Content-Type"), body, buf.String())
		}
	}
}

// TestReleasesPage: newest version first, each linking to its page.
func TestReleasesPage(t *testing.T) {
	f := newFixture(t)
	_, body := f.get(t, "/")
	i, j := strings.Index(body, `href="/release/cuprated/0.1.0"`), strings.Index(body, `href="/release/cuprated/0.0.9"`)
	if i < 0 || j < 0 || i > j {
		t.Errorf("0.1.0 at %d, 0.0.9 at %d: want both, newest first", i, j)
	}
	if !strings.Contains(body, "Releases 1–2 of 2, newest first.") || strings.Contains(body, "older →") {
		t.Errorf("the page count is wrong:\n%s", body)
	}
	if _, body := f.get(t, "/?page=2"); strings.Contains(body, "/release/cuprated/") {
		t.Errorf("page 2 of a two-release list lists releases:\n%s", body)
	}
}

// TestBadRequests: unknown releases and malformed names are clear
// errors, not crashes or internal errors.
func TestBadRequests(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		path string
		code int
	}{
		{"/release/cuprated/9.9.9", http.StatusNotFound},
		{"/release/cuprated/9.9.9?format=json", http.StatusNotFound},
		{"/release/cuprated/%3Cb%3E", http.StatusBadRequest},
		{"/nothing-here", http.StatusNotFound},
		{"/builds/7/log/build", http.StatusNotFound},
	} {
		resp, body := f.get(t, c.path)
		if resp.StatusCode != c.code {
			t.Errorf("%s: %s, want %d\n%s", c.path, resp.Status, c.code, body)
		}
		if strings.Contains(body, "<b>") {
			t.Errorf("%s: unescaped input in the error page", c.path)
		}
	}
	if resp, _ := f.srv.Client().Post(f.srv.URL+"/", "text/plain", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %s (the page is read-only)", resp.Status)
	}
}

// TestBuildLogs: a stage's log inside the build's work directory is served
// as plain text; a record pointing outside it gets nothing.
func TestBuildLogs(t *testing.T) {
	f := newFixture(t)
	work := t.TempDir()
	logPath := filepath.Join(work, "logs", "build.log")
	os.MkdirAll(filepath.Dir(logPath), 0o755)
	os.WriteFile(logPath, []byte("<b>compiling</b>\n"), 0o644)
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("key material"), 0o600)
	for i, l := range []string{logPath, secret} {
		if err := f.n.AddBuild(&builder.Record{Version: "0.1.0", WorkDir: work, Status: builder.StatusOK,
			StartedAt: testNow.Add(time.Duration(i) * time.Minute), Stages: []builder.StageRecord{{Stage: "build", Log: l}}}); err != nil {
			t.Fatal(err)
		}
	}
	resp, body := f.get(t, "/builds/0/log/build")
	if resp.StatusCode != 200 || body != "<b>compiling</b>\n" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("log: %s %q %s", resp.Status, body, resp.Header.Get("Content-Type"))
	}
	if resp, body := f.get(t, "/builds/1/log/build"); resp.StatusCode != http.StatusForbidden || strings.Contains(body, "key material") {
		t.Errorf("a log outside the work directory: %s %q", resp.Status, body)
	}
	_, page := f.get(t, "/builds")
	if !strings.Contains(page, `href="/builds/0/log/build"`) {
		t.Errorf("the builds page does not link the log:\n%s", page)
	}
}

func TestListenAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"8080": "127.0.0.1:8080", ":8080": "127.0.0.1:8080", ":0": "127.0.0.1:0",
		"0.0.0.0:80": "0.0.0.0:80", "[::1]:9": "[::1]:9", "localhost:1": "localhost:1",
	} {
		if got, err := web.ListenAddr(in); err != nil || got != want {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "host", "1.2.3.4"} {
		if _, err := web.ListenAddr(bad); err == nil {
			t.Errorf("ListenAddr(%q) accepted", bad)
		}
	}
}

// TestReleasePageRequest: a release judged against a build request shows
// the request and each trusted builder's answer, a failure with its stage,
// exit code and log lines, all escaped.
func TestReleasePageRequest(t *testing.T) {
	f := newFixture(t)
	var docs []*attest.Document
	for _, who := range []string{"rm", "carol"} {
		sk, err := attest.GenerateKey(who, "", testNow.Add(-24*time.Hour), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		held, err := f.n.AddKeys([]*attest.Key{sk.Public()})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.n.Trust(held, ""); err != nil {
			t.Fatal(err)
		}
		commit := "1111111111111111111111111111111111111111"
		kind, name, body := attest.KindRequest, attest.RequestName, (&attest.BuildRequest{Project: "cuprated", Version: "0.1.0",
			GitCommit: commit, Requester: who, RequestedAt: testNow.Add(-2 * time.Hour), Note: "rc1"}).Encode()
		if who == "carol" {
			kind, name, body = attest.KindBuildFailure, attest.FailureName, (&attest.BuildFailure{Project: "cuprated", Version: "0.1.0",
				GitCommit: commit, BuilderID: who, Stage: "guix-build", ExitCode: 1, Error: "stage guix-build exited with status 1",
				LogTail: []string{`error: <script>alert(1)</script>`}, FailedAt: testNow.Add(-time.Hour)}).Encode()
		}
		sig, err := sk.Sign(body, testNow.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, &attest.Document{Kind: kind, Name: name, Body: body, Signature: sig})
	}
	if s, err := f.n.Ingest(t.Context(), docs, "test"); err != nil || s.Stored != 2 {
		t.Fatalf("ingest: %v %+v", err, s)
	}
	_, body := f.get(t, "/release/cuprated/0.1.0")
	for _, want := range []string{
		`<h2 id="request">Build request</h2>`, "build <span class=\"mono\">1111111111111111111111111111111111111111</span>",
		"asked by rm", "“rc1”", `failed at <span class="mono">guix-build</span> (exit 1)`,
		"error: &lt;script&gt;alert(1)&lt;/script&gt;", "attested",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(strings.ToLower(body), "<script") {
		t.Errorf("the page carries a script tag")
	}
}
