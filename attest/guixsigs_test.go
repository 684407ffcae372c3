package attest_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// guixSig is one signed manifest of a guix.sigs tree.
type guixSig struct {
	version, signer, name string // <version>/<signer>/<name>
	path                  string // of the body; the signature is path+".asc"
	body, sig             []byte
}

// guixTree is a guix.sigs tree read into memory.
type guixTree struct {
	dir  string
	full bool
	keys map[string][]byte // builder-keys/<file>
	sigs []guixSig         // sorted by path
}

var (
	guixOnce  sync.Once
	guixCache *guixTree
	guixErr   error
)

// loadGuix reads the guix.sigs tree once per test binary.
func loadGuix(tb testing.TB) *guixTree {
	tb.Helper()
	dir, full := guixSigsDir(tb)
	guixOnce.Do(func() { guixCache, guixErr = readGuix(dir, full) })
	if guixErr != nil {
		tb.Fatal(guixErr)
	}
	return guixCache
}

func readGuix(dir string, full bool) (*guixTree, error) {
	tr := &guixTree{dir: dir, full: full, keys: map[string][]byte{}}
	kfs, err := filepath.Glob(filepath.Join(dir, "builder-keys", "*.gpg"))
	if err != nil {
		return nil, err
	}
	for _, f := range kfs {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		tr.keys[filepath.Base(f)] = b
	}
	ascs, err := filepath.Glob(filepath.Join(dir, "*", "*", "*.asc"))
	if err != nil {
		return nil, err
	}
	sort.Strings(ascs)
	for _, asc := range ascs {
		body := strings.TrimSuffix(asc, ".asc")
		s := guixSig{path: body, name: filepath.Base(body)}
		s.signer = filepath.Base(filepath.Dir(body))
		s.version = filepath.Base(filepath.Dir(filepath.Dir(body)))
		if s.body, err = os.ReadFile(body); err != nil {
			return nil, err
		}
		if s.sig, err = os.ReadFile(asc); err != nil {
			return nil, err
		}
		tr.sigs = append(tr.sigs, s)
	}
	if len(tr.keys) == 0 || len(tr.sigs) == 0 {
		return nil, fmt.Errorf("%s holds %d keys and %d signatures", dir, len(tr.keys), len(tr.sigs))
	}
	return tr, nil
}

// keyring reads every builder key file into one keyring.
func (tr *guixTree) keyring(tb testing.TB) *attest.Keyring {
	tb.Helper()
	kr := attest.NewKeyring()
	for _, name := range slices.Sorted(maps.Keys(tr.keys)) {
		ks, err := attest.ReadKeys(tr.keys[name])
		if err != nil {
			tb.Fatalf("builder-keys/%s: %v", name, err)
		}
		for _, k := range ks {
			kr.Add(k)
		}
	}
	return kr
}

// release is a verdict in a form both the oracle and attest can fill:
// artifact -> hash -> sorted fingerprints, and the verdicts.
type release struct {
	Groups   map[string]map[string][]string
	Verdicts map[string]attest.Verdict
	Verdict  attest.Verdict
}

// oracleSig is gpg's judgement of one signature file.
type oracleSig struct {
	counts  bool   // GOODSIG, or EXPKEYSIG for a signature made before expiry
	expired bool   // counts, and the key has expired since
	unknown bool   // NO_PUBKEY
	fpr     string // primary fingerprint (VALIDSIG)
	status  []string
}

// gpgKey is what gpg --list-keys says of a primary key.
type gpgKey struct {
	algo             string
	created, expires int64 // Unix seconds; expires 0: never
	revoked          bool
}

