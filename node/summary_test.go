package node

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node/store"
)

// freshReleases judges every release from the documents, ignoring the
// summary cache: what the release list must always equal.
func freshReleases(t *testing.T, n *Node, quorum int) []ReleaseSummary {
	t.Helper()
	keys, err := n.store.Releases()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := n.TrustSet()
	if err != nil {
		t.Fatal(err)
	}
	out := []ReleaseSummary{}
	for _, k := range keys {
		r, err := n.status(k.Project, k.Version, quorum, ts)
		if errorsIs(err, ErrUnknownRelease) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, summarise(r))
	}
	return out
}

// openHome opens a node on cfg's home at the test clock, with opts.
func openHome(t *testing.T, cfg Config, opts ...Option) *Node {
	t.Helper()
	n, err := Open(cfg, testLogger(t), append(opts, WithClock(func() time.Time { return testNow }))...)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReleaseSummariesNeverStale: documents arrive, builders are trusted
// and untrusted, a key is revoked, rejections are logged, untrusted
// documents are dropped from the budget, listings with several quorums
// fill the cache, and the node restarts, in a seeded random order. After
// every step the release list, read through the summary cache, equals a
// fresh judgement of every release, on the writable node and on a
// read-only open of the same store.
func TestReleaseSummariesNeverStale(t *testing.T) {
	seed := *propertySeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: -property.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	rounds := 1
	if !testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) { summariesScenario(t, rng) })
	}
}

