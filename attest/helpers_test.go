package attest_test

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/rbnode/rbnode/attest"
)

// testNow is the "now" of pure tests: fixed, so results do not depend on the
// day the suite runs.
var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// day returns midnight UTC of the given date.
func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// guixSigsDir is the guix.sigs tree the tests read: the whole shared copy
// beside the clone when it exists, else the repository's subset. full
// reports which.
func guixSigsDir(t testing.TB) (dir string, full bool) {
	t.Helper()
	for _, c := range []struct {
		dir  string
		full bool
	}{{"../../shared/testdata/guix.sigs", true}, {"../testdata/guix.sigs", false}} {
		if st, err := os.Stat(filepath.Join(c.dir, "builder-keys")); err == nil && st.IsDir() {
			return c.dir, c.full
		}
	}
	t.Fatal("no guix.sigs test data: neither ../../shared/testdata/guix.sigs nor ../testdata/guix.sigs exists")
	return "", false
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readKey reads exactly one public key.
func readKey(t testing.TB, b []byte) *attest.Key {
	t.Helper()
	ks, err := attest.ReadKeys(b)
	if err != nil {
		t.Fatalf("ReadKeys: %v", err)
	}
	if len(ks) != 1 {
		t.Fatalf("ReadKeys returned %d keys, want 1", len(ks))
	}
	return ks[0]
}

// verify parses sig and checks it over body with a keyring of keys.
func verify(t testing.TB, body, sig []byte, now time.Time, keys ...*attest.Key) attest.Verification {
	t.Helper()
	s, err := attest.ParseSignature(sig)
	if err != nil {
		t.Fatalf("ParseSignature: %v", err)
	}
	return attest.NewKeyring(keys...).Verify(body, s, now)
}

// wantStatus fails unless v has status want (and, for a known key,
// fingerprint fp).
func wantStatus(t testing.TB, v attest.Verification, want attest.Status, fp string) {
	t.Helper()
	if v.Status != want {
		t.Errorf("status %q (%s), want %q", v.Status, v.Detail, want)
	}
	if fp != "" && v.Fingerprint != fp {
		t.Errorf("fingerprint %s, want %s", v.Fingerprint, fp)
	}
}

// flipByte returns a copy of b with one bit of byte i changed.
func flipByte(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

// wantErr fails unless err wraps every sentinel in is and its message
// contains every fragment in msg.
func wantErr(t testing.TB, err error, is []error, msg ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", msg)
	}
	for _, s := range is {
		if !errors.Is(err, s) {
			t.Errorf("error %q does not wrap %q", err, s)
		}
	}
	for _, m := range msg {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
}

// ---- go-crypto keys and signatures made at chosen times ----

// pgpEntity makes an Ed25519 (EdDSA) key created at created, expiring after
// lifetime (0: never).
func pgpEntity(t testing.TB, created time.Time, lifetime time.Duration) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity("Time Test", "", "time@example.org", pgpConfig(created, lifetime))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func pgpConfig(at time.Time, lifetime time.Duration) *packet.Config {
	return &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		Curve:           packet.Curve25519,
		DefaultHash:     crypto.SHA256,
		Time:            func() time.Time { return at },
		KeyLifetimeSecs: uint32(lifetime / time.Second),
	}
}

// publicKey returns e's public certificate as rbnode reads it.
func publicKey(t testing.TB, e *openpgp.Entity) *attest.Key {
	t.Helper()
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return readKey(t, buf.Bytes())
}

// signAt makes an armoured detached binary-document signature by priv over
// body, dated at, with hash h. Unlike openpgp.DetachSign it does not ask
// whether the key is valid at that time: tests need signatures made after a
// key expired or was revoked.
func signAt(t testing.TB, priv *packet.PrivateKey, body []byte, at time.Time, h crypto.Hash) []byte {
	t.Helper()
	noSalt := false // go-crypto's salt notation refuses SHA-1
	cfg := &packet.Config{Time: func() time.Time { return at }, DefaultHash: h, NonDeterministicSignaturesViaNotation: &noSalt}
	sig := &packet.Signature{
		Version: 4, SigType: packet.SigTypeBinary, PubKeyAlgo: priv.PubKeyAlgo,
		Hash: h, CreationTime: at, IssuerKeyId: &priv.KeyId,
	}
	hh, err := sig.PrepareSign(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hh.Write(body)
	if err := sig.Sign(hh, priv, cfg); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.SignatureType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sig.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

// ---- the real gpg ----

// gpgHome is a private GnuPG home for one test.
type gpgHome struct {
	t   testing.TB
	dir string
}

// needGPG fails the test when gpg is missing: CI installs gnupg, and a test
// that silently skips proves nothing. RBNODE_SKIP_GPG=1 skips on purpose.
func needGPG(t testing.TB) {
	t.Helper()
	if os.Getenv("RBNODE_SKIP_GPG") == "1" {
		t.Skip("RBNODE_SKIP_GPG=1: skipping a test that runs gpg")
	}
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatal("gpg is not on PATH: install gnupg (apt-get install gnupg, brew install gnupg) to run these tests, or set RBNODE_SKIP_GPG=1 to skip them")
	}
}

// newGPG makes an empty GnuPG home (mode 700) and kills its agent at
// cleanup. gpg-agent's socket lives in the home and a Unix socket path is
// limited to about 107 bytes, so a long t.TempDir() is replaced by a short
// directory under os.TempDir().
func newGPG(t testing.TB) *gpgHome {
	t.Helper()
	needGPG(t)
	dir := t.TempDir()
	if len(dir)+len("/S.gpg-agent.browser") > 100 {
		d, err := os.MkdirTemp("", "rbg")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	g := &gpgHome{t: t, dir: dir}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
		cmd.Env = g.env()
		cmd.Run()
	})
	return g
}

func (g *gpgHome) env() []string { return append(os.Environ(), "GNUPGHOME="+g.dir, "LC_ALL=C") }

// run runs gpg --batch with args and stdin and returns its stdout; a
// non-zero exit is an error carrying stderr.
func (g *gpgHome) run(stdin []byte, args ...string) ([]byte, error) {
	return g.exec(stdin, append([]string{"--batch"}, args...)...)
}

// exec runs gpg without --batch, for the commands that refuse it
// (--gen-revoke): answers come from stdin with --command-fd 0.
func (g *gpgHome) exec(stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.Command("gpg", append([]string{"--no-tty", "--trust-model", "always"}, args...)...)
	cmd.Env = g.env()
	cmd.Stdin = bytes.NewReader(stdin)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out.Bytes(), nil
}

// must is run that fails the test on error.
func (g *gpgHome) must(stdin []byte, args ...string) []byte {
	g.t.Helper()
	out, err := g.run(stdin, args...)
	if err != nil {
		g.t.Fatal(err)
	}
	return out
}

// at returns gpg arguments that make gpg believe it is time t.
func at(t time.Time) []string {
	return []string{"--faked-system-time", strconv.FormatInt(t.Unix(), 10) + "!"}
}

// genKey runs gpg --quick-gen-key with no passphrase (or the one given)
// and returns the new primary fingerprint. algo and usage are as gpg takes
// them ("rsa4096", "ed25519"; "sign", "cert"); extra comes first (at(...)).
func (g *gpgHome) genKey(uid, algo, usage, expire, passphrase string, extra ...string) string {
	g.t.Helper()
	args := append(slices.Clone(extra), "--pinentry-mode", "loopback", "--passphrase", passphrase,
		"--quick-gen-key", uid, algo, usage, expire)
	g.must(nil, args...)
	return g.fingerprint(uid)
}

// addKey adds a subkey to fpr and returns the subkey's fingerprint.
func (g *gpgHome) addKey(fpr, algo, usage, expire, passphrase string, extra ...string) string {
	g.t.Helper()
	before := g.subkeys(fpr)
	args := append(slices.Clone(extra), "--pinentry-mode", "loopback", "--passphrase", passphrase,
		"--quick-add-key", fpr, algo, usage, expire)
	g.must(nil, args...)
	for _, s := range g.subkeys(fpr) {
		if !strings.Contains(strings.Join(before, " "), s) {
			return s
		}
	}
	g.t.Fatalf("gpg --quick-add-key added no subkey to %s", fpr)
	return ""
}

// fingerprint returns the primary fingerprint of the one key matching uid.
func (g *gpgHome) fingerprint(uid string) string {
	g.t.Helper()
	var fprs []string
	for _, rec := range g.colons("--list-keys", "="+uid) {
		if rec[0] == "fpr" && len(fprs) == 0 {
			fprs = append(fprs, rec[9])
		}
	}
	if len(fprs) != 1 {
		g.t.Fatalf("no key for %q", uid)
	}
	return fprs[0]
}

// subkeys lists the fingerprints of fpr's subkeys.
func (g *gpgHome) subkeys(fpr string) []string {
	var out []string
	inSub := false
	for _, rec := range g.colons("--list-keys", fpr) {
		switch rec[0] {
		case "pub":
			inSub = false
		case "sub":
			inSub = true
		case "fpr":
			if inSub {
				out = append(out, rec[9])
			}
		}
	}
	return out
}

// colons runs a gpg listing with --with-colons and splits its records.
func (g *gpgHome) colons(args ...string) [][]string {
	g.t.Helper()
	out := g.must(nil, append([]string{"--with-colons", "--fixed-list-mode"}, args...)...)
	var recs [][]string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); len(f) >= 10 {
			recs = append(recs, f)
		}
	}
	return recs
}