// gpgOracle verifies every signature with gpg --status-fd --verify in a
// GnuPG home holding every builder key. It also returns what gpg lists of
// each primary key, by fingerprint.
func gpgOracle(t *testing.T, tr *guixTree) (out []oracleSig, keys map[string]gpgKey) {
	g := newGPG(t)
	args := []string{"--import"}
	for _, name := range slices.Sorted(maps.Keys(tr.keys)) {
		args = append(args, filepath.Join(tr.dir, "builder-keys", name))
	}
	g.must(nil, args...)

	// Key and subkey expiry times, and what gpg says of each primary key,
	// from its own listing.
	expiry := map[string]int64{}
	keys = map[string]gpgKey{}
	var last int64
	var pub *gpgKey
	for _, rec := range g.colons("--list-keys") {
		switch rec[0] {
		case "pub", "sub":
			last, _ = strconv.ParseInt(rec[6], 10, 64) // empty: never
			pub = nil
			if rec[0] == "pub" {
				pub = &gpgKey{algo: "rsa" + rec[2], expires: last, revoked: rec[1] == "r"} // RSA: length
				pub.created, _ = strconv.ParseInt(rec[5], 10, 64)
				if len(rec) > 16 && rec[16] != "" {
					pub.algo = rec[16] // ECC: the curve
				}
			}
		case "fpr":
			expiry[rec[9]] = last
			if pub != nil {
				keys[rec[9]], pub = *pub, nil
			}
		}
	}
	validAt := func(fpr string, ts int64) bool { e := expiry[fpr]; return e == 0 || ts < e }

	out = make([]oracleSig, len(tr.sigs))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < max(2, runtime.NumCPU()); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s := tr.sigs[i]
				res, err := g.run(nil, "--status-fd", "1", "--verify", s.path+".asc", s.path)
				v := parseGPGStatus(res, err == nil)
				o := oracleSig{fpr: v.validFPR, status: v.status, unknown: v.has("NO_PUBKEY")}
				switch {
				case v.has("GOODSIG"):
					o.counts = true
				case v.has("EXPKEYSIG") && validAt(v.signer, v.signedAt) && validAt(v.validFPR, v.signedAt):
					o.counts, o.expired = true, true
				}
				out[i] = o
			}
		}()
	}
	for i := range tr.sigs {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, keys
}

// oracleReleases derives each release's verdict with quorum 3 from gpg's
// judgements and a plain reading of the manifests.
func oracleReleases(tr *guixTree, verdicts []oracleSig) map[string]release {
	// version -> artifact -> fingerprint -> hashes
	claims := map[string]map[string]map[string]map[string]bool{}
	for i, s := range tr.sigs {
		if claims[s.version] == nil {
			claims[s.version] = map[string]map[string]map[string]bool{}
		}
		if !verdicts[i].counts {
			continue
		}
		fpr := verdicts[i].fpr
		for _, line := range strings.Split(strings.TrimSuffix(string(s.body), "\n"), "\n") {
			hash, name, _ := strings.Cut(line, "  ")
			a := claims[s.version]
			if a[name] == nil {
				a[name] = map[string]map[string]bool{}
			}
			if a[name][fpr] == nil {
				a[name][fpr] = map[string]bool{}
			}
			a[name][fpr][hash] = true
		}
	}
	out := map[string]release{}
	for version, arts := range claims {
		r := release{Groups: map[string]map[string][]string{}, Verdicts: map[string]attest.Verdict{}}
		allConsensus, diverges := len(arts) > 0, false
		for name, byFPR := range arts {
			groups := map[string][]string{}
			for fpr, hashes := range byFPR {
				if len(hashes) != 1 {
					diverges = true // one builder, two hashes: never counted
					continue
				}
				for h := range hashes {
					groups[h] = append(groups[h], fpr)
				}
			}
			for _, fprs := range groups {
				sort.Strings(fprs)
			}
			v := attest.Pending
			if len(groups) >= 2 {
				v = attest.Divergence
			} else if len(groups) == 1 {
				for _, fprs := range groups {
					if len(fprs) >= 3 {
						v = attest.Consensus
					}
				}
			}
			diverges = diverges || v == attest.Divergence
			allConsensus = allConsensus && v == attest.Consensus
			r.Groups[name], r.Verdicts[name] = groups, v
		}
		switch {
		case diverges:
			r.Verdict = attest.Divergence
		case allConsensus:
			r.Verdict = attest.Consensus
		default:
			r.Verdict = attest.Pending
		}
		out[version] = r
	}
	return out
}