func summariesScenario(t *testing.T, rng *rand.Rand) {
	var builders []builderKey
	for i := range 4 {
		builders = append(builders, newBuilder(t, fmt.Sprintf("builder%d", i)))
	}
	mallory := newBuilder(t, "mallory")
	revoked, err := builders[0].sk.RevokedPublic(true, "lost laptop", testNow.Add(-30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	versions := []string{"0.1.0", "0.2.0", "0.3.0"}

	type event struct {
		kind string
		arg  int
	}
	var events []event
	var trees []string // one tree per document, imported whole
	var untrusted []*attest.Document
	for _, v := range versions {
		for b := range builders {
			h := sha('a')
			if rng.IntN(4) == 0 {
				h = sha('b')
			}
			tree := t.TempDir()
			builders[b].writeAttestation(t, tree, builders[b].attestation(v, h, commitA, "rustc 1.82.0"))
			trees = append(trees, tree)
			events = append(events, event{"import", len(trees) - 1})
		}
		// A document whose body was changed after signing (a bad
		// signature: project known), and one that does not parse
		// (no project: the whole version's rejection).
		tree := t.TempDir()
		p := builders[1].writeAttestation(t, tree, builders[1].attestation(v, sha('a'), commitA, "rustc 1.82.0"))
		writeFile(t, p, builders[1].attestation(v, sha('e'), commitA, "rustc 1.82.0").Encode())
		trees = append(trees, tree)
		events = append(events, event{"import", len(trees) - 1})
		tree = t.TempDir()
		p = builders[2].writeAttestation(t, tree, builders[2].attestation(v, sha('a'), commitA, "rustc 1.82.0"))
		writeFile(t, p, []byte("{"))
		trees = append(trees, tree)
		events = append(events, event{"import", len(trees) - 1})
		// Mallory's, from the network into the untrusted budget.
		body := mallory.attestation(v, sha('c'), commitA, "rustc 1.82.0").Encode()
		sig, err := mallory.sk.Sign(body, testNow.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		untrusted = append(untrusted, &attest.Document{Kind: attest.KindAttestation, Name: "attestation.json", Version: v, Signer: "mallory", Body: body, Signature: sig})
		events = append(events, event{"untrusted", len(untrusted) - 1})
	}
	for b := range builders {
		events = append(events, event{"trust", b}, event{"untrust", b}, event{"trust", b})
	}
	for range 4 {
		events = append(events, event{"restart", 0}, event{"list", 0})
	}
	events = append(events, event{"revocation", 0}, event{"know-mallory", 0})
	rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })

	cfg := DefaultConfig()
	cfg.Home = t.TempDir()
	open := func(opts ...Option) *Node { return openHome(t, cfg, opts...) }
	n := open()
	defer func() { n.Close() }()
	if _, err := n.AddKeys([]*attest.Key{builders[0].sk.Public(), builders[1].sk.Public(), builders[2].sk.Public(), builders[3].sk.Public()}); err != nil {
		t.Fatal(err)
	}
	trusted := map[int]bool{}
	check := func(step int, e event, n *Node) {
		t.Helper()
		for _, q := range []int{0, 1, 3} {
			got, err := n.Releases("", q)
			if err != nil {
				t.Fatal(err)
			}
			want := freshReleases(t, n, q)
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			if string(g) != string(w) {
				t.Fatalf("step %d (%s %d), quorum %d: the release list is stale\n got: %s\nwant: %s", step, e.kind, e.arg, q, g, w)
			}
		}
	}
	for i, e := range events {
		switch e.kind {
		case "import":
			mustImport(t, n, trees[e.arg])
		case "trust":
			if !trusted[e.arg] {
				if err := n.Trust([]*attest.Key{builders[e.arg].sk.Public()}, builders[e.arg].name); err != nil {
					t.Fatal(err)
				}
				trusted[e.arg] = true
			}
		case "untrust":
			if trusted[e.arg] {
				if err := n.Untrust(builders[e.arg].sk.Public().Fingerprint); err != nil {
					t.Fatal(err)
				}
				trusted[e.arg] = false
			}
		case "revocation":
			if _, err := n.AddKeys([]*attest.Key{revoked}); err != nil {
				t.Fatal(err)
			}
		case "know-mallory":
			if _, err := n.AddKeys([]*attest.Key{mallory.sk.Public()}); err != nil {
				t.Fatal(err)
			}
		case "untrusted":
			kr, err := n.Keyring()
			if err != nil {
				t.Fatal(err)
			}
			d := untrusted[e.arg]
			r := n.checkDoc(d, func() (*attest.Keyring, error) { return kr, nil }, "peer:x", "peer:x")
			if r.entry == nil {
				t.Fatalf("mallory's document: %+v", r.rej)
			}
			// A budget of one: each arrival drops the one before.
			if _, err := n.store.PutUntrusted(r.entry, store.UntrustedLimit{Count: 1}, func(string) bool { return false }); err != nil {
				t.Fatal(err)
			}
		case "list":
			if _, err := n.Releases("", 1+rng.IntN(3)); err != nil {
				t.Fatal(err)
			}
		case "restart":
			n.Close()
			ro := open(ReadOnly())
			check(i, e, ro)
			ro.Close()
			n = open()
		}
		check(i, e, n)
	}
	list, err := n.Releases("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(versions) {
		t.Fatalf("the scenario ends with %d releases listed, want %d: %+v", len(list), len(versions), list)
	}
}

// TestSummaryWrittenAfterAChangeIsNotUsed: a summary judged from a
// snapshot taken before a document arrived, and written after it (a
// listing racing a writer), is never read back as valid.
func TestSummaryWrittenAfterAChangeIsNotUsed(t *testing.T) {
	n := openTestNode(t)
	b := newBuilder(t, "builder0")
	trustBuilders(t, n, b)
	tree := t.TempDir()
	b.writeAttestation(t, tree, b.attestation("0.1.0", sha('a'), commitA, "rustc 1.82.0"))
	mustImport(t, n, tree)
	before, readTs, err := n.store.Summaries()
	if err != nil || len(before) != 1 || before[0].Value == nil {
		t.Fatalf("after an import the release's summary is cached: %+v %v", before, err)
	}
	stale := before[0].Value
	// A second builder's document arrives; then the racing listing writes
	// what it judged before.
	c := newBuilder(t, "builder1")
	trustBuilders(t, n, c)
	tree = t.TempDir()
	c.writeAttestation(t, tree, c.attestation("0.1.0", sha('b'), commitA, "rustc 1.82.0"))
	if _, err := n.Import(t.Context(), tree, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := n.store.PutSummaries(readTs, map[store.ReleaseKey][]byte{before[0].Release: stale}); err != nil {
		t.Fatal(err)
	}
	after, _, err := n.store.Summaries()
	if err != nil {
		t.Fatal(err)
	}
	if after[0].Value != nil {
		t.Fatal("a summary judged before the document arrived is read as valid")
	}
	list, err := n.Releases("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if list[0].BuilderCount != 2 || list[0].Verdict != attest.Divergence {
		t.Fatalf("the listing shows %+v, want two builders in divergence", list[0])
	}
}

// TestListWrittenAfterAChangeIsNotUsed: the whole release list, judged
// from a snapshot taken before a document arrived and written after it,
// is never read back as valid; one written with no change after it is.
func TestListWrittenAfterAChangeIsNotUsed(t *testing.T) {
	n := openTestNode(t)
	b := newBuilder(t, "builder0")
	trustBuilders(t, n, b)
	tree := t.TempDir()
	b.writeAttestation(t, tree, b.attestation("0.1.0", sha('a'), commitA, "rustc 1.82.0"))
	mustImport(t, n, tree)
	list, err := n.store.CachedList()
	if err != nil || list == nil {
		t.Fatalf("after an import the release list is cached: %x %v", list, err)
	}
	_, readTs, err := n.store.Summaries()
	if err != nil {
		t.Fatal(err)
	}
	c := newBuilder(t, "builder1")
	trustBuilders(t, n, c)
	tree = t.TempDir()
	c.writeAttestation(t, tree, c.attestation("0.2.0", sha('b'), commitA, "rustc 1.82.0"))
	if _, err := n.Import(t.Context(), tree, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := n.store.PutList(readTs, list); err != nil {
		t.Fatal(err)
	}
	if got, err := n.store.CachedList(); err != nil || got != nil {
		t.Fatalf("a list judged before the document arrived is read as valid: %x %v", got, err)
	}
	got, err := n.Releases("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("the listing shows %+v, want both releases", got)
	}
	if list, err := n.store.CachedList(); err != nil || list == nil {
		t.Fatalf("the listing did not cache the list again: %v", err)
	}
}

// FuzzListDecode: the list decoder never panics, and what it accepts
// encodes back to the same bytes.
func FuzzListDecode(f *testing.F) {
	var stamp [stampLen]byte
	stamp[5] = 9
	f.Add(encodeList(stamp, nil))
	f.Add(encodeList(stamp, []ReleaseSummary{
		{Project: "bitcoin", Version: "24.0", Verdict: attest.Consensus, BuilderCount: 3, TrustedCount: 4, Artifacts: 2, Agreed: 2},
		{Project: "cuprate", Version: "0.1.0rc1", Verdict: attest.Divergence, Divergent: 1, RejectedCount: 1 << 20},
	}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, list, err := decodeList(b)
		if err != nil {
			return
		}
		if got := encodeList(st, list); string(got) != string(b) {
			t.Fatalf("decode then encode changed the bytes:\n in: %x\nout: %x", b, got)
		}
	})
}

// FuzzSummaryDecode: the summary decoder never panics, and what it
// accepts encodes back to the same bytes.
func FuzzSummaryDecode(f *testing.F) {
	var stamp [stampLen]byte
	stamp[3] = 7
	f.Add(encodeSummary(stamp, ReleaseSummary{Verdict: attest.Consensus, BuilderCount: 3, TrustedCount: 4, Artifacts: 2, Agreed: 2, UntrustedCount: 1, RejectedCount: 300}))
	f.Add(encodeSummary(stamp, ReleaseSummary{Verdict: attest.Divergence, Divergent: 1 << 30}))
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, s, err := decodeSummary(b)
		if err != nil {
			return
		}
		if got := encodeSummary(st, s); string(got) != string(b) {
			t.Fatalf("decode then encode changed the bytes:\n in: %x\nout: %x", b, got)
		}
	})
}

// TestSummaryDecodeRejects: damaged summaries are refused, never read as
// another one.
func TestSummaryDecodeRejects(t *testing.T) {
	var stamp [stampLen]byte
	good := encodeSummary(stamp, ReleaseSummary{Verdict: attest.Pending, BuilderCount: 1})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"other format":   append([]byte{2}, good[1:]...),
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte(nil), good...), 0),
		"unknown code":   append(append(append([]byte(nil), good[:1+stampLen]...), 9), good[2+stampLen:]...),
		"overlong count": append(append(append([]byte(nil), good[:2+stampLen]...), 0x81, 0x00), good[3+stampLen:]...),
	} {
		if _, _, err := decodeSummary(b); err == nil {
			t.Errorf("%s: accepted %x", name, b)
		}
	}
	if _, s, err := decodeSummary(good); err != nil || s.BuilderCount != 1 || s.Verdict != attest.Pending {
		t.Fatalf("good summary: %+v %v", s, err)
	}
}

