package node

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

var (
	propertySeed = flag.Uint64("property.seed", 0, "seed of TestVerdictIsOrderIndependent (0: a new one, printed)")
	propertyLong = flag.Bool("property.long", false, "run the long variant of TestVerdictIsOrderIndependent")
)

// propertyScale sizes one run of the order-independence property test.
type propertyScale struct {
	nodes, builders, releases, restarts int
}

// orderDoc is one signed document of the scenario, in its own tree.
type orderDoc struct {
	path    string
	builder int
}

// orderEvent is one step a node takes.
type orderEvent struct {
	node int
	kind string // import, trust, know-mallory, revocation, restart
	arg  int    // the document or builder
}

// TestVerdictIsOrderIndependent: several daemons receive the same signed
// documents in random orders, each through a random mix of local import,
// gossip and sync, with trust given before, between and after them, a
// key's revocation arriving late, restarts in between and, on some nodes,
// an untrusted budget small enough to drop documents. Once all have
// everything and the same trust set, every node's status of every
// release is byte for byte the report of a node that trusted first and
// imported once, and so is its release list (read through the summary
// cache, polled while documents still arrive). The seed is printed on failure: -property.seed=N
// replays it; -property.long runs a larger scenario.
func TestVerdictIsOrderIndependent(t *testing.T) {
	seed := *propertySeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with: go test ./node -run TestVerdictIsOrderIndependent -property.seed=%d", seed)
		}
	})
	scale := propertyScale{nodes: 3, builders: 5, releases: 4, restarts: 3}
	if *propertyLong {
		scale = propertyScale{nodes: 6, builders: 10, releases: 20, restarts: 10}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	t.Logf("seed %d, %+v", seed, scale)

	// The builders: the last, mallory, is never trusted; builder 0's key
	// is compromised, its revocation reaching each node at some point.
	var builders []builderKey
	for i := range scale.builders {
		builders = append(builders, newBuilder(t, fmt.Sprintf("builder%d", i)))
	}
	mallory := len(builders)
	builders = append(builders, newBuilder(t, "mallory"))
	revoked, err := builders[0].sk.RevokedPublic(true, "lost laptop", testNow.Add(-30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	// The documents: most builders attest most releases, now and then
	// with another hash (a divergence) or with two (an equivocation).
	var docs []orderDoc
	var versions []string
	for r := range scale.releases {
		version := fmt.Sprintf("0.%d.0", r+1)
		versions = append(versions, version)
		for b := range builders {
			if rng.IntN(5) == 0 {
				continue
			}
			hashes := []string{sha('a')}
			switch rng.IntN(8) {
			case 0:
				hashes = []string{sha('b')}
			case 1:
				hashes = append(hashes, sha('c'))
			}
			commit := commitA
			if rng.IntN(4) == 0 {
				commit = commitB
			}
			for _, h := range hashes {
				tree := t.TempDir()
				p := builders[b].writeAttestation(t, tree, builders[b].attestation(version, h, commit, "rustc 1.82.0"))
				docs = append(docs, orderDoc{path: p, builder: b})
			}
			if rng.IntN(6) == 0 { // a build failure, for either commit
				f := &attest.BuildFailure{Project: "cuprated", Version: version, GitCommit: []string{commitA, commitB}[rng.IntN(2)],
					BuilderID: builders[b].name, Stage: "guix-build", ExitCode: 1, LogTail: []string{"error"}, FailedAt: testNow.Add(-time.Hour)}
				docs = append(docs, orderDoc{path: builders[b].writeSigned(t, t.TempDir(), version, attest.FailureName, f.Encode()), builder: b})
			}
		}
		// Build requests: by builder1 (trusted) for commit A, then maybe
		// an rc2 for commit B; by mallory, latest of all, never judged.
		// The first release has all three.
		for i, by := range []int{1, 1, mallory} {
			if r > 0 && rng.IntN(2) == 0 {
				continue
			}
			req := &attest.BuildRequest{Project: "cuprated", Version: version, GitCommit: []string{commitA, commitB, commitB}[i],
				Requester: builders[by].name, RequestedAt: testNow.Add(time.Duration(i-3) * time.Hour)}
			docs = append(docs, orderDoc{path: builders[by].writeSigned(t, t.TempDir(), version, attest.RequestName, req.Encode()), builder: by})
		}
	}

	// The reference: trusts first, imports once.
	ref := openTestNode(t)
	trusted := slices.Clone(builders[:mallory])
	trustBuilders(t, ref, trusted...)
	if _, err := ref.AddKeys([]*attest.Key{revoked, builders[mallory].sk.Public()}); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		mustImport(t, ref, d.path)
	}
	want := map[string]string{}
	for _, v := range versions {
		r, err := ref.Status("", v, 2)
		if err != nil {
			t.Fatal(err)
		}
		want[v] = mustJSON(t, r)
		if v == versions[0] && (r.Request == nil || r.Request.GitCommit != commitB || len(r.Request.Superseded) != 1) {
			t.Fatalf("the reference does not judge %s against builder1's rc2: %+v", v, r.Request)
		}
	}
	// The release list, judged afresh: each node's, read through its
	// summary cache while documents still arrive, must come to equal it.
	wantList := mustJSON(t, freshReleases(t, ref, 2))

	// Each node's steps: the documents it imports itself (every document
	// has at least one importer; mallory's reach a node only that way),
	// each trust, mallory's key, the revocation; then all nodes' steps
	// interleaved at random, restarts sprinkled in.
	var events []orderEvent
	for i, d := range docs {
		first := rng.IntN(scale.nodes)
		for n := range scale.nodes {
			if n == first || d.builder == mallory || rng.IntN(3) == 0 {
				events = append(events, orderEvent{node: n, kind: "import", arg: i})
			}
		}
	}
	for n := range scale.nodes {
		for b := range trusted {
			events = append(events, orderEvent{node: n, kind: "trust", arg: b})
		}
		events = append(events, orderEvent{node: n, kind: "know-mallory"}, orderEvent{node: n, kind: "revocation"})
	}
	for range scale.restarts {
		events = append(events, orderEvent{node: rng.IntN(scale.nodes), kind: "restart"})
	}
	rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })

	setups := make([]daemonSetup, scale.nodes)
	nodes := make([]*testDaemon, scale.nodes)
	homes := make([]string, scale.nodes)
	start := func(i int) {
		var boot []string
		for j, o := range nodes {
			if j != i && o != nil {
				boot = append(boot, o.addr(t))
			}
		}
		nodes[i] = startDaemonWith(t, homes[i], nil, boot, setups[i])
	}
	var fromNetwork atomic.Int64 // documents stored from gossip or sync
	for i := range nodes {
		homes[i] = t.TempDir()
		setups[i].syncInterval = time.Second
		setups[i].opts.Stored = func(attest.ID) { fromNetwork.Add(1) }
		if rng.IntN(2) == 0 {
			setups[i].opts.MaxUntrusted = 1 + rng.IntN(len(docs)/2+1)
		}
		start(i)
	}
	for _, e := range events {
		td := nodes[e.node]
		switch e.kind {
		case "import":
			if _, err := td.d.Publish(t.Context(), docs[e.arg].path, ImportOptions{}); err != nil {
				t.Fatalf("node %d imports %s: %v", e.node, docs[e.arg].path, err)
			}
		case "trust":
			apiTrust(t, td.d, builders[e.arg].sk.Public().Bytes())
		case "know-mallory":
			if _, err := td.n.AddKeys([]*attest.Key{builders[mallory].sk.Public()}); err != nil {
				t.Fatal(err)
			}
		case "revocation":
			if _, err := td.n.AddKeys([]*attest.Key{revoked}); err != nil {
				t.Fatal(err)
			}
		case "restart":
			td.shutdown()
			start(e.node)
		}
	}
	t.Logf("%d documents, %d steps; untrusted budgets %v", len(docs), len(events), func() (b []int) {
		for _, s := range setups {
			b = append(b, s.opts.MaxUntrusted)
		}
		return b
	}())

	differs := func() string {
		for i, td := range nodes {
			for _, v := range versions {
				r, err := td.n.Status("", v, 2)
				got := ""
				if err == nil {
					got = mustJSON(t, r)
				}
				if got != want[v] {
					return fmt.Sprintf("node %d, %s: %v\n got: %s\nwant: %s", i, v, err, got, want[v])
				}
			}
			list, err := td.n.Releases("", 2)
			if got := mustJSON(t, list); err != nil || got != wantList {
				return fmt.Sprintf("node %d, the release list: %v\n got: %s\nwant: %s", i, err, got, wantList)
			}
		}
		return ""
	}
	deadline := time.Now().Add(90 * time.Second)
	for d := differs(); d != ""; d = differs() {
		if time.Now().After(deadline) {
			t.Fatalf("the nodes did not converge on the reference's reports within 90 s; first difference:\n%s", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("converged; %d documents were stored from gossip or sync", fromNetwork.Load())
	if fromNetwork.Load() == 0 {
		t.Fatal("no document travelled over the network: the scenario tested imports only")
	}
}

// apiTrust adds a key file to a daemon's trust set through its local API,
// as rbnode trust add does.
func apiTrust(t *testing.T, d *Daemon, key []byte) {
	t.Helper()
	body, err := json.Marshal(TrustRequest{Keys: [][]byte{key}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	d.apiHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/trust", bytes.NewReader(body)))
	if rec.Code != http.StatusOK {
		t.Fatalf("POST /v1/trust: %d %s", rec.Code, rec.Body)
	}
}