// rbnodeVerify runs every signature through Document.Parse and
// Keyring.Verify, as a node does.
func rbnodeVerify(tb testing.TB, tr *guixTree, kr *attest.Keyring, now time.Time) (map[string][]attest.Claim, []attest.Verification) {
	tb.Helper()
	claims := map[string][]attest.Claim{}
	vs := make([]attest.Verification, len(tr.sigs))
	for i, s := range tr.sigs {
		doc := &attest.Document{Kind: attest.KindManifest, Version: s.version, Signer: s.signer, Name: s.name, Body: s.body, Signature: s.sig}
		p, err := doc.Parse()
		if err != nil {
			tb.Fatalf("%s: %v", s.path, err)
		}
		vs[i] = kr.Verify(s.body, p.Sig, now)
		claims[s.version] = append(claims[s.version], attest.Claim{Doc: p.ID, Signer: s.signer, File: s.name, Statement: p.Statement, Verification: vs[i]})
	}
	return claims, vs
}

func fromReport(r *attest.Report) release {
	out := release{Groups: map[string]map[string][]string{}, Verdicts: map[string]attest.Verdict{}, Verdict: r.Verdict}
	for _, a := range r.Artifacts {
		g := map[string][]string{}
		for _, h := range a.Hashes {
			for _, b := range h.Builders {
				g[h.SHA256] = append(g[h.SHA256], b.Fingerprint)
			}
			sort.Strings(g[h.SHA256])
		}
		out.Groups[a.Name], out.Verdicts[a.Name] = g, a.Verdict
	}
	return out
}

// TestGuixSigsOracle checks rbnode against GnuPG over the whole guix.sigs
// tree: every signature's outcome and fingerprint, and for every release
// the groups of builders per artifact hash and the verdicts with quorum 3.
func TestGuixSigsOracle(t *testing.T) {
	t.Parallel()
	tr := loadGuix(t)
	oracle, gkeys := gpgOracle(t, tr)
	want := oracleReleases(tr, oracle)

	kr := tr.keyring(t)
	trusted := attest.TrustSet{}
	for _, k := range kr.Keys() {
		trusted[k.Fingerprint] = k.Name()
		var got gpgKey
		got.algo, got.created = k.Algorithm(), k.Created().Unix()
		if exp, ok := k.Expires(); ok {
			got.expires = exp.Unix()
		}
		_, _, got.revoked = k.Revocation()
		if g := gkeys[k.Fingerprint]; got != g {
			t.Errorf("key %s (%s): rbnode says %+v, gpg %+v", k.Fingerprint, k.Name(), got, g)
		}
	}
	claims, vs := rbnodeVerify(t, tr, kr, time.Now())

	counts := map[string]int{}
	for i, v := range vs {
		o := oracle[i]
		switch {
		case o.counts && (v.Status != attest.StatusGood || v.Fingerprint != o.fpr):
			t.Errorf("%s: rbnode says %s by %s (%s); gpg counts it, by %s", tr.sigs[i].path, v.Status, v.Fingerprint, v.Detail, o.fpr)
		case !o.counts && v.Status == attest.StatusGood:
			t.Errorf("%s: rbnode counts it, by %s; gpg says %v", tr.sigs[i].path, v.Fingerprint, o.status)
		case o.unknown != (v.Status == attest.StatusUnknownKey):
			t.Errorf("%s: rbnode says %s, gpg says %v", tr.sigs[i].path, v.Status, o.status)
		}
		counts[string(v.Status)]++
		if o.counts && o.expired {
			counts["gpg: good by a since-expired key"]++
		}
		if o.unknown {
			counts["gpg: no public key"]++
		}
	}
	t.Logf("%d releases, %d signatures: %v", len(claims), len(tr.sigs), counts)

	for _, version := range slices.Sorted(maps.Keys(claims)) {
		r := attest.Tally("bitcoin", version, claims[version], trusted, 3)
		if got := fromReport(r); !reflect.DeepEqual(got, want[version]) {
			t.Errorf("release %s: rbnode %s, gpg oracle %s\nrbnode: %+v\noracle: %+v", version, got.Verdict, want[version].Verdict, got, want[version])
		}
	}
	if tr.full {
		wantCounts := map[string]int{
			"good": 1913, "gpg: good by a since-expired key": 404,
			"unknown_key": 60, "gpg: no public key": 60,
		}
		if !reflect.DeepEqual(counts, wantCounts) {
			t.Errorf("counts %v, want %v", counts, wantCounts)
		}
	}
}