// sign makes a detached signature over body with key (a fingerprint, with
// "!" to force that very key);
// extra options (--armor, --textmode, at(...)) come first.
func (g *gpgHome) sign(key string, body []byte, extra ...string) []byte {
	g.t.Helper()
	args := append(slices.Clone(extra), "--pinentry-mode", "loopback", "--passphrase", "",
		"--local-user", key, "--detach-sign", "--output", "-")
	return g.must(body, args...)
}

// gpgVerdict is what gpg --status-fd says about one detached signature.
type gpgVerdict struct {
	ok       bool     // gpg exited 0
	status   []string // the status keywords, in order
	validFPR string   // VALIDSIG's primary key fingerprint
	signedAt int64    // VALIDSIG's signature timestamp
	signer   string   // VALIDSIG's signing (sub)key fingerprint
}

func (v gpgVerdict) has(kw string) bool { return slices.Contains(v.status, kw) }

// verify runs gpg --verify on sig and body written to files.
func (g *gpgHome) verify(sig, body []byte) gpgVerdict {
	g.t.Helper()
	dir := g.t.TempDir()
	sp, bp := filepath.Join(dir, "doc.sig"), filepath.Join(dir, "doc")
	if err := os.WriteFile(sp, sig, 0o600); err != nil {
		g.t.Fatal(err)
	}
	if err := os.WriteFile(bp, body, 0o600); err != nil {
		g.t.Fatal(err)
	}
	out, err := g.run(nil, "--status-fd", "1", "--verify", sp, bp)
	return parseGPGStatus(out, err == nil)
}