// TestSummariesDistrustWritesByOthers: a store written after its last
// clean close by a program that keeps no change markers (an older rbnode,
// here Badger directly) has its cached lines and list ignored, read-only
// and writable, until a listing judges them again; a store closed cleanly
// keeps them.
func TestSummariesDistrustWritesByOthers(t *testing.T) {
	b := newBuilder(t, "builder0")
	cfg := DefaultConfig()
	cfg.Home = t.TempDir()
	open := func(opts ...Option) *Node { return openHome(t, cfg, opts...) }
	cached := func(n *Node) (list bool, lines int) {
		l, err := n.store.CachedList()
		if err != nil {
			t.Fatal(err)
		}
		sums, _, err := n.store.Summaries()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sums {
			if s.Value != nil {
				lines++
			}
		}
		return l != nil, lines
	}
	n := open()
	trustBuilders(t, n, b)
	tree := t.TempDir()
	b.writeAttestation(t, tree, b.attestation("0.1.0", sha('a'), commitA, "rustc 1.82.0"))
	mustImport(t, n, tree)
	n.Close()
	n = open(ReadOnly())
	if list, lines := cached(n); !list || lines != 1 {
		t.Fatalf("after a clean close: list cached %v, %d lines cached; want both", list, lines)
	}
	n.Close()

	// Another program writes.
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(cfg.Home, StoreDir)).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("1/s/other"), []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	for _, ro := range []bool{true, false} {
		var opts []Option
		if ro {
			opts = append(opts, ReadOnly())
		}
		n = open(opts...)
		if list, lines := cached(n); list || lines != 0 {
			t.Fatalf("read-only %v, after another program wrote: list cached %v, %d lines cached; want none", ro, list, lines)
		}
		n.Close()
	}
	// A listing judges them again, and a clean close keeps them.
	n = open()
	if _, err := n.Releases("", 0); err != nil {
		t.Fatal(err)
	}
	n.Close()
	n = open(ReadOnly())
	defer n.Close()
	if list, lines := cached(n); !list || lines != 1 {
		t.Fatalf("after a listing and a clean close: list cached %v, %d lines cached; want both", list, lines)
	}
}