// TestGuixSigsFacts checks what the data's README states, with rbnode
// alone (it runs without gpg): the counts on the full data, the one
// divergence (26.0rc1, on exactly the two apple-darwin zips), and no other
// release diverging.
func TestGuixSigsFacts(t *testing.T) {
	t.Parallel()
	tr := loadGuix(t)
	kr := tr.keyring(t)
	trusted := attest.TrustSet{}
	for _, k := range kr.Keys() {
		trusted[k.Fingerprint] = k.Name()
	}
	claims, vs := rbnodeVerify(t, tr, kr, testNow)
	counts := map[attest.Status]int{}
	for _, v := range vs {
		counts[v.Status]++
	}
	if tr.full {
		if want := map[attest.Status]int{attest.StatusGood: 1913, attest.StatusUnknownKey: 60}; !reflect.DeepEqual(counts, want) {
			t.Errorf("counts %v, want %v", counts, want)
		}
		if len(claims) != 65 || len(tr.sigs) != 1973 {
			t.Errorf("%d releases and %d signatures, the README says 65 and 1,973", len(claims), len(tr.sigs))
		}
	}
	if _, ok := claims["26.0rc1"]; !ok {
		t.Fatal("no 26.0rc1 release in the data")
	}
	for _, version := range slices.Sorted(maps.Keys(claims)) {
		r := attest.Tally("bitcoin", version, claims[version], trusted, 3)
		if version == "26.0rc1" {
			check26rc1(t, r)
		} else if r.Verdict == attest.Divergence {
			t.Errorf("release %s diverges", version)
		}
		if len(r.Equivocations) != 0 || len(r.Commits) != 0 {
			t.Errorf("release %s: equivocations %v, commits %v", version, r.Equivocations, r.Commits)
		}
	}
}

// check26rc1 asserts the one real divergence in the data.
func check26rc1(t *testing.T, r *attest.Report) {
	t.Helper()
	var divergent []string
	for _, a := range r.Artifacts {
		if a.Verdict == attest.Divergence {
			divergent = append(divergent, a.Name)
			// Every builder that listed the zip got its own hash.
			for _, h := range a.Hashes {
				if len(h.Builders) != 1 {
					t.Errorf("26.0rc1 %s: %d builders share hash %s", a.Name, len(h.Builders), h.SHA256)
				}
			}
		} else if a.Verdict != attest.Consensus {
			t.Errorf("26.0rc1 %s: %s, want consensus", a.Name, a.Verdict)
		}
	}
	want := []string{"bitcoin-26.0rc1-arm64-apple-darwin.zip", "bitcoin-26.0rc1-x86_64-apple-darwin.zip"}
	if r.Verdict != attest.Divergence || !slices.Equal(divergent, want) {
		t.Errorf("26.0rc1: %s on %q; want divergence on exactly %q", r.Verdict, divergent, want)
	}
}

// TestGuixKeyFiles: every builder key file loads, including the two that
// go-crypto's own parser refuses (a signature of another class after a
// subkey), and rbnode keeps them usable.
func TestGuixKeyFiles(t *testing.T) {
	t.Parallel()
	tr := loadGuix(t)
	for _, name := range slices.Sorted(maps.Keys(tr.keys)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ks, err := attest.ReadKeys(tr.keys[name])
			if err != nil {
				t.Fatalf("ReadKeys: %v", err)
			}
			for _, k := range ks {
				if len(k.Fingerprint) != 40 || k.UserID() == "" {
					t.Errorf("key %q has fingerprint %q", k.UserID(), k.Fingerprint)
				}
				// The minimal form reads back to the same key.
				again := readKey(t, k.Bytes())
				if again.Fingerprint != k.Fingerprint || !slices.Equal(again.KeyIDs(), k.KeyIDs()) {
					t.Errorf("ReadKeys(Bytes()) gives %s %v, want %s %v", again.Fingerprint, again.KeyIDs(), k.Fingerprint, k.KeyIDs())
				}
				if ar := readKey(t, k.Armored()); ar.Fingerprint != k.Fingerprint {
					t.Errorf("ReadKeys(Armored()) gives %s", ar.Fingerprint)
				}
			}
		})
	}
	for _, name := range []string{"Sjors.gpg", "laanwj.gpg"} {
		if _, ok := tr.keys[name]; !ok {
			t.Errorf("builder-keys/%s is missing from the test data", name)
		}
	}
}