func parseGPGStatus(out []byte, ok bool) gpgVerdict {
	v := gpgVerdict{ok: ok}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(strings.TrimPrefix(line, "[GNUPG:] "))
		if !strings.HasPrefix(line, "[GNUPG:] ") || len(f) == 0 {
			continue
		}
		v.status = append(v.status, f[0])
		if f[0] == "VALIDSIG" && len(f) >= 11 {
			v.signer = f[1]
			v.signedAt, _ = strconv.ParseInt(f[3], 10, 64)
			v.validFPR = f[10]
		}
	}
	return v
}

// importKey imports an exported key (public or secret) into g.
func (g *gpgHome) importKey(b []byte) {
	g.t.Helper()
	g.must(b, "--pinentry-mode", "loopback", "--passphrase", "", "--import")
}

// revoke makes gpg revoke fpr at time when for reason (0 none given,
// 1 compromised, 2 superseded, 3 retired, as gpg --gen-revoke numbers
// them) and imports the revocation.
func (g *gpgHome) revoke(fpr string, reason int, when time.Time) {
	g.t.Helper()
	answers := fmt.Sprintf("y\n%d\nrevoked by a test\n\ny\n", reason)
	args := append(at(when), "--command-fd", "0", "--pinentry-mode", "loopback", "--passphrase", "",
		"--armor", "--output", "-", "--gen-revoke", fpr)
	rev, err := g.exec([]byte(answers), args...)
	if err != nil {
		g.t.Fatal(err)
	}
	g.importKey(rev)
}

// secretEntity exports fpr's secret key from gpg into go-crypto, to sign
// where gpg refuses to (after expiry or revocation).
func (g *gpgHome) secretEntity(fpr string) *openpgp.Entity {
	g.t.Helper()
	el, err := openpgp.ReadKeyRing(bytes.NewReader(g.must(nil, "--pinentry-mode", "loopback", "--passphrase", "", "--export-secret-keys", fpr)))
	if err != nil || len(el) != 1 {
		g.t.Fatalf("read gpg's secret key: %v (%d keys)", err, len(el))
	}
	return el[0]
}

// testKey returns a deterministic rbnode signing key for name, created on
// 2024-01-01: the same name always gives the same key.
func testKey(t testing.TB, name string) *attest.SecretKey {
	t.Helper()
	sk, err := attest.GenerateKey(name, strings.ToLower(name)+"@example.org", day(2024, time.January, 1), rand.NewChaCha8(sha256.Sum256([]byte(name))))
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// mustSign signs body with sk at when.
func mustSign(t testing.TB, sk *attest.SecretKey, body []byte, when time.Time) []byte {
	t.Helper()
	sig, err := sk.Sign(body, when)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}
